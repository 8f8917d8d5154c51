/**
 * The demo's side of the runner processes: starting them, signalling them, the log of
 * everything they report, and waiting (always with a timeout) for what should happen next.
 */
import { Data, Deferred, Duration, Effect, type Scope } from "effect"
import { type ChildProcess, fork } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { Ledger } from "./app.js"
import type { Backend } from "./backends.js"
import type { RunnerCommand, RunnerConfig, RunnerEvent } from "./protocol.js"

/**
 * @category errors
 */
export class DemoFailure extends Data.TaggedError("DemoFailure")<{ readonly message: string }> {}

/** Everything in the log: what the runners reported, and what the demo did and saw. */
export type LoggedEvent =
  | RunnerEvent & { readonly runner: string }
  | { readonly at: number; readonly type: "demo"; readonly action: string; readonly details: string }
  | { readonly at: number; readonly type: "health"; readonly health: string; readonly details: string }
  | { readonly at: number; readonly type: "exit"; readonly runner: string; readonly code: number | null; readonly signal: string | null }

export class EventLog {
  readonly events: Array<LoggedEvent> = []
  private readonly listeners = new Set<() => void>()
  private readonly subscribers: Array<(event: LoggedEvent) => void> = []
  private readonly expectedExits = new Set<string>()
  private failure: DemoFailure | undefined

  /** Calls `f` with every event from now on. */
  onEvent(f: (event: LoggedEvent) => void) {
    this.subscribers.push(f)
  }

  /** The demo is about to stop `runner`: its exit is not a failure. */
  expectExit(runner: string) {
    this.expectedExits.add(runner)
  }

  add(event: LoggedEvent) {
    this.events.push(event)
    for (const subscriber of this.subscribers) subscriber(event)
    if (event.type === "exit" && !this.expectedExits.has(event.runner) && this.failure === undefined) {
      const how = event.signal !== null ? `killed by ${event.signal}` : `with code ${event.code}`
      this.failure = new DemoFailure({ message: `runner ${event.runner} exited unexpectedly (${how})` })
    }
    for (const listener of this.listeners) listener()
  }

  /** Runner events of one type, in arrival order (optionally from one runner, or after an index). */
  of<T extends RunnerEvent["type"]>(
    type: T,
    options?: { readonly runner?: string; readonly from?: number }
  ): Array<Extract<RunnerEvent, { readonly type: T }> & { readonly runner: string; readonly index: number }> {
    const found: Array<any> = []
    for (let index = options?.from ?? 0; index < this.events.length; index++) {
      const event = this.events[index]!
      if (event.type === type && "runner" in event && (options?.runner === undefined || event.runner === options.runner)) {
        found.push({ ...event, index })
      }
    }
    return found
  }

  /**
   * Waits until `check` returns something (it is checked now and after each new event), or fails
   * with `what` after `timeout`.
   */
  waitFor<A>(what: string, timeout: Duration.DurationInput, check: () => A | undefined): Effect.Effect<A, DemoFailure> {
    return Effect.async<A, DemoFailure>((resume) => {
      const listener = () => {
        if (this.failure !== undefined) {
          this.listeners.delete(listener)
          return resume(Effect.fail(this.failure))
        }
        const found = check()
        if (found === undefined) return
        this.listeners.delete(listener)
        resume(Effect.succeed(found))
      }
      this.listeners.add(listener)
      listener()
      return Effect.sync(() => this.listeners.delete(listener))
    }).pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => new DemoFailure({ message: `timed out after ${Duration.format(timeout)} waiting for ${what}` })
      })
    )
  }
}

export interface RunnerProcess {
  readonly name: string
  readonly port: number
  readonly pid: number
  readonly logFile: string
  readonly send: (command: RunnerCommand) => void
  readonly signal: (signal: NodeJS.Signals) => void
  /** Whether the process has not exited yet. */
  readonly alive: () => boolean
  /** Waits for the process to exit. */
  readonly exited: Effect.Effect<{ readonly code: number | null; readonly signal: string | null }>
}

// Every child still alive, killed synchronously if the demo exits some other way.
const live = new Set<ChildProcess>()
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL")
})

/**
 * Starts a runner process, killed (SIGKILL) when the scope closes if it is still running.
 * Its stdout and stderr go to `<name>.log` in the backend's directory.
 */
