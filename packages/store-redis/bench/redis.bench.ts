/**
 * Redis: our store's atomic `modify` (an increment of a string counter) against raw ioredis
 * doing the same read-modify-write for an arbitrary function, measured in the same run on the
 * same server.
 *
 * - Cells: concurrency 1 and 8 (workers in one process, one connection per method) × one hot
 *   key and 1000 keys.
 * - Baseline: raw ioredis `GET` (Buffer reply), the increment computed in JavaScript, then the
 *   same Lua compare-and-set our store uses (`EVALSHA`; on a conflict it returns the current
 *   value, and the raw client retries with it at once). Same stored bytes as ours (a kind tag
 *   then the text), default ioredis options (measured faster here than `enableAutoPipelining`).
 * - Lower bound: `INCR` (the server computes the increment; works for increments only).
 * - Across processes: 4 processes, one worker each, on one hot key: ours against the raw
 *   baseline, as a line under the table (calls of one process are combined, those of
 *   different processes conflict).
 *
 * Standalone (REDIS_URL must point at a server; `bash scripts/servers.sh start redis`):
 *   node --conditions=@durable-singleton/source --import tsx packages/store-redis/bench/redis.bench.ts
 *   (options: --warmup=<ms> --duration=<ms> --rounds=<n> --processes-only)
 */
import { RedisStore } from "@durable-singleton/store-redis"
import { Effect, Option } from "effect"
import { Redis } from "ioredis"
import { createHash, randomUUID } from "node:crypto"
import { cells, combine, increment, keyChooser, keysOf, type Measurement, measureEffect, measurePromise, type Timed, type Window } from "../../../bench/Harness.js"
import { type Cell, formatTable, type Row } from "../../../bench/Report.js"
import * as Processes from "../../../support/Processes.js"
import { script } from "../src/internal/modifier.js"

export interface Options {
  /** Default: the REDIS_URL environment variable. */
  readonly url?: string
  readonly warmupMs?: number
  readonly durationMs?: number
  /** Processes in the multi-process run (default 4; 0 skips it). */
  readonly processes?: number
  /**
   * Each in-process cell measures raw and ours this many times, alternating, and reports the
   * median of each (default 5): the machine is shared, and single runs swing.
   */
  readonly rounds?: number
  /** Run the in-process cells (default true). */
  readonly inProcess?: boolean
}

const baselineMethod = "GET + Lua CAS (EVALSHA)"
const lowerBoundMethod = "INCR"
const sha = createHash("sha1").update(script).digest("hex")

// Our store's key layout (see RedisStore): the raw methods use the same keys and bytes.
const namespace = "bench"
const redisKey = (prefix: string, key: string) => `${prefix}${namespace.length}:${namespace}:${key}`
const tagged = (text: string) => Buffer.from(`\u0000${text}`)
const untag = (bytes: Buffer) => bytes.toString("utf8", 1)

type Method = "ours" | "raw" | "incr"

const withClient = async <A>(url: string, f: (client: Redis) => Promise<A>): Promise<A> => {
  const client = new Redis(url)
  try {
    return await f(client)
  } finally {
    client.disconnect()
  }
}

const seed = (url: string, prefix: string, method: Method, keys: ReadonlyArray<string>) =>
  withClient(url, async (client) => {
    const pipeline = client.pipeline()
    for (const key of keys) pipeline.set(redisKey(prefix, key), method === "incr" ? "0" : tagged("0"))
    await pipeline.exec()
  })

const total = (url: string, prefix: string, method: Method, keys: ReadonlyArray<string>) =>
  withClient(url, async (client) => {
    const values = await client.mgetBuffer(...keys.map((key) => redisKey(prefix, key)))
    return values.reduce((sum, value) => sum + Number(method === "incr" ? value!.toString() : untag(value!)), 0)
  })

// The raw client's best atomic read-modify-write for an arbitrary function.
const rawModify = async (client: Redis, key: string, f: (text: string) => string): Promise<number> => {
  let current = (await client.getBuffer(key))!
  for (let retries = 0;; retries++) {
    const expected = current
    const next = tagged(f(untag(expected)))
    let reply: unknown
    try {
      reply = await client.callBuffer("EVALSHA", sha, 1, key, expected, next)
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith("NOSCRIPT"))) throw error
      reply = await client.callBuffer("EVAL", script, 1, key, expected, next)
    }
    if (reply === 1) return retries
    current = reply as Buffer
  }
}

