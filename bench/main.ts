/**
 * `pnpm bench`: every store's atomic `modify` next to the best raw-client method doing the same
 * read-modify-write in the same run, handoff latency on a real cluster, and lost updates of the
 * platform's default `modify` next to ours. Prints the tables and the targets, and writes
 * bench/results/latest.json and bench/results/chart.svg (embedded by the README).
 *
 *   pnpm bench [--only memory,sqlite,postgres,redis,handoff,lost-updates] [--quick]
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Pg from "pg"
import * as PostgresBench from "../packages/store-postgres/bench/postgres.bench.js"
import * as RedisBench from "../packages/store-redis/bench/redis.bench.js"
import * as SqliteBench from "../packages/store-sqlite/bench/sqlite.bench.js"
import { renderSvg } from "./Chart.js"
import * as Handoff from "./Handoff.js"
import * as LostUpdates from "./LostUpdates.js"
import * as Memory from "./Memory.js"
import { formatTable, type Row } from "./Report.js"
import type * as Stores from "../support/Stores.js"

const sections = ["memory", "sqlite", "postgres", "redis", "handoff", "lost-updates"] as const
type Section = typeof sections[number]

const usage = `Usage: pnpm bench [--only ${sections.join(",")}] [--quick]`

const parse = (argv: ReadonlyArray<string>) => {
  let only: ReadonlyArray<Section> = sections
  let quick = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--quick") quick = true
    else if (arg === "--only" || arg.startsWith("--only=")) {
      const value = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : argv[++i] ?? ""
      const names = value.split(",").filter((name) => name !== "")
      const unknown = names.filter((name) => !sections.includes(name as Section))
      if (names.length === 0 || unknown.length > 0) throw new UsageError(`--only: unknown section ${unknown.join(", ") || "(none)"}`)
      only = names as ReadonlyArray<Section>
    } else if (arg === "-h" || arg === "--help") throw new UsageError("")
    else throw new UsageError(`unknown argument: ${arg}`)
  }
  return { only, quick }
}

class UsageError extends Error {}

const dropTable = async (url: string, table: string) => {
  const client = new Pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(`DROP TABLE IF EXISTS "${table}"`)
  } finally {
    await client.end()
  }
}

interface Target {
  readonly name: string
  readonly met: boolean
}

/** Memory has an absolute target (its baseline, Ref.modify, is not a store); stores a ratio. */
const meetsTarget = (row: Row) => row.store === "memory" ? row.ours.opsPerSec >= 1.5e6 : row.ratio >= 0.8

const storeTargets = (rows: ReadonlyArray<Row>): ReadonlyArray<Target> => {
  const inProcess = rows.filter((row) => !row.variant.includes("processes"))
  const groups = new Map<string, Array<Row>>()
  for (const row of inProcess) {
    const name = `${row.store}${row.variant === "" ? "" : ` (${row.variant})`}`
    groups.set(name, [...(groups.get(name) ?? []), row])
  }
  return [...groups].flatMap(([name, group]) => {
    const hot = (concurrency: number) => group.find((row) => row.cell.keys === "hot" && row.cell.concurrency === concurrency)
    const c1 = hot(1)
    const c8 = hot(8)
    const scaling = c1 && c8 ? [{ name: `${name}: hot key at c8 ≥ 0.5× c1 (ours)`, met: c8.ours.opsPerSec >= 0.5 * c1.ours.opsPerSec }] : []
    const speed = {
      name: group[0]!.store === "memory" ? `${name}: ≥ 1.5 M modify/s in every cell` : `${name}: ≥ 0.8× the raw baseline in every cell`,
      met: group.every(meetsTarget)
    }
    return [speed, ...scaling, { name: `${name}: exact counts`, met: group.every((row) => row.exact) }]
  })
}

