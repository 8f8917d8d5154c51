/**
 * One runner of the demo cluster: a real `@effect/cluster` runner (socket transport, SQL runner
 * and message storage) running the ledger singleton and the ticker cron job on the shared store.
 * Started by `demo/main.ts` with `child_process.fork`; it reports what happens over the IPC
 * channel and stops gracefully on SIGTERM.
 */
import { SingletonError } from "@durable-singleton/core"
import { PgStore } from "@durable-singleton/store-postgres"
import { RedisStore } from "@durable-singleton/store-redis"
import { SqliteStore } from "@durable-singleton/store-sqlite"
import * as RunnerAddress from "@effect/cluster/RunnerAddress"
import * as NodeClusterSocket from "@effect/platform-node/NodeClusterSocket"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { Cause, Effect, HashMap, Layer, Logger, LogLevel, Option, Redacted } from "effect"
import { epochsOf, Ledger, Runner, Ticker } from "./app.js"
import type { RunnerCommand, RunnerConfig, RunnerEvent, RunnerReport } from "./protocol.js"

const config: RunnerConfig = JSON.parse(process.env.DEMO_RUNNER ?? "null")
if (config === null) {
  console.error("demo/runner.ts is started by demo/main.ts (pnpm demo), not by hand")
  process.exit(2)
}

const report = (report: RunnerReport) => {
  if (process.connected) process.send!({ ...report, at: Date.now() } satisfies RunnerEvent)
}

let freezeRequested = false
let join: (() => void) | undefined
let joinRequested = false
process.on("message", (command: RunnerCommand) => {
  if (command.type === "freeze-before-next-write") freezeRequested = true
  if (command.type === "join") {
    joinRequested = true
    join?.()
  }
})
// The demo is gone (it exited or was killed): stop gracefully, and for sure soon after.
process.on("disconnect", () => {
  process.kill(process.pid, "SIGTERM")
  setTimeout(() => process.exit(1), 5000).unref()
})

const RunnerLive = Layer.succeed(Runner, {
  name: config.name,
  report,
  takeFreezeRequest: () => {
    const requested = freezeRequested
    freezeRequested = false
    return requested
  }
})

const address = RunnerAddress.make("127.0.0.1", config.port)

const ClusterLive = NodeClusterSocket.layer({
  storage: "sql",
  shardingConfig: {
    // Explicit, or a HOST / PORT variable in the environment would choose the address.
    runnerAddress: Option.some(address),
    shardsPerGroup: 30,
    // A runner that stops refreshing loses its shards ~4 s later (defaults: 10 s and 35 s).
    shardLockRefreshInterval: "1 second",
    shardLockExpiration: "4 seconds",
    // PostgreSQL's advisory locks (the default there) would stay with a frozen process for as
    // long as its connection lives: take the locks in the table, with their expiry, instead.
    shardLockDisableAdvisory: true,
    refreshAssignmentsInterval: "500 millis",
    // Cron ticks are messages delivered when due: poll often enough for a 2-second job.
    entityMessagePollInterval: "500 millis"
  }
}).pipe(
  Layer.provide(
    config.cluster.kind === "sqlite"
      ? SqliteClient.layer({ filename: config.cluster.filename })
      : Layer.orDie(PgClient.layer({ url: Redacted.make(config.cluster.url) }))
  )
)

const StoreLive = config.store.kind === "sqlite"
  ? SqliteStore.layer({ filename: config.store.filename })
  : config.store.kind === "postgres"
  ? PgStore.layer({ url: config.store.url, schema: config.store.schema, maxConnections: 4 })
  : RedisStore.layer({ url: config.store.url, namespace: config.store.namespace })

const ours = new Set([Ledger.name, `ClusterCron/${Ticker.name}`])

// Forwards to the demo: the cluster's (debug) start and stop of our singletons, the runtime's
// "stepping down" warning and skipped cron ticks, and every other warning or error.
const forwarder = Logger.make(({ annotations, cause, logLevel, message }) => {
  const [text, ...rest] = Array.isArray(message) ? message : [message]
  if (text === "Starting singleton" || text === "Stopping singleton") {
    const name = (rest[0] as { readonly name?: unknown } | undefined)?.name
    if (typeof name === "string" && ours.has(name)) {
      report(text === "Starting singleton" ? { type: "singleton-started", singleton: name } : { type: "singleton-stopped", singleton: name })
    }
    return
  }
  if (typeof text === "string" && text.startsWith("tick skipped ")) {
    const tick = Option.getOrElse(HashMap.get(annotations, "tick"), () => "?")
    return report({ type: "tick-skipped", scheduledAt: String(tick), outcome: text.slice("tick skipped ".length) })
  }
  if (LogLevel.lessThan(logLevel, LogLevel.Warning)) return
  const error = rest.find(SingletonError.isSingletonError)
  if (typeof text === "string" && text.endsWith("stepping down")) {
    const singleton = Option.getOrElse(HashMap.get(annotations, "singleton"), () => "?")
    return report({ type: "stepping-down", singleton: String(singleton), ...(error ? epochsOf(error) : { expectedEpoch: undefined, actualEpoch: undefined }) })
  }
  const details = [...rest, ...(cause._tag === "Empty" ? [] : [cause])].map(describe)
  report({ type: "log", level: logLevel.label, message: [String(text), ...details].join(": ") })
})

// One line for the timeline: the innermost reason of an error (the whole story is in the
// runner's log file).
const describe = (value: unknown): string => {
  let error = Cause.isCause(value) ? Cause.squash(value) : value
  while (typeof error === "object" && error !== null && "cause" in error && error.cause !== undefined) {
    error = error.cause
  }
  if (error instanceof Error) return error.message
  if (typeof error === "string") return error
  try {
    return JSON.stringify(error)
  } catch {
    return String(error)
  }
}

// The runner's own log (info and above) goes to its stdout, which the demo keeps in a file.
const LoggingLive = Layer.mergeAll(
  Logger.replace(
    Logger.defaultLogger,
    Logger.zip(forwarder, Logger.filterLogLevel(Logger.withConsoleLog(Logger.logfmtLogger), LogLevel.greaterThanEqual(LogLevel.Info)))
  ),
  Logger.minimumLogLevel(LogLevel.Debug)
)

const main = Effect.gen(function*() {
  // Loaded: wait for the demo's go before joining the cluster (the first runner creates the
  // cluster's tables while the others are still loading).
  report({ type: "loaded" })
  yield* Effect.async<void>((resume) => {
    join = () => resume(Effect.void)
    if (joinRequested) join()
  })
  yield* Layer.build(
    Layer.mergeAll(Ledger, Ticker).pipe(
      Layer.provide(ClusterLive),
      Layer.provide(StoreLive),
      Layer.provide(RunnerLive)
    )
  )
  report({ type: "ready", address: `${address.host}:${address.port}` })
  return yield* Effect.never
}).pipe(Effect.scoped, Effect.provide(LoggingLive))

NodeRuntime.runMain(main, { disablePrettyLogger: true })