// One method on one cell, with its own connection. Counts every acknowledged increment (warm-up
// included) to check the final counters.
const measure = async (url: string, prefix: string, method: Method, window: Window, keys: Cell["keys"]): Promise<Timed> => {
  const pick = keyChooser(keys)
  let acked = 0
  if (method === "ours") {
    const measurement = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const store = yield* RedisStore.make({ url, prefix, namespace })
      return yield* measureEffect(window, () => {
        // Our retries: `f` runs once per compare-and-set attempt.
        let calls = 0
        return Effect.map(store.modify(pick(), (n) => (calls++, increment(n))), (next: Option.Option<string>) => {
          if (Option.isSome(next)) acked++
          return calls - 1
        })
      })
    })))
    return { measurement, acked }
  }
  const measurement = await withClient(url, (client) =>
    measurePromise(window, async () => {
      const key = redisKey(prefix, pick())
      const retries = method === "raw" ? await rawModify(client, key, increment) : (await client.incr(key), 0)
      acked++
      return retries
    }))
  return { measurement, acked }
}

const measureCell = async (url: string, method: Method, window: Window, keys: Cell["keys"]) => {
  const prefix = `durable-singleton-bench:${randomUUID()}:`
  await seed(url, prefix, method, keysOf(keys))
  try {
    const { acked, measurement } = await measure(url, prefix, method, window, keys)
    return { measurement, exact: await total(url, prefix, method, keysOf(keys)) === acked }
  } finally {
    await withClient(url, (client) => client.unlink(...keysOf(keys).map((key) => redisKey(prefix, key))))
  }
}

const median = (runs: ReadonlyArray<{ readonly measurement: Measurement; readonly exact: boolean }>) => {
  const sorted = [...runs].sort((a, b) => a.measurement.opsPerSec - b.measurement.opsPerSec)
  return { measurement: sorted[Math.floor(sorted.length / 2)]!.measurement, exact: runs.every((run) => run.exact) }
}

const inProcessRows = async (url: string, options: Required<Omit<Options, "url">>): Promise<Array<Row>> => {
  const rows: Array<Row> = []
  for (const cell of cells) {
    const window = { concurrency: cell.concurrency, warmupMs: options.warmupMs, durationMs: options.durationMs }
    const raws: Array<{ measurement: Measurement; exact: boolean }> = []
    const ourRuns: Array<{ measurement: Measurement; exact: boolean }> = []
    for (let round = 0; round < options.rounds; round++) {
      // Alternate the order, so that a drift in the machine's load favours neither side.
      const order: ReadonlyArray<"raw" | "ours"> = round % 2 === 0 ? ["raw", "ours"] : ["ours", "raw"]
      for (const method of order) {
        const run = await measureCell(url, method, window, cell.keys)
        ;(method === "raw" ? raws : ourRuns).push(run)
      }
    }
    const baseline = median(raws)
    const ours = median(ourRuns)
    const lowerBound = await measureCell(url, "incr", window, cell.keys)
    rows.push({
      store: "redis",
      variant: "",
      cell,
      ours: ours.measurement,
      baseline: { method: baselineMethod, measurement: baseline.measurement },
      lowerBound: { method: lowerBoundMethod, measurement: lowerBound.measurement },
      ratio: ours.measurement.opsPerSec / baseline.measurement.opsPerSec,
      exact: ours.exact && baseline.exact && lowerBound.exact
    })
  }
  return rows
}

// --- across processes -------------------------------------------------------------------------

// A child process: connects, says "ready", waits for "go", runs one worker on the hot key and
// reports its measurement and acknowledged count.
const child = async (method: "ours" | "raw", url: string, prefix: string, window: Window) => {
  let acked = 0
  let measurement: Measurement
  if (method === "ours") {
    measurement = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const store = yield* RedisStore.make({ url, prefix, namespace })
      yield* Effect.promise(Processes.ready)
      return yield* measureEffect(window, () => {
        let calls = 0
        return Effect.map(store.modify("bench:hot", (n) => (calls++, increment(n))), () => {
          acked++
          return calls - 1
        })
      })
    })))
  } else {
    measurement = await withClient(url, async (client) => {
      await client.ping()
      await Processes.ready()
      return measurePromise(window, async () => {
        const retries = await rawModify(client, redisKey(prefix, "bench:hot"), increment)
        acked++
        return retries
      })
    })
  }
  Processes.report({ measurement, acked } satisfies Timed)
}

const runProcesses = async (url: string, method: "ours" | "raw", processes: number, window: Window) => {
  const prefix = `durable-singleton-bench:${randomUUID()}:`
  await seed(url, prefix, method, ["bench:hot"])
  const reports = await Processes.run<Timed>(import.meta.url, processes, [method, url, prefix, JSON.stringify(window)])
  const { acked, measurement } = combine(reports)
  const exact = await total(url, prefix, method, ["bench:hot"]) === acked
  await withClient(url, (client) => client.unlink(redisKey(prefix, "bench:hot")))
  return { measurement, exact }
}

