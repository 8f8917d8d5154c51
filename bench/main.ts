/**
 * `pnpm bench`: every store's atomic `modify` next to the best raw-client method doing the same
 * read-modify-write in the same run, handoff latency on a real cluster, and lost updates of the
 * platform's default `modify` next to ours. Prints the tables and the targets; a full run writes
 * bench/results/latest.json and bench/results/chart.svg (embedded by the README). See `usage`.
 */
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Pg from "pg"
import * as PostgresBench from "../packages/store-postgres/bench/postgres.bench.js"
import * as RedisBench from "../packages/store-redis/bench/redis.bench.js"
import * as SqliteBench from "../packages/store-sqlite/bench/sqlite.bench.js"
import * as Cli from "../support/Cli.js"
import * as Servers from "../support/Servers.js"
import type * as Stores from "../support/Stores.js"
import { renderSvg } from "./Chart.js"
import * as Handoff from "./Handoff.js"
import * as LostUpdates from "./LostUpdates.js"
import * as Memory from "./Memory.js"
import { aboveBaseline } from "./Ratios.js"
import { formatTable, type Row } from "./Report.js"

const sections = ["memory", "sqlite", "postgres", "redis", "handoff", "lost-updates"] as const
type Section = typeof sections[number]

/** The servers each section runs on (SQLite needs none). */
const serversOf: Record<Section, ReadonlyArray<Servers.ServerKind>> = {
  memory: [],
  sqlite: [],
  postgres: ["postgres"],
  redis: ["redis"],
  handoff: ["postgres", "redis"],
  "lost-updates": ["postgres", "redis"]
}

const usage = `Usage: pnpm bench [--only <section>,...] [--quick]

  --only <sections>  run only these sections, comma-separated (default: all):
                     ${sections.join(", ")}
  --quick            short windows and few rounds, to try the benchmarks out: the figures are
                     indicative only (too short to compare against the targets)
  -h, --help         this text

Servers: DATABASE_URL and REDIS_URL when set; otherwise the project's throwaway PostgreSQL and
Redis (scripts/servers.sh), each started only if a selected section needs it, and stopped at
the end if this run started it. A server that cannot be started fails the sections (or the
parts of handoff and lost-updates) that need it, loudly and with the reason: the others still
run, and the exit code is 1. Under CI=true it fails the run before any section starts.

Results: only a full run (every section, without --quick, nothing failed) writes
bench/results/latest.json and bench/results/chart.svg, which the README embeds. A partial,
quick or failed run writes no file and says why.`

interface Options {
  readonly only: ReadonlyArray<Section>
  readonly quick: boolean
}

const parse = (argv: ReadonlyArray<string>): Either.Either<Options | "help", string> => {
  let only: ReadonlyArray<Section> = sections
  let quick = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--quick") quick = true
    else if (arg === "--only" || arg.startsWith("--only=")) {
      const value = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : argv[++i] ?? ""
      const names = value.split(",").filter((name) => name !== "")
      const unknown = names.filter((name) => !sections.includes(name as Section))
      if (names.length === 0 || unknown.length > 0) return Either.left(`--only: unknown section ${unknown.join(", ") || "(none)"}`)
      only = sections.filter((section) => names.includes(section))
    } else if (arg === "-h" || arg === "--help") return Either.right("help")
    else return Either.left(`unknown argument: ${arg}`)
  }
  return Either.right({ only, quick })
}

const quickNote = "Quick run: windows too short to compare against the targets; the figures are indicative only."

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

const loud = (lines: ReadonlyArray<string>) => {
  const bar = "!".repeat(80)
  process.stderr.write(`\n${bar}\n${lines.map((line) => `!!! ${line}`).join("\n")}\n${bar}\n\n`)
}

// The URL of every server the selected sections need, or why it is unavailable. The demo's
// backends (handoff) read the URLs from the environment, so they go there too.
const startServers = (only: ReadonlyArray<Section>) =>
  Effect.gen(function*() {
    const urls = new Map<Servers.ServerKind, string>()
    const unavailable = new Map<Servers.ServerKind, string>()
    const needed = (["postgres", "redis"] as const).filter((kind) => only.some((section) => serversOf[section].includes(kind)))
    for (const kind of needed) {
      const url = yield* Effect.either(Servers.serverUrl(kind))
      if (Either.isLeft(url)) unavailable.set(kind, url.left.message.replace(/\n/g, " "))
      else {
        urls.set(kind, url.right)
        process.env[Servers.envName[kind]] = url.right
      }
    }
    return { urls, unavailable }
  })

