/**
 * PgStore's atomic increment (`store.modify`) against raw `pg` doing its own best atomic
 * read-modify-write, measured in the same run: the row lock (`BEGIN; SELECT … FOR UPDATE;
 * UPDATE; COMMIT`) and the version compare-and-set (`SELECT; UPDATE … WHERE version = $v`, retry
 * on conflict), both with named prepared statements on one checked-out connection per operation.
 * The baseline of each cell is the better of the two; a single `UPDATE … RETURNING` (the server
 * computes the increment: no arbitrary `f`) is shown as a lower bound.
 *
 * Cells: 1 and 8 concurrent workers × one hot key or 1000 keys at random; each twice, with the
 * server's default durability and with `synchronous_commit=off` (set per session, not on the
 * server).
 *
 *   DATABASE_URL=postgres://… node --conditions=@durable-singleton/source --import tsx \
 *     packages/store-postgres/bench/postgres.bench.ts
 *
 * Each method runs `rounds` times per cell (default 3) in rotating order, and its best window
 * counts: on a shared 2-core machine other processes disturb single windows, and they disturb
 * both sides alike.
 *
 * Environment: BENCH_WARMUP_MS (default 500), BENCH_DURATION_MS (default 2000), BENCH_ROUNDS
 * (default 3).
 */
import { PgStore } from "@durable-singleton/store-postgres"
import { Effect } from "effect"
import * as Pg from "pg"
import { cells, increment, keyChooser, keysOf, type Measurement, measureEffect, measurePromise, type Window } from "../../../bench/Harness.js"
import { type Cell, formatTable, type Row } from "../../../bench/Report.js"
import * as Processes from "../../../support/Processes.js"

export interface Options {
  readonly url: string
  readonly warmupMs?: number
  readonly durationMs?: number
  /** Defaults to both: the server's durability and `synchronous_commit=off`. */
  readonly variants?: ReadonlyArray<Variant>
  readonly cells?: ReadonlyArray<Cell>
  /** Each method is measured this many times per cell (in rotating order); the best counts. */
  readonly rounds?: number
  readonly log?: (line: string) => void
}

export interface Variant {
  /** As shown in the report. */
  readonly name: string
  readonly synchronousCommit?: "off"
}

export const defaultVariants: ReadonlyArray<Variant> = [{ name: "" }, { name: "synchronous_commit=off", synchronousCommit: "off" }]

const allKeys = [...new Set(cells.flatMap((cell) => keysOf(cell.keys)))]

interface Method {
  readonly name: string
  readonly measure: (window: Window, key: () => string) => Promise<Measurement>
  /** Every counter back to "0" on a freshly truncated table. */
  readonly reset: () => Promise<void>
  /** The sum of all counters. */
  readonly sum: () => Promise<number>
}

// One operation on a connection checked out of the pool for it.
const withConnection = async <A>(pool: Pg.Pool, f: (client: Pg.PoolClient) => Promise<A>): Promise<A> => {
  const client = await pool.connect()
  try {
    return await f(client)
  } finally {
    client.release()
  }
}

/** Raw pg methods on a plain table `(k text primary key, v text, version bigint)`. */
const rawMethods = (pool: Pg.Pool, admin: Pg.Pool, table: string): ReadonlyArray<Method> => {
  const reset = async () => {
    await admin.query(`TRUNCATE ${table}`)
    await admin.query(`INSERT INTO ${table} SELECT k, '0', 0 FROM unnest($1::text[]) k`, [allKeys])
  }
  const sum = async () => Number((await admin.query(`SELECT sum(v::bigint) AS s FROM ${table}`)).rows[0].s)
  const selectForUpdate = { name: `${table}_lock_select`, text: `SELECT v FROM ${table} WHERE k = $1 FOR UPDATE` }
  const update = { name: `${table}_lock_update`, text: `UPDATE ${table} SET v = $2 WHERE k = $1` }
  const select = { name: `${table}_cas_select`, text: `SELECT v, version FROM ${table} WHERE k = $1` }
  const compareAndSet = {
    name: `${table}_cas_update`,
    text: `UPDATE ${table} SET v = $2, version = version + 1 WHERE k = $1 AND version = $3`
  }
  const serverIncrement = {
    name: `${table}_increment`,
    text: `UPDATE ${table} SET v = (v::bigint + 1)::text WHERE k = $1 RETURNING v`
  }
  // `operation` on the key it is given; every raw method shares the table, reset and sum.
  const method = (name: string, operation: (key: string) => Promise<number | void>): Method => ({
    name,
    reset,
    sum,
    measure: (window, key) => measurePromise(window, () => operation(key()))
  })
  return [
    method("pg row lock", (k) =>
      withConnection(pool, async (client) => {
        await client.query("BEGIN")
        const { rows } = await client.query({ ...selectForUpdate, values: [k] })
        await client.query({ ...update, values: [k, increment(rows[0].v)] })
        await client.query("COMMIT")
      })),
    method("pg version CAS", (k) =>
      withConnection(pool, async (client) => {
        for (let retries = 0;; retries++) {
          const { rows } = await client.query({ ...select, values: [k] })
          const updated = await client.query({ ...compareAndSet, values: [k, increment(rows[0].v), rows[0].version] })
          if (updated.rowCount === 1) return retries
        }
      })),
    method("pg UPDATE RETURNING", async (k) => {
      await pool.query({ ...serverIncrement, values: [k] })
    })
  ]
}

