import { TcpProxy } from "@durable-singleton/conformance"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as net from "node:net"

// A server answering each chunk it receives with "echo:" + the chunk, keeping what reached it.
const echoServer = Effect.gen(function*() {
  const received: Array<string> = []
  const server = net.createServer((socket) => {
    socket.on("error", () => {})
    socket.on("data", (data) => {
      received.push(data.toString())
      socket.write(`echo:${data}`)
    })
  })
  const port = yield* Effect.acquireRelease(
    Effect.async<number>((resume) => {
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as net.AddressInfo).port)))
    }),
    () => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
  )
  return { port, received }
})

// A client connection through the proxy: `send` answers with the reply, or with how the
// connection ended ("closed" or the error's code) if it ends first.
const connect = (proxy: TcpProxy.TcpProxy) =>
  Effect.acquireRelease(
    Effect.async<net.Socket, string>((resume) => {
      const socket = net.connect(proxy.port, proxy.host)
      socket.once("connect", () => resume(Effect.succeed(socket)))
      socket.once("error", (error: NodeJS.ErrnoException) => resume(Effect.fail(error.code ?? error.message)))
    }),
    (socket) => Effect.sync(() => socket.destroy())
  )

const send = (socket: net.Socket, text: string) =>
  Effect.async<string>((resume) => {
    const onData = (data: Buffer) => done(data.toString())
    const onEnd = () => done("closed")
    const onError = (error: NodeJS.ErrnoException) => done(error.code ?? error.message)
    const done = (outcome: string) => {
      socket.off("data", onData).off("close", onEnd).off("error", onError)
      resume(Effect.succeed(outcome))
    }
    socket.on("data", onData).on("close", onEnd).on("error", onError)
    if (socket.destroyed) return done("closed")
    socket.write(text)
  })

// What a new connection through the proxy gets: a reply, or how it ended.
const tryOnce = (proxy: TcpProxy.TcpProxy, text: string) =>
  Effect.scoped(Effect.flatMap(Effect.either(connect(proxy)), (socket) =>
    socket._tag === "Left" ? Effect.succeed(socket.left) : send(socket.right, text)))

const refused = (outcome: string) => outcome === "closed" || outcome === "ECONNRESET" || outcome === "EPIPE"

describe("TcpProxy", () => {
  it.scopedLive("forwards both ways; a disruption cuts open connections and refuses new ones until its scope closes", () =>
    Effect.gen(function*() {
      const echo = yield* echoServer
      const proxy = yield* TcpProxy.make({ host: "127.0.0.1", port: echo.port })
      const before = yield* connect(proxy)
      expect(yield* send(before, "a")).toBe("echo:a")

      const disruption = yield* Scope.make()
      yield* Scope.extend(proxy.disrupt, disruption)
      expect(refused(yield* send(before, "b"))).toBe(true)
      for (let i = 0; i < 3; i++) expect(refused(yield* tryOnce(proxy, "c"))).toBe(true)
      expect(echo.received).toEqual(["a"])

      yield* Scope.close(disruption, Exit.void)
      expect(yield* tryOnce(proxy, "d")).toBe("echo:d")
      expect(echo.received).toEqual(["a", "d"])
    }))

  it.scopedLive("overlapping disruptions: the proxy accepts again when the last one ends", () =>
    Effect.gen(function*() {
      const echo = yield* echoServer
      const proxy = yield* TcpProxy.make({ host: "127.0.0.1", port: echo.port })
      const [first, second] = [yield* Scope.make(), yield* Scope.make()]
      yield* Scope.extend(proxy.disrupt, first)
      yield* Scope.extend(proxy.disrupt, second)
      yield* Scope.close(first, Exit.void)
      expect(refused(yield* tryOnce(proxy, "x"))).toBe(true)
      yield* Scope.close(second, Exit.void)
      expect(yield* tryOnce(proxy, "y")).toBe("echo:y")
    }))

  it.scopedLive("cutAll cuts the open connections only; cutOnNext cuts the one carrying a marker before forwarding it", () =>
    Effect.gen(function*() {
      const echo = yield* echoServer
      const proxy = yield* TcpProxy.make({ host: "127.0.0.1", port: echo.port })
      const socket = yield* connect(proxy)
      yield* proxy.cutAll
      expect(refused(yield* send(socket, "a"))).toBe(true)
      const other = yield* connect(proxy)
      const cut = yield* proxy.cutOnNext("MARK")
      expect(yield* send(other, "plain")).toBe("echo:plain")
      expect(refused(yield* send(other, "with MARK inside"))).toBe(true)
      yield* cut
      expect(echo.received).toEqual(["plain"])
      expect(yield* tryOnce(proxy, "after")).toBe("echo:after")
    }))

  it.scopedLive("fromUrl rewrites only the host and port, filling in the scheme's default port", () =>
    Effect.gen(function*() {
      const echo = yield* echoServer
      const proxy = yield* TcpProxy.fromUrl(`postgres://user:secret@127.0.0.1:${echo.port}/db?sslmode=disable`)
      expect(proxy.url).toBe(`postgres://user:secret@127.0.0.1:${proxy.port}/db?sslmode=disable`)
      expect(yield* tryOnce(proxy, "q")).toBe("echo:q")
      const redis = yield* TcpProxy.fromUrl("redis://localhost/2")
      expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}/2`)
      for (const bad of ["not a url", "http://example.test/", "redis:///0"]) {
        const error = yield* Effect.flip(TcpProxy.fromUrl(bad))
        expect(error._tag).toBe("IllegalArgumentException")
      }
    }))
})