const program = ({ only, quick }: Options) =>
  Effect.gen(function*() {
    if (quick) console.log(quickNote)

    const { unavailable, urls } = yield* startServers(only)
    if (unavailable.size > 0) {
      const reasons = [...unavailable].map(([kind, why]) => `${kind}: ${why}`)
      if (process.env.CI === "true") {
        loud(["CI=true and a server the benchmarks need could not be started: failing.", ...reasons])
        return 1
      }
      loud(["sections (or parts) that need these servers will FAIL:", ...reasons])
    }
    const failed: Array<string> = []
    // The URL of a server, or undefined after recording why `what` cannot run.
    const urlFor = (kind: Servers.ServerKind, what: string) => {
      const url = urls.get(kind)
      if (url === undefined) {
        failed.push(`${what}: ${unavailable.get(kind) ?? `no ${kind} server`}`)
        console.log(`  FAILED ${failed.at(-1)!}`)
      }
      return url
    }

    const timing = quick ? { warmupMs: 300, durationMs: 1000 } : { warmupMs: 1000, durationMs: 3000 }
    const rows: Array<Row> = []
    const notes: Array<string> = []
    const targets: Array<Target> = []
    const has = (section: Section) => only.includes(section)
    const section = (title: string) => console.log(`\n== ${title}`)
    const printRows = (storeRows: ReadonlyArray<Row>) => {
      console.log(formatTable(storeRows))
      rows.push(...storeRows)
    }
    const tmp = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "durable-singleton-bench-"))),
      (tmp) => Effect.sync(() => fs.rmSync(tmp, { recursive: true, force: true }))
    )
    const results: Record<string, unknown> = {
      startedAt: new Date().toISOString(),
      machine: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? "?"}`,
      node: process.version
    }

    if (has("memory")) {
      section("memory: MemoryStore.modify vs effect Ref.modify (tight loops, one process; latency: mean time per op)")
      printRows(yield* Effect.promise(() => Memory.run(quick ? { opsPerCell: 500_000, rounds: 2 } : {})))
    }
    if (has("sqlite")) {
      section("sqlite: SqliteStore.modify vs raw better-sqlite3 BEGIN IMMEDIATE read-modify-write")
      const sqlite = yield* Effect.promise(() => SqliteBench.run(quick ? { ...timing, rounds: 1, processWarmupMs: 2000 } : timing))
      printRows(sqlite)
      const processes = sqlite.filter((row) => row.variant.includes("processes"))
      for (const row of processes) console.log(SqliteBench.formatProcesses(row))
      console.log(SqliteBench.checkTargets(sqlite))
      const minShare = (row: Row) =>
        Math.min(...row.ours.perWorker.map((ops) => ops / row.ours.seconds / (row.ours.opsPerSec / row.ours.perWorker.length)))
      targets.push(
        { name: "sqlite, 4 processes: total ≥ 0.8× raw (every round)", met: processes.every((row) => row.ratio >= 0.8) },
        { name: "sqlite, 4 processes: every process ≥ 1/4 of its fair share", met: processes.every((row) => minShare(row) >= 0.25) },
        { name: "sqlite, 4 processes: p99.9 < 25 ms and max < 150 ms", met: processes.every((row) => row.ours.p999Ms < 25 && row.ours.maxMs < 150) }
      )
    }
    if (has("postgres")) {
      section("postgres: PgStore.modify vs the better of raw pg row lock and version CAS (named statements)")
      const url = urlFor("postgres", "postgres")
      if (url !== undefined) {
        printRows(yield* Effect.promise(() => PostgresBench.run({ url, ...timing, ...(quick ? { rounds: 1 } : {}) })))
      }
    }
    if (has("redis")) {
      section("redis: RedisStore.modify vs raw ioredis GET + Lua compare-and-set")
      const url = urlFor("redis", "redis")
      if (url !== undefined) {
        printRows(yield* Effect.promise(() => RedisBench.run({ url, ...timing, ...(quick ? { rounds: 1, processes: 0 } : {}) })))
      }
    }
    targets.unshift(...storeTargets(rows))

    if (has("handoff")) {
      section("handoff: leader SIGKILLed → the successor's first fenced write (3 runner processes, lock refresh 1 s, expiration 4 s)")
      const kinds = (["sqlite", "postgres", "redis"] as const).filter((kind) =>
        kind === "sqlite" || urlFor(kind, `handoff on ${kind}`) !== undefined
      )
      const trials = yield* Effect.promise(() => Handoff.run(kinds, quick ? 1 : 2))
      for (const trial of trials) console.log(`  ${trial.store.padEnd(9)} ${(trial.latencyMs / 1000).toFixed(2)} s  (epoch ${trial.epochs[0]} → ${trial.epochs[1]})`)
      results.handoff = trials
      notes.push(`Handoff (SIGKILL → successor's first write): ${trials.map((t) => `${t.store} ${(t.latencyMs / 1000).toFixed(1)} s`).join(", ")}`)
    }
    if (has("lost-updates")) {
      section("lost updates: 4 processes × concurrent increments of one counter, the platform's default modify vs ours, same store")
      const stamp = `${process.pid}_${Date.now()}`
      const databaseUrl = urlFor("postgres", "lost-updates on postgres")
      const redisUrl = urlFor("redis", "lost-updates on redis")
      const locations: Array<readonly [Stores.Location, number]> = [
        [{ kind: "sqlite", filename: path.join(tmp, "lost.db"), namespace: "lost" }, 2000],
        ...(databaseUrl === undefined ? [] : [[{ kind: "postgres", url: databaseUrl, table: `lost_updates_${stamp}`, namespace: "lost" }, 100] as const]),
        ...(redisUrl === undefined ? [] : [[{ kind: "redis", url: redisUrl, namespace: `lost-updates-${stamp}` }, 100] as const])
      ]
      const lost: Array<LostUpdates.Result> = []
      for (const [location, perProcess] of locations) {
        lost.push(...yield* Effect.promise(() => LostUpdates.run(location, { perProcess })))
        if (location.kind === "postgres") yield* Effect.promise(() => dropTable(location.url, location.table))
      }
      for (const r of lost) console.log(`  ${r.store.padEnd(9)} ${r.method.padEnd(26)} ${r.final}/${r.increments}  lost ${r.lost}`)
      const of = (method: LostUpdates.Method) =>
        lost.filter((r) => r.method === method).map((r) => `${r.store} ${r.lost}/${r.increments}`).join(", ")
      targets.push({ name: "lost updates: ours lose none", met: lost.filter((r) => r.method === "durable-singleton modify").every((r) => r.lost === 0) })
      results.lostUpdates = lost
      notes.push(`Lost updates, platform default modify: ${of("platform default modify")}; ours: ${of("durable-singleton modify")}`)
    }

    section("targets")
    if (quick) console.log(`  (${quickNote})`)
    for (const target of targets) console.log(`  ${target.met ? "met   " : "MISSED"} ${target.name}`)
    for (const failure of failed) console.log(`  FAILED ${failure}`)

    const notWritten = [
      ...(only.length === sections.length ? [] : ["partial run (--only)"]),
      ...(quick ? ["quick run"] : []),
      ...(failed.length === 0 ? [] : ["failed sections"])
    ]
    if (notWritten.length === 0) {
      const dir = path.join(import.meta.dirname, "results")
      fs.mkdirSync(dir, { recursive: true })
      fs.writeFileSync(path.join(dir, "latest.json"), `${JSON.stringify({ ...results, rows, targets }, null, 2)}\n`)
      fs.writeFileSync(
        path.join(dir, "chart.svg"),
        renderSvg(rows, `${results.startedAt as string} · ${results.machine as string} · node ${process.version}`, meetsTarget)
      )
      console.log("\nwritten: bench/results/latest.json, bench/results/chart.svg")
    } else {
      console.log(`\nresults not written: ${notWritten.join(", ")} (only a full run writes bench/results)`)
    }
    for (const note of notes) console.log(note)
    const why = aboveBaseline(rows)
    if (why.length > 0) console.log(`Ratios above 1×:\n${why.map((line) => `  ${line}`).join("\n")}`)
    return failed.length === 0 ? 0 : 1
  })

// Also on Ctrl-C the scope closes first: the servers this run started are stopped.
Cli.run({ parse, usage, program: (options) => Effect.scoped(program(options)) })