const sessionOptions = (variant: Variant) =>
  variant.synchronousCommit === undefined ? {} : { options: `-c synchronous_commit=${variant.synchronousCommit}` }

export const run = async (options: Options): Promise<ReadonlyArray<Row>> => {
  const log = options.log ?? (() => {})
  const rounds = options.rounds ?? 3
  const rows: Array<Row> = []
  const table = `bench_raw_${process.pid}`
  const storeTable = `bench_store_${process.pid}`
  const admin = new Pg.Pool({ connectionString: options.url, max: 1 })
  try {
    await admin.query(`CREATE TABLE ${table} (k text PRIMARY KEY, v text NOT NULL, version bigint NOT NULL)`)
    for (const variant of options.variants ?? defaultVariants) {
      const pool = new Pg.Pool({ connectionString: options.url, max: 10, ...sessionOptions(variant) })
      try {
        await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          const store = yield* PgStore.make({
            url: options.url,
            table: storeTable,
            namespace: "bench",
            maxConnections: 10,
            ...(variant.synchronousCommit === undefined ? {} : { synchronousCommit: variant.synchronousCommit })
          })
          const methods: ReadonlyArray<Method> = [
            {
              name: "ours",
              measure: (window, key) =>
                Effect.runPromise(measureEffect(window, () => Effect.asVoid(store.modify(key(), increment)))),
              reset: async () => {
                // TRUNCATE rather than clear(): no dead rows left for the next measurement
                await admin.query(`TRUNCATE ${storeTable}`)
                await Effect.runPromise(
                  Effect.forEach(allKeys, (k) => store.set(k, "0"), { concurrency: 8, discard: true })
                )
              },
              sum: () =>
                Effect.runPromise(Effect.map(
                  Effect.forEach(allKeys, (k) => store.get(k), { concurrency: 8 }),
                  (values) => values.reduce((sum, v) => sum + (v._tag === "Some" ? Number(v.value) : 0), 0)
                ))
            },
            ...rawMethods(pool, admin, table)
          ]
          for (const cell of options.cells ?? cells) {
            const window: Window = {
              concurrency: cell.concurrency,
              warmupMs: options.warmupMs ?? 500,
              durationMs: options.durationMs ?? 2000
            }
            const key = keyChooser(cell.keys)
            let exact = true
            const best = new Map<string, Measurement>()
            for (let round = 0; round < rounds; round++) {
              // Rotate the order so that no method always runs first (or last) in a round.
              for (let i = 0; i < methods.length; i++) {
                const method = methods[(i + round) % methods.length]!
                yield* Effect.promise(method.reset)
                let acknowledged = 0
                const measurement = yield* Effect.promise(() =>
                  method.measure(window, () => {
                    acknowledged++
                    return key()
                  })
                )
                exact &&= (yield* Effect.promise(method.sum)) === acknowledged
                const previous = best.get(method.name)
                if (previous === undefined || measurement.opsPerSec > previous.opsPerSec) {
                  best.set(method.name, measurement)
                }
              }
            }
            const ours = best.get("ours")!
            const lock = best.get("pg row lock")!
            const cas = best.get("pg version CAS")!
            const lowerBound = best.get("pg UPDATE RETURNING")!
            const baseline = lock.opsPerSec >= cas.opsPerSec
              ? { method: "pg row lock", measurement: lock }
              : { method: "pg version CAS", measurement: cas }
            const row: Row = {
              store: "postgres",
              variant: variant.name,
              cell,
              ours,
              baseline,
              lowerBound: { method: "pg UPDATE RETURNING", measurement: lowerBound },
              ratio: ours.opsPerSec / baseline.measurement.opsPerSec,
              exact
            }
            rows.push(row)
            log(
              `${variant.name || "default durability"} c${cell.concurrency} ${cell.keys}: ours ${
                Math.round(ours.opsPerSec)
              }/s, row lock ${Math.round(lock.opsPerSec)}/s, CAS ${Math.round(cas.opsPerSec)}/s (${
                cas.retriesPerOp.toFixed(2)
              } retries/op), UPDATE RETURNING ${Math.round(lowerBound.opsPerSec)}/s, ratio ${row.ratio.toFixed(2)}${
                exact ? "" : " (COUNT MISMATCH)"
              }`
            )
          }
        })))
      } finally {
        await pool.end()
      }
    }
  } finally {
    await admin.query(`DROP TABLE IF EXISTS ${table}; DROP TABLE IF EXISTS ${storeTable}`)
    await admin.end()
  }
  return rows
}

if (Processes.isMain(import.meta.url)) {
  const url = process.env.DATABASE_URL
  if (url === undefined || url === "") {
    console.error("Set DATABASE_URL (e.g. eval \"$(bash scripts/servers.sh env)\").")
    process.exit(1)
  }
  const number = (name: string) => process.env[name] === undefined ? undefined : Number(process.env[name])
  const rows = await run({
    url,
    ...(number("BENCH_WARMUP_MS") === undefined ? {} : { warmupMs: number("BENCH_WARMUP_MS")! }),
    ...(number("BENCH_DURATION_MS") === undefined ? {} : { durationMs: number("BENCH_DURATION_MS")! }),
    ...(number("BENCH_ROUNDS") === undefined ? {} : { rounds: number("BENCH_ROUNDS")! }),
    log: (line) => console.error(line)
  })
  console.log(formatTable(rows))
}