export const spawn = (
  name: string,
  port: number,
  backend: Backend,
  log: EventLog
): Effect.Effect<RunnerProcess, never, Scope.Scope> =>
  Effect.gen(function*() {
    const exit = yield* Deferred.make<{ readonly code: number | null; readonly signal: string | null }>()
    const logFile = path.join(backend.directory, `${name}.log`)
    const config: RunnerConfig = { name, port, cluster: backend.cluster, store: backend.store }
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const output = fs.openSync(logFile, "a")
        const child = fork(path.join(import.meta.dirname, "runner.ts"), [], {
          execArgv: ["--conditions=@durable-singleton/source", "--import", "tsx"],
          env: { ...runnerEnvironment(), DEMO_RUNNER: JSON.stringify(config) },
          stdio: ["ignore", output, output, "ipc"]
        })
        fs.closeSync(output)
        live.add(child)
        child.on("message", (event: RunnerEvent) => log.add({ ...event, runner: name }))
        child.on("exit", (code, signal) => {
          live.delete(child)
          log.add({ at: Date.now(), type: "exit", runner: name, code, signal })
          Deferred.unsafeDone(exit, Effect.succeed({ code, signal }))
        })
        // A failed send (the process is gone) is seen through "exit".
        child.on("error", () => {})
        return child
      }),
      (child) =>
        live.has(child)
          ? Effect.zipRight(
            Effect.sync(() => child.kill("SIGKILL")),
            Effect.ignore(Effect.timeout(Deferred.await(exit), "5 seconds"))
          )
          : Effect.void
    )
    return {
      name,
      port,
      pid: child.pid ?? -1,
      logFile,
      send: (command) => {
        if (child.connected) child.send(command)
      },
      signal: (signal) => {
        if (live.has(child)) child.kill(signal)
      },
      alive: () => live.has(child),
      exited: Deferred.await(exit)
    }
  })

/**
 * The demo's environment minus the variables `@effect/cluster` reads its `ShardingConfig` from
 * (`HOST`, `PORT`, `SHARDS_PER_GROUP`, …): a stray one must not change the runners' setup.
 */
const runnerEnvironment = () => {
  const shardingVariables = /^(HOST|PORT|LISTEN_HOST|LISTEN_PORT|SHARD_GROUPS|AVAILABLE_SHARD_GROUPS|SHARDS_PER_GROUP|RUNNER_SHARD_WEIGHT|PREEMPTIVE_SHUTDOWN|SHARD_LOCK_.*|ENTITY_.*|SEND_RETRY_INTERVAL|REFRESH_ASSIGNMENTS_INTERVAL|RUNNER_HEALTH_CHECK_INTERVAL|SIMULATE_REMOTE_SERIALIZATION)$/
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !shardingVariables.test(name)))
}

/** `count` distinct free TCP ports on the loopback interface. */
export const freePorts = (count: number): Effect.Effect<ReadonlyArray<number>> =>
  Effect.promise(async () => {
    const servers = await Promise.all(
      Array.from({ length: count }, () =>
        new Promise<net.Server>((resolve, reject) => {
          const server = net.createServer()
          server.once("error", reject)
          server.listen(0, "127.0.0.1", () => resolve(server))
        })
      )
    )
    const ports = servers.map((server) => (server.address() as net.AddressInfo).port)
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
    return ports
  })

/** The last `lines` lines of a file, for failure reports. */
export const tail = (file: string, lines: number): string => {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n")
  } catch {
    return "(no log)"
  }
}

/**
 * Starts the runners and has them join the cluster: the first one alone (it creates the
 * cluster's tables), then the others. Returns once every runner has joined, with the index of
 * the last "ready" event in the log.
 */
export const start = (
  names: ReadonlyArray<string>,
  ports: ReadonlyArray<number>,
  backend: Backend,
  log: EventLog
): Effect.Effect<{ readonly runners: ReadonlyArray<RunnerProcess>; readonly joined: number }, DemoFailure, Scope.Scope> =>
  Effect.gen(function*() {
    const runners = yield* Effect.forEach(names, (name, index) => spawn(name, ports[index]!, backend, log))
    const first = runners[0]!
    yield* log.waitFor(`runner ${first.name} to load`, "60 seconds", () => log.of("loaded", { runner: first.name })[0])
    first.send({ type: "join" })
    yield* log.waitFor(`runner ${first.name} to join`, "30 seconds", () => log.of("ready", { runner: first.name })[0])
    for (const other of runners.slice(1)) {
      yield* log.waitFor(`runner ${other.name} to load`, "60 seconds", () => log.of("loaded", { runner: other.name })[0])
      other.send({ type: "join" })
    }
    const joined = yield* log.waitFor("every runner to join", "30 seconds", () => {
      const ready = runners.map((runner) => log.of("ready", { runner: runner.name })[0])
      return ready.every((event) => event !== undefined) ? Math.max(...ready.map((event) => event!.index)) : undefined
    })
    return { runners, joined }
  })

/**
 * The ledger's latest claim, once its holder has written `writes` times (since `from`), the cron
 * job has ticked `ticks` times since `from`, and the ledger has not moved for `quietMillis`.
 */
export const settledLeader = (
  log: EventLog,
  options: { readonly from: number; readonly writes: number; readonly ticks: number; readonly quietMillis: number }
) =>
() => {
  const claim = log.of("claimed").at(-1)
  if (claim === undefined) return undefined
  const writes = log.of("ack", { runner: claim.runner, from: Math.max(claim.index, options.from) })
    .filter((ack) => ack.epoch === claim.epoch).length
  const ticks = log.of("tick", { from: options.from }).length
  const lastMove = Math.max(
    ...[...log.of("singleton-started"), ...log.of("singleton-stopped")]
      .filter((event) => event.singleton === Ledger.name)
      .map((event) => event.at)
  )
  return writes >= options.writes && ticks >= options.ticks && Date.now() - lastMove >= options.quietMillis
    ? claim
    : undefined
}

