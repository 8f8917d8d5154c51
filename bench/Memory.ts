/**
 * MemoryStore's atomic `modify` against effect's `Ref.modify` (a map of refs for many keys)
 * doing the same string increment, in tight loops inside one Effect runtime. At a few hundred
 * nanoseconds per operation, timing each one would cost as much as the operation, so a cell
 * reports throughput and the mean time per operation (`meanMs`; no quantiles are measured).
 */
import { MemoryStore } from "@durable-singleton/core"
import { Effect, Ref } from "effect"
import { cells, increment, keysOf, type Measurement } from "./Harness.js"
import type { Cell, Row } from "./Report.js"

// `opsPerWorker` operations on each of `concurrency` fibers; key i of a worker is keys[i % n].
const loop = (
  cell: Cell,
  opsPerWorker: number,
  op: (key: number) => Effect.Effect<unknown, unknown>
): Effect.Effect<Measurement, unknown> =>
  Effect.suspend(() => {
    const n = cell.keys === "hot" ? 1 : cell.keys
    const started = performance.now()
    return Effect.forEach(
      Array.from({ length: cell.concurrency }),
      (_, worker) =>
        Effect.gen(function*() {
          for (let i = 0; i < opsPerWorker; i++) yield* op((i + worker * 7919) % n)
        }),
      { concurrency: "unbounded", discard: true }
    ).pipe(Effect.map(() => {
      const seconds = (performance.now() - started) / 1000
      const ops = opsPerWorker * cell.concurrency
      return {
        ops,
        seconds,
        opsPerSec: ops / seconds,
        p50Ms: NaN,
        p99Ms: NaN,
        p999Ms: NaN,
        maxMs: NaN,
        meanMs: (seconds * 1000) / ops,
        retriesPerOp: 0,
        perWorker: Array.from({ length: cell.concurrency }, () => opsPerWorker)
      }
    }))
  })

const ours = (cell: Cell, opsPerWorker: number) =>
  Effect.scoped(Effect.gen(function*() {
    const store = yield* MemoryStore.make()
    const keys = keysOf(cell.keys)
    for (const key of keys) yield* store.set(key, "0")
    const measurement = yield* loop(cell, opsPerWorker, (i) => store.modify(keys[i]!, increment))
    let total = 0
    for (const key of keys) total += Number((yield* store.get(key)).pipe((o) => o._tag === "Some" ? o.value : "0"))
    return { measurement, exact: total === measurement.ops }
  }))

const baseline = (cell: Cell, opsPerWorker: number) =>
  Effect.gen(function*() {
    const refs = yield* Effect.forEach(keysOf(cell.keys), () => Ref.make("0"))
    const measurement = yield* loop(cell, opsPerWorker, (i) =>
      Ref.modify(refs[i]!, (n) => {
        const next = increment(n)
        return [next, next]
      }))
    let total = 0
    for (const ref of refs) total += Number(yield* Ref.get(ref))
    return { measurement, exact: total === measurement.ops }
  })

/** Best of `rounds` alternating rounds for each side. */
export const run = (options: { readonly opsPerCell?: number; readonly rounds?: number } = {}): Promise<ReadonlyArray<Row>> =>
  Effect.runPromise(Effect.forEach(cells, (cell) =>
    Effect.gen(function*() {
      const opsPerWorker = Math.floor((options.opsPerCell ?? 2_000_000) / cell.concurrency)
      let best: { ours?: Measurement; baseline?: Measurement } = {}
      let exact = true
      for (let round = 0; round < (options.rounds ?? 3); round++) {
        const a = yield* ours(cell, opsPerWorker)
        const b = yield* baseline(cell, opsPerWorker)
        exact &&= a.exact && b.exact
        if (best.ours === undefined || a.measurement.opsPerSec > best.ours.opsPerSec) best = { ...best, ours: a.measurement }
        if (best.baseline === undefined || b.measurement.opsPerSec > best.baseline.opsPerSec) best = { ...best, baseline: b.measurement }
      }
      return {
        store: "memory",
        variant: "",
        cell,
        ours: best.ours!,
        baseline: { method: "effect Ref.modify", measurement: best.baseline! },
        ratio: best.ours!.opsPerSec / best.baseline!.opsPerSec,
        exact
      } satisfies Row
    })))
