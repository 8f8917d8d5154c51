/**
 * A redis-server of a test's own, on a free loopback port, with no persistence: tests that stop,
 * freeze and restart a server must not do it to the shared one.
 */
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as net from "node:net"
import { Redis } from "ioredis"

export interface PrivateRedis {
  readonly port: number
  readonly url: string
  /** SIGSTOP: the server keeps its connections open but answers nothing. */
  readonly freeze: Effect.Effect<void>
  /** SIGKILL: connections drop at once; the data is gone (no persistence). */
  readonly kill: Effect.Effect<void>
  /** Starts a new server on the same port (after `kill`). */
  readonly start: Effect.Effect<void>
}

export const freePort: Effect.Effect<number> = Effect.async((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

const answers = (port: number) =>
  Effect.promise(async () => {
    const probe = new Redis({ port, host: "127.0.0.1", lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
    probe.on("error", () => {})
    try {
      await probe.connect()
      return (await probe.ping()) === "PONG"
    } catch {
      return false
    } finally {
      probe.disconnect()
    }
  })

const waitUntil = (check: Effect.Effect<boolean>, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 200; i++) {
      if (yield* check) return
      yield* Effect.sleep("25 millis")
    }
    return yield* Effect.die(new Error(`timed out waiting for ${what}`))
  })

export const make: Effect.Effect<PrivateRedis, never, import("effect/Scope").Scope> = Effect.gen(function*() {
  const port = yield* freePort
  let child: ChildProcess | undefined
  const exited = (process: ChildProcess) => process.exitCode !== null || process.signalCode !== null
  const kill = Effect.suspend(() => {
    const current = child
    child = undefined
    if (current === undefined || exited(current)) return Effect.void
    return Effect.async<void>((resume) => {
      current.once("exit", () => resume(Effect.void))
      // SIGKILL ends a stopped process too; a SIGCONT first would let it answer what it holds.
      current.kill("SIGKILL")
    })
  })
  const start = Effect.suspend(() => {
    child = spawn(
      "redis-server",
      ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no"],
      { stdio: "ignore" }
    )
    return waitUntil(answers(port), `redis-server on port ${port}`)
  })
  yield* Effect.addFinalizer(() => kill)
  yield* start
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    freeze: Effect.sync(() => void child?.kill("SIGSTOP")),
    kill,
    start
  }
})