const multiProcessRow = async (url: string, options: Required<Omit<Options, "url">>): Promise<Row> => {
  const window = { concurrency: 1, warmupMs: options.warmupMs, durationMs: options.durationMs }
  const baseline = await runProcesses(url, "raw", options.processes, window)
  const ours = await runProcesses(url, "ours", options.processes, window)
  return {
    store: "redis",
    variant: `${options.processes} processes`,
    cell: { concurrency: options.processes, keys: "hot" },
    ours: ours.measurement,
    baseline: { method: baselineMethod, measurement: baseline.measurement },
    ratio: ours.measurement.opsPerSec / baseline.measurement.opsPerSec,
    exact: ours.exact && baseline.exact
  }
}

/**
 * Runs every cell; with `processes` > 0 the last row is the multi-process one (its `perWorker`
 * are processes).
 */
export const run = async (options: Options = {}): Promise<ReadonlyArray<Row>> => {
  const url = options.url ?? process.env.REDIS_URL
  if (url === undefined || url === "") {
    throw new Error("redis benchmark: REDIS_URL is not set (bash scripts/servers.sh start redis)")
  }
  const resolved = { warmupMs: 1000, durationMs: 2000, processes: 4, rounds: 5, inProcess: true, ...options }
  const rows = resolved.inProcess ? await inProcessRows(url, resolved) : []
  if (resolved.processes > 0) rows.push(await multiProcessRow(url, resolved))
  return rows
}

const checkTargets = (rows: ReadonlyArray<Row>): string => {
  const single = rows.filter((r) => r.variant === "")
  if (single.length === 0) return ""
  const hot = (concurrency: number) => single.find((r) => r.cell.keys === "hot" && r.cell.concurrency === concurrency)!
  const hotScaling = hot(8).ours.opsPerSec / hot(1).ours.opsPerSec
  const checks: ReadonlyArray<readonly [string, boolean]> = [
    ["every cell ≥ 0.8× raw GET + Lua CAS", single.every((r) => r.ratio >= 0.8)],
    [`hot key: c8 ≥ 0.5× c1 (${hotScaling.toFixed(2)}×)`, hotScaling >= 0.5],
    ["exact counts", rows.every((r) => r.exact)]
  ]
  return checks.map(([name, ok]) => `${ok ? "met   " : "MISSED"} ${name}`).join("\n")
}

const formatProcesses = (row: Row): string => {
  const line = (name: string, m: Measurement) =>
    `${name}: total ${Math.round(m.opsPerSec).toLocaleString("en-US")} ops/s, per process ` +
    `${m.perWorker.map((ops) => Math.round(ops / m.seconds).toLocaleString("en-US")).join(" / ")}, ` +
    `worst p99 ${m.p99Ms.toFixed(2)} ms, max ${m.maxMs.toFixed(2)} ms, retries/op ${m.retriesPerOp.toFixed(3)}`
  return [`${row.variant}, one hot key, one worker each:`, line("  ours", row.ours), line("  raw ", row.baseline.measurement)]
    .join("\n")
}

const main = async (argv: ReadonlyArray<string>) => {
  if (argv[0] === "--child") {
    const [, method, url, prefix, window] = argv
    return child(method as "ours" | "raw", url!, prefix!, JSON.parse(window!))
  }
  const flag = (name: string) => {
    const value = argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1]
    return value === undefined ? {} : { [`${name}Ms`]: Number(value) }
  }
  const rounds = argv.find((a) => a.startsWith("--rounds="))?.split("=")[1]
  const rows = await run({
    ...flag("warmup"),
    ...flag("duration"),
    ...(rounds === undefined ? {} : { rounds: Number(rounds) }),
    ...(argv.includes("--processes-only") ? { inProcess: false } : {})
  })
  console.log(formatTable(rows))
  console.log("\nlower bound (INCR, the server computes the increment): " + rows
    .filter((r) => r.lowerBound !== undefined)
    .map((r) => `c${r.cell.concurrency}/${r.cell.keys}: ${Math.round(r.lowerBound!.measurement.opsPerSec).toLocaleString("en-US")}`)
    .join(", "))
  const multi = rows.find((r) => r.variant !== "")
  if (multi !== undefined) console.log("\n" + formatProcesses(multi))
  console.log("\n" + checkTargets(rows))
}

if (Processes.isMain(import.meta.url)) {
  main(process.argv.slice(2)).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}
