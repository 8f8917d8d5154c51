/**
 * Why a store can beat the raw client (a ratio above 1×): what our store does that the raw
 * loop of the same cell does not, as read in the store's source. Printed in the notes at the
 * end of a run, for the rows above 1×.
 */
import type { Row } from "./Report.js"

const cellName = (row: Row) =>
  `${row.variant === "" ? "" : `${row.variant}, `}c${row.cell.concurrency} ${row.cell.keys === "hot" ? "1 hot key" : `${row.cell.keys} keys`}`

// Where ours does what the raw loop does, a ratio above 1× is no advantage of a method.
const sameMethod = "a ratio above 1× is not a cheaper method (compare it across runs)"

const hotAndConcurrent = (row: Row) => row.cell.keys === "hot" && row.cell.concurrency > 1

const postgres = (row: Row): ReadonlyArray<string> => [
  "our store remembers the version it last read or wrote for each key (the benchmark seeds every key through the store, " +
  "and no one else writes), so an update runs f on the remembered value and writes it with one " +
  "`UPDATE … WHERE version = $v`: one round trip, against two for the raw version CAS (SELECT, then UPDATE) and four " +
  "for the row lock (BEGIN, SELECT … FOR UPDATE, UPDATE, COMMIT) (packages/store-postgres/src/internal/backend.ts)",
  ...(hotAndConcurrent(row)
    ? ["also, updates of one key queue inside the store before they take a connection, so its workers never conflict " +
      "with each other in the database, while the raw workers conflict (CAS retries) or wait on the row lock"]
    : [])
]

const redis = (row: Row): ReadonlyArray<string> => [
  row.variant.includes("processes")
    ? "one worker per process, so no calls to combine; both sides retry a conflict at once with the value the script " +
      "returns, and ours, after 8 conflicts in a row, waits 1–2 ms at random and reads afresh, where the raw loop keeps " +
      "retrying (packages/store-redis/src/internal/modifier.ts)"
    : hotAndConcurrent(row)
    ? "calls of one store on one key are combined: while the key's compare-and-set is in flight, later calls queue, " +
      "then run as one batch (each f on the value the previous one decided) written by one EVALSHA that starts from the " +
      "value just written, with no GET; the raw workers each send their own GET + EVALSHA and conflict with one another " +
      "(retried). Not ioredis auto-pipelining: both sides run with ioredis's defaults (enableAutoPipelining off), one " +
      "connection each (packages/store-redis/src/internal/modifier.ts)"
    : "ours sends the same GET + EVALSHA per call as the raw loop here (a call is combined with others only while " +
      "another call on its key is in flight), so " + sameMethod
]

const sqlite = (row: Row): ReadonlyArray<string> => [
  row.variant.includes("processes")
    ? "ours runs the same BEGIN IMMEDIATE transaction as the raw loop, with a like busy policy (busy_timeout 2 ms, " +
      "then jittered asynchronous waits growing from about 1 to 10 ms), so " + sameMethod
    : "ours runs the same BEGIN IMMEDIATE read-modify-write as the raw transaction, in one synchronous step on " +
      "better-sqlite3, so " + sameMethod
]

// The reasons of a store for a row; rows sharing a reason share its line.
const explain: Partial<Record<string, (row: Row) => ReadonlyArray<string>>> = { postgres, redis, sqlite }

/** Why the rows above 1× are: one line per reason, naming its store, cells and ratios. */
export const aboveBaseline = (rows: ReadonlyArray<Row>): ReadonlyArray<string> => {
  const byReason = new Map<string, { readonly store: string; readonly cells: Array<string> }>()
  for (const row of rows) {
    if (row.ratio <= 1) continue
    for (const why of explain[row.store]?.(row) ?? []) {
      const entry = byReason.get(why) ?? { store: row.store, cells: [] }
      entry.cells.push(`${cellName(row)} ${row.ratio.toFixed(2)}×`)
      byReason.set(why, entry)
    }
  }
  return [...byReason].map(([why, { cells, store }]) => `${store} above 1× (${cells.join("; ")}): ${why}`)
}
