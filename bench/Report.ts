/**
 * The shape every benchmark reports in, and a plain table printer. Each row compares our store
 * with the best raw-client method for the same atomic read-modify-write, measured in the same run.
 */
import type { Measurement } from "./Harness.js"

export interface Cell {
  readonly concurrency: number
  /** One hot key, or this many keys chosen at random. */
  readonly keys: "hot" | number
}

export interface Row {
  /** e.g. "sqlite", "postgres", "redis", "memory" */
  readonly store: string
  /** Server or durability setting the row ran under, e.g. "synchronous_commit=off"; "" if none. */
  readonly variant: string
  readonly cell: Cell
  readonly ours: Measurement
  /** The best raw method that works for an arbitrary function, measured in the same run. */
  readonly baseline: { readonly method: string; readonly measurement: Measurement }
  /** A server-side lower bound (e.g. a single UPDATE … RETURNING, INCR), for context only. */
  readonly lowerBound?: { readonly method: string; readonly measurement: Measurement }
  /** Our ops/s divided by the baseline's. */
  readonly ratio: number
  /** Whether the final counters equalled the number of acknowledged increments, for both sides. */
  readonly exact: boolean
}

const pad = (s: string, n: number) => s.length >= n ? s : s + " ".repeat(n - s.length)
const num = (n: number) => Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "-"
const ms = (n: number) => Number.isFinite(n) ? n.toFixed(3) : "-"

// Quantiles where they were recorded, otherwise the mean time per operation (sub-microsecond
// for the in-memory loops, hence two significant digits).
const latency = (m: Measurement) =>
  m.meanMs !== undefined && Number.isNaN(m.p50Ms) ? `mean ${m.meanMs.toPrecision(2)}` : `${ms(m.p50Ms)}/${ms(m.p99Ms)}`

/**
 * One line per row: ours, the baseline, the ratio, and the raw client's lower bound where one
 * was measured ("-" otherwise).
 */
export const formatTable = (rows: ReadonlyArray<Row>): string => {
  const header = [
    "store",
    "variant",
    "conc",
    "keys",
    "ours ops/s",
    "p50/p99 ms",
    "baseline",
    "base ops/s",
    "p50/p99 ms",
    "ratio",
    "lower bound",
    "bound ops/s",
    "exact"
  ]
  const lines = rows.map((r) => [
    r.store,
    r.variant,
    String(r.cell.concurrency),
    r.cell.keys === "hot" ? "1 hot" : String(r.cell.keys),
    num(r.ours.opsPerSec),
    latency(r.ours),
    r.baseline.method,
    num(r.baseline.measurement.opsPerSec),
    latency(r.baseline.measurement),
    r.ratio.toFixed(2) + "x",
    r.lowerBound?.method ?? "-",
    r.lowerBound === undefined ? "-" : num(r.lowerBound.measurement.opsPerSec),
    r.exact ? "yes" : "NO"
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)))
  return [header, ...lines].map((l) => l.map((c, i) => pad(c, widths[i]!)).join("  ").trimEnd()).join("\n")
}
