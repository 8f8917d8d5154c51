/**
 * The timing loop shared by every benchmark: `concurrency` workers run one operation after
 * another for a warm-up, then for a measured window, recording each operation's latency.
 * Raw clients are measured with {@link measurePromise}; our Effect-based stores with
 * {@link measureEffect}, whose loop runs inside one Effect runtime (so no per-operation
 * `runPromise` cost lands on our side of a comparison). {@link combine} merges the measurements
 * of processes that ran at once.
 */
import { Effect } from "effect"
import type { Cell } from "./Report.js"

export interface Window {
  readonly concurrency: number
  readonly warmupMs: number
  readonly durationMs: number
}

export interface Measurement {
  readonly ops: number
  readonly seconds: number
  readonly opsPerSec: number
  /** NaN where per-operation latencies were not recorded ({@link meanMs} is then set). */
  readonly p50Ms: number
  readonly p99Ms: number
  readonly p999Ms: number
  readonly maxMs: number
  /**
   * The mean time per operation (window ÷ operations), for loops too fast to time each
   * operation; absent where latencies were recorded.
   */
  readonly meanMs?: number
  /** Retries reported by the operations, per operation. */
  readonly retriesPerOp: number
  /** Operations per worker in the measured window (fairness). */
  readonly perWorker: ReadonlyArray<number>
}

/** An operation returns how many times it had to retry (or nothing). */
type Retries = number | void

class Recorder {
  private latencies = new Float64Array(1 << 16)
  private count = 0
  retries = 0
  readonly perWorker: Array<number>
  constructor(concurrency: number, readonly start: number, readonly measureFrom: number, readonly end: number) {
    this.perWorker = Array.from({ length: concurrency }, () => 0)
  }
  record(worker: number, began: number, ended: number, retries: Retries) {
    if (began < this.measureFrom) return
    if (this.count === this.latencies.length) {
      const grown = new Float64Array(this.latencies.length * 2)
      grown.set(this.latencies)
      this.latencies = grown
    }
    this.latencies[this.count++] = ended - began
    this.retries += retries ?? 0
    this.perWorker[worker]!++
  }
  result(finished: number): Measurement {
    const sorted = this.latencies.subarray(0, this.count).sort()
    const at = (q: number) => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
    const seconds = (Math.max(finished, this.end) - this.measureFrom) / 1000
    return {
      ops: this.count,
      seconds,
      opsPerSec: this.count / seconds,
      p50Ms: at(0.5),
      p99Ms: at(0.99),
      p999Ms: at(0.999),
      maxMs: sorted.length === 0 ? NaN : sorted[sorted.length - 1]!,
      retriesPerOp: this.count === 0 ? 0 : this.retries / this.count,
      perWorker: this.perWorker
    }
  }
}

const recorder = (window: Window) => {
  const start = performance.now()
  return new Recorder(window.concurrency, start, start + window.warmupMs, start + window.warmupMs + window.durationMs)
}

export const measurePromise = async (
  window: Window,
  op: (worker: number) => Promise<Retries>
): Promise<Measurement> => {
  const rec = recorder(window)
  await Promise.all(Array.from({ length: window.concurrency }, async (_, worker) => {
    while (performance.now() < rec.end) {
      const began = performance.now()
      const retries = await op(worker)
      rec.record(worker, began, performance.now(), retries)
    }
  }))
  return rec.result(performance.now())
}

export const measureEffect = <E, R>(
  window: Window,
  op: (worker: number) => Effect.Effect<Retries, E, R>
): Effect.Effect<Measurement, E, R> =>
  Effect.suspend(() => {
    const rec = recorder(window)
    const loop = (worker: number): Effect.Effect<void, E, R> =>
      Effect.suspend(() => {
        if (performance.now() >= rec.end) return Effect.void
        const began = performance.now()
        return Effect.flatMap(op(worker), (retries: Retries) => {
          rec.record(worker, began, performance.now(), retries)
          return loop(worker)
        })
      })
    return Effect.forEach(Array.from({ length: window.concurrency }, (_, i) => i), loop, {
      concurrency: "unbounded",
      discard: true
    }).pipe(Effect.map(() => rec.result(performance.now())))
  })

/** The cells every store is measured in: 1 and 8 concurrent workers × one hot key or 1000 keys. */
export const cells: ReadonlyArray<Cell> = [
  { concurrency: 1, keys: "hot" },
  { concurrency: 1, keys: 1000 },
  { concurrency: 8, keys: "hot" },
  { concurrency: 8, keys: 1000 }
]

/** The update every benchmark measures: the increment of a string counter. */
export const increment = (n: string) => String(Number(n) + 1)

/** Every key a cell's workers use: the hot key, or `spread` keys. */
export const keysOf = (keys: Cell["keys"]): ReadonlyArray<string> =>
  keys === "hot" ? ["bench:hot"] : Array.from({ length: keys }, (_, i) => `bench:${i}`)

/** The key a worker uses for its next operation: the hot key, or one of `spread` keys at random. */
export const keyChooser = (keys: Cell["keys"]) =>
  keys === "hot" ? () => "bench:hot" : () => `bench:${Math.floor(Math.random() * keys)}`

/** A measurement and how many of its increments were acknowledged (what a timed child process reports). */
export interface Timed {
  readonly measurement: Measurement
  readonly acked: number
}

/**
 * The children of one timed run as one measurement: operations and throughputs add up,
 * `perWorker` holds each process's operations, and latencies are those of the worst process (an
 * upper bound of the combined quantiles).
 */
export const combine = (reports: ReadonlyArray<Timed>): Timed => {
  const ms = reports.map((r) => r.measurement)
  const ops = ms.reduce((n, m) => n + m.ops, 0)
  const worst = (f: (m: Measurement) => number) => Math.max(...ms.map(f))
  return {
    measurement: {
      ops,
      seconds: worst((m) => m.seconds),
      opsPerSec: ms.reduce((n, m) => n + m.opsPerSec, 0),
      p50Ms: worst((m) => m.p50Ms),
      p99Ms: worst((m) => m.p99Ms),
      p999Ms: worst((m) => m.p999Ms),
      maxMs: worst((m) => m.maxMs),
      retriesPerOp: ops === 0 ? 0 : ms.reduce((n, m) => n + m.retriesPerOp * m.ops, 0) / ops,
      perWorker: ms.map((m) => m.ops)
    },
    acked: reports.reduce((n, r) => n + r.acked, 0)
  }
}
