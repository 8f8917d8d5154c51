/**
 * The multi-process test of every store: child processes (support/increment-child.ts), each with
 * its own store on the same location, increment one counter. Each store's test file calls it
 * with its own location.
 */
import { expect } from "@effect/vitest"
import { Effect, Option } from "effect"
import { counter, type Options } from "./increment-child.js"
import * as Processes from "./Processes.js"
import * as Stores from "./Stores.js"

/**
 * Starts the processes, lets them go at once when all are ready, and returns the counter value
 * each increment saw, per process.
 */
export const run = (location: Stores.Location, options: Options): Effect.Effect<ReadonlyArray<ReadonlyArray<number>>> =>
  Effect.map(
    Effect.promise((signal) =>
      Processes.run<{ readonly seen: ReadonlyArray<number> }>(
        new URL("./increment-child.ts", import.meta.url).href,
        options.processes,
        [JSON.stringify(location), JSON.stringify(options)],
        signal
      )
    ),
    (reports) => reports.map((report) => report.seen)
  )

/**
 * 4 processes × 250 concurrent `modify` increments end at exactly 1000, and every increment saw
 * a distinct value: none was lost, none applied twice.
 */
export const expectExact = (location: Stores.Location) =>
  Effect.gen(function*() {
    const seen = (yield* run(location, { processes: 4, increments: 250, concurrency: 4 })).flat()
    expect(seen).toHaveLength(1000)
    expect(new Set(seen).size).toBe(1000)
    const store = yield* Stores.open(location)
    expect(yield* store.get(counter)).toEqual(Option.some("1000"))
  })