const main = async () => {
  const { only, quick } = parse(process.argv.slice(2))
  const timing = quick ? { warmupMs: 300, durationMs: 1000 } : { warmupMs: 1000, durationMs: 3000 }
  const rows: Array<Row> = []
  const notes: Array<string> = []
  const targets: Array<Target> = []
  const skipped: Array<string> = []
  const databaseUrl = process.env.DATABASE_URL
  const redisUrl = process.env.REDIS_URL
  const has = (section: Section) => only.includes(section)
  const section = (title: string) => console.log(`\n== ${title}`)
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "durable-singleton-bench-"))
  const results: Record<string, unknown> = { startedAt: new Date().toISOString(), machine: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? "?"}`, node: process.version, quick }

  try {
    if (has("memory")) {
      section("memory: MemoryStore.modify vs effect Ref.modify (tight loops, one process)")
      const memory = await Memory.run(quick ? { opsPerCell: 500_000, rounds: 2 } : {})
      console.log(formatTable(memory))
      rows.push(...memory)
    }
    if (has("sqlite")) {
      section("sqlite: SqliteStore.modify vs raw better-sqlite3 BEGIN IMMEDIATE read-modify-write")
      const sqlite = await SqliteBench.run(quick ? { ...timing, rounds: 1, processWarmupMs: 2000 } : timing)
      console.log(formatTable(sqlite))
      for (const row of sqlite.filter((row) => row.variant.includes("processes"))) console.log(SqliteBench.formatProcesses(row))
      console.log(SqliteBench.checkTargets(sqlite))
      const processes = sqlite.filter((row) => row.variant.includes("processes"))
      const minShare = (row: Row) =>
        Math.min(...row.ours.perWorker.map((ops) => ops / row.ours.seconds / (row.ours.opsPerSec / row.ours.perWorker.length)))
      targets.push(
        { name: "sqlite, 4 processes: total ≥ 0.8× raw (every round)", met: processes.every((row) => row.ratio >= 0.8) },
        { name: "sqlite, 4 processes: every process ≥ 1/4 of its fair share", met: processes.every((row) => minShare(row) >= 0.25) },
        { name: "sqlite, 4 processes: p99.9 < 25 ms and max < 150 ms", met: processes.every((row) => row.ours.p999Ms < 25 && row.ours.maxMs < 150) }
      )
      rows.push(...sqlite)
    }
    if (has("postgres")) {
      section("postgres: PgStore.modify vs the better of raw pg row lock and version CAS (named statements)")
      if (databaseUrl === undefined) skipped.push("postgres (DATABASE_URL is not set)")
      else {
        const postgres = await PostgresBench.run({ url: databaseUrl, ...timing, ...(quick ? { rounds: 1 } : {}) })
        console.log(formatTable(postgres))
        rows.push(...postgres)
      }
    }
    if (has("redis")) {
      section("redis: RedisStore.modify vs raw ioredis GET + Lua compare-and-set")
      if (redisUrl === undefined) skipped.push("redis (REDIS_URL is not set)")
      else {
        const redis = await RedisBench.run({ url: redisUrl, ...timing, ...(quick ? { rounds: 1, processes: 0 } : {}) })
        console.log(formatTable(redis))
        rows.push(...redis)
      }
    }
    targets.unshift(...storeTargets(rows))

    if (has("handoff")) {
      section("handoff: leader SIGKILLed → the successor's first fenced write (3 runner processes, lock refresh 1 s, expiration 4 s)")
      const kinds = (["sqlite", "postgres", "redis"] as const).filter((kind) =>
        kind === "sqlite" || (kind === "postgres" ? databaseUrl : redisUrl) !== undefined
      )
      const trials = await Handoff.run(kinds, quick ? 1 : 2)
      for (const trial of trials) console.log(`  ${trial.store.padEnd(9)} ${(trial.latencyMs / 1000).toFixed(2)} s  (epoch ${trial.epochs[0]} → ${trial.epochs[1]})`)
      results.handoff = trials
      notes.push(`Handoff (SIGKILL → successor's first write): ${trials.map((t) => `${t.store} ${(t.latencyMs / 1000).toFixed(1)} s`).join(", ")}`)
    }
    if (has("lost-updates")) {
      section("lost updates: 4 processes × concurrent increments of one counter, the platform's default modify vs ours, same store")
      const stamp = `${process.pid}_${Date.now()}`
      const locations: Array<readonly [Stores.Location, number]> = [
        [{ kind: "sqlite", filename: path.join(tmp, "lost.db"), namespace: "lost" }, 2000],
        ...(databaseUrl === undefined ? [] : [[{ kind: "postgres", url: databaseUrl, table: `lost_updates_${stamp}`, namespace: "lost" }, 100] as const]),
        ...(redisUrl === undefined ? [] : [[{ kind: "redis", url: redisUrl, namespace: `lost-updates-${stamp}` }, 100] as const])
      ]
      const lost: Array<LostUpdates.Result> = []
      for (const [location, perProcess] of locations) {
        lost.push(...await LostUpdates.run(location, { perProcess }))
        if (location.kind === "postgres") await dropTable(location.url, location.table)
      }
      for (const r of lost) console.log(`  ${r.store.padEnd(9)} ${r.method.padEnd(26)} ${r.final}/${r.increments}  lost ${r.lost}`)
      targets.push({ name: "lost updates: ours lose none", met: lost.filter((r) => r.method === "durable-singleton modify").every((r) => r.lost === 0) })
      results.lostUpdates = lost
      notes.push(`Lost updates, platform default modify: ${lost.filter((r) => r.method === "platform default modify").map((r) => `${r.store} ${r.lost}/${r.increments}`).join(", ")}; ours: 0`)
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }

  section("targets")
  for (const target of targets) console.log(`  ${target.met ? "met   " : "MISSED"} ${target.name}`)
  for (const name of skipped) console.log(`  SKIPPED ${name}`)

  const dir = path.join(import.meta.dirname, "results")
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, "latest.json"), `${JSON.stringify({ ...results, rows, targets, skipped }, null, 2)}\n`)
  if (rows.length > 0) {
    fs.writeFileSync(path.join(dir, "chart.svg"), renderSvg(rows, `${results.startedAt as string} · ${results.machine as string} · node ${process.version}${quick ? " · quick run" : ""}`, meetsTarget))
  }
  console.log(`\nwritten: bench/results/latest.json${rows.length > 0 ? ", bench/results/chart.svg" : ""}`)
  for (const note of notes) console.log(note)
}

main().catch((error) => {
  if (error instanceof UsageError) {
    console.error(`${error.message === "" ? "" : `${error.message}\n\n`}${usage}`)
    process.exit(error.message === "" ? 0 : 2)
  }
  console.error(error)
  process.exit(1)
})
