/**
 * Lost updates: `processes` processes each run `perProcess` concurrent increments of one counter,
 * once with the platform's default `modify` (what `KeyValueStore.make` derives from `get` and
 * `set`: read, then write) over the very same store, and once with our atomic `modify`. The
 * final counter tells how many acknowledged increments were lost.
 *
 * Child mode (spawned by `run`): `LostUpdates.ts --child <method> <location JSON> <count>`.
 */
import { KeyValueStore } from "@effect/platform"
import { Effect, Option } from "effect"
import * as Processes from "../support/Processes.js"
import { increment } from "./Harness.js"
import * as Stores from "../support/Stores.js"

export type Method = "platform default modify" | "durable-singleton modify"

export interface Result {
  readonly store: string
  readonly method: Method
  readonly increments: number
  readonly final: number
  readonly lost: number
}

const key = "lost-updates:counter"

// The platform's derived store over the same backend: only get and set are passed, so `modify`
// is the platform's default (get, then set).
const platformDefault = (store: KeyValueStore.KeyValueStore) =>
  KeyValueStore.make({
    get: store.get,
    getUint8Array: store.getUint8Array,
    set: store.set,
    remove: store.remove,
    clear: store.clear,
    size: store.size
  })

// A child process: connects, waits for the parent's "go" (so that all start together), then
// increments and reports how many of its increments were acknowledged.
const child = (method: Method, location: Stores.Location, count: number) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const ours = yield* Stores.open(location)
    const store = method === "durable-singleton modify" ? ours : platformDefault(ours)
    yield* Effect.promise(Processes.ready)
    yield* Effect.forEach(Array.from({ length: count }), () => store.modify(key, increment), {
      concurrency: 8,
      discard: true
    })
    Processes.report({ acknowledged: count })
  })))

export const run = async (
  location: Stores.Location,
  options: { readonly processes?: number; readonly perProcess?: number } = {}
): Promise<ReadonlyArray<Result>> => {
  const processes = options.processes ?? 4
  const perProcess = options.perProcess ?? 100
  const results: Array<Result> = []
  for (const method of ["platform default modify", "durable-singleton modify"] as const) {
    await Effect.runPromise(Effect.scoped(Effect.flatMap(Stores.open(location), (store) => store.set(key, "0"))))
    const reports = await Processes.run<{ readonly acknowledged: number }>(import.meta.url, processes, [
      method,
      JSON.stringify(location),
      String(perProcess)
    ])
    const increments = reports.reduce((n, r) => n + r.acknowledged, 0)
    // Read the result and leave nothing behind.
    const final = await Effect.runPromise(
      Effect.scoped(Effect.flatMap(Stores.open(location), (store) => Effect.zipLeft(store.get(key), store.remove(key))))
    )
    const value = Number(Option.getOrElse(final, () => "0"))
    results.push({ store: location.kind, method, increments, final: value, lost: increments - value })
  }
  return results
}

if (Processes.isMain(import.meta.url) && process.argv[2] === "--child") {
  child(process.argv[3] as Method, JSON.parse(process.argv[4]!), Number(process.argv[5])).catch((error) => {
    console.error(error)
    process.exit(1)
  })
}
