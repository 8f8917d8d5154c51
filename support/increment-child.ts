/**
 * A child process of support/Increments.ts: opens its own store on the location it is given
 * (before or after the parent's "go"), creates the counter if it is absent, increments it and
 * reports the value each increment saw.
 *
 *   increment-child.ts --child <location JSON> <options JSON>
 */
import { Effect, Option } from "effect"
import * as Processes from "./Processes.js"
import * as Stores from "./Stores.js"

export interface Options {
  readonly processes: number
  /** Increments per process. */
  readonly increments: number
  /** Increments in flight at once in each process. */
  readonly concurrency: number
  /**
   * Open the store only after the parent's "go", so that every process opens it at the same
   * moment (by default each opens it first, and they contend only on the increments).
   */
  readonly openAfterGo?: boolean
}

/** The key every process increments (created with "0" by the first one). */
export const counter = "counter"

const child = (location: Stores.Location, options: Options) =>
  Effect.gen(function*() {
    const open = Effect.tap(Stores.open(location), (store) => store.setIfAbsent(counter, "0"))
    const opened = options.openAfterGo ? undefined : yield* open
    yield* Effect.promise(Processes.ready)
    const store = opened ?? (yield* open)
    const seen = yield* Effect.forEach(
      Array.from({ length: options.increments }),
      () => Effect.map(store.modify(counter, (n) => String(Number(n) + 1)), (next) => Number(Option.getOrThrow(next))),
      { concurrency: options.concurrency }
    )
    Processes.report({ seen })
  })

if (Processes.isMain(import.meta.url)) {
  const [location, options] = process.argv.slice(3).map((arg) => JSON.parse(arg))
  Effect.runPromise(Effect.scoped(child(location, options))).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}
