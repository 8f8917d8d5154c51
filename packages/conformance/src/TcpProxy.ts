/**
 * A loopback TCP proxy in front of a server, to make the server unreachable for the clients that
 * connect through it without touching the server (which other tests may share): a subject's
 * `disrupt` cuts every connection and refuses new ones until its scope closes, then the proxy
 * accepts again. Tests can also cut every connection once, or the one connection that carries
 * a given command before the server sees it.
 *
 * @example
 * ```ts
 * import { Subject, TcpProxy } from "@durable-singleton/conformance"
 * import { Effect } from "effect"
 * import { MyStore } from "my-store"
 *
 * const url = process.env.DATABASE_URL!
 *
 * export default Subject.make({
 *   name: "my-store",
 *   acquire: Effect.all({ table: MyStore.uniqueTable(url), proxy: TcpProxy.fromUrl(url) }),
 *   client: ({ table, proxy }, { namespace }) => MyStore.make({ url: proxy.url, table, namespace }),
 *   disrupt: ({ proxy }) => proxy.disrupt
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as net from "node:net"

/**
 * @since 0.1.0
 * @category models
 */
export interface TcpProxy {
  /** Where clients connect: a loopback address. */
  readonly host: string
  readonly port: number
  /**
   * Cuts every connection open now (both sides, at once) and, until the scope closes, resets
   * every new one as soon as it is accepted: to its clients, the server is down. Disruptions
   * may overlap; the proxy accepts again when the last one ends.
   */
  readonly disrupt: Effect.Effect<void, never, Scope.Scope>
  /** Cuts every connection open now; new ones are accepted. */
  readonly cutAll: Effect.Effect<void>
  /**
   * The next time a client sends bytes containing `marker` (read as latin1), its connection is
   * cut before those bytes are forwarded, so the server never sees them. The effect returned
   * completes when that happened.
   */
  readonly cutOnNext: (marker: string) => Effect.Effect<Effect.Effect<void>>
}

/**
 * A proxy to `target` on a free loopback port, closed (with every connection) when the scope
 * closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (target: { readonly host: string; readonly port: number }): Effect.Effect<TcpProxy, never, Scope.Scope> =>
  Effect.gen(function*() {
    const connections = new Set<() => void>()
    let disruptions = 0
    let armed: { readonly marker: string; readonly cut: () => void } | undefined
    const cutAll = () => {
      for (const cut of [...connections]) cut()
    }
    const server = net.createServer((client) => {
      if (disruptions > 0) {
        client.on("error", () => {})
        return void client.resetAndDestroy()
      }
      const upstream = net.connect(target.port, target.host)
      const cut = () => {
        connections.delete(cut)
        client.destroy()
        upstream.destroy()
      }
      connections.add(cut)
      upstream.on("data", (data) => client.write(data))
      client.on("data", (data) => {
        if (armed !== undefined && data.toString("latin1").includes(armed.marker)) {
          const done = armed.cut
          armed = undefined
          cut()
          return done()
        }
        upstream.write(data)
      })
      for (const socket of [client, upstream]) {
        socket.on("error", () => {})
        socket.on("close", cut)
      }
    })
    const port = yield* Effect.acquireRelease(
      Effect.async<number>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as net.AddressInfo).port)))
      }),
      () =>
        Effect.async<void>((resume) => {
          cutAll()
          server.close(() => resume(Effect.void))
        })
    )
    return {
      host: "127.0.0.1",
      port,
      disrupt: Effect.acquireRelease(
        Effect.sync(() => {
          disruptions++
          cutAll()
        }),
        () =>
          Effect.sync(() => {
            disruptions--
          })
      ),
      cutAll: Effect.sync(cutAll),
      cutOnNext: (marker) =>
        Effect.sync(() => {
          let resolve!: () => void
          const cut = new Promise<void>((r) => (resolve = r))
          armed = { marker, cut: resolve }
          return Effect.promise(() => cut)
        })
    }
  })

const defaultPorts: Readonly<Record<string, number>> = {
  "postgres:": 5432,
  "postgresql:": 5432,
  "redis:": 6379,
  "rediss:": 6379,
  "mysql:": 3306
}

/**
 * A proxy to the server of `url`, with `url` rewritten to go through it (same scheme, user,
 * database and parameters; only the host and port change). A URL without a port gets its
 * scheme's default port (PostgreSQL, Redis, MySQL); another one fails with an
 * `IllegalArgumentException`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromUrl = (
  url: string
): Effect.Effect<TcpProxy & { readonly url: string }, Cause.IllegalArgumentException, Scope.Scope> =>
  Effect.gen(function*() {
    const parsed = yield* Effect.try({
      try: () => new URL(url),
      catch: () => new Cause.IllegalArgumentException("TcpProxy.fromUrl: not a URL")
    })
    const port = parsed.port === "" ? defaultPorts[parsed.protocol] : Number(parsed.port)
    if (port === undefined || parsed.hostname === "") {
      return yield* new Cause.IllegalArgumentException(
        `TcpProxy.fromUrl: a ${parsed.protocol} URL needs a host and a port`
      )
    }
    const proxy = yield* make({ host: parsed.hostname.replace(/^\[(.*)\]$/, "$1"), port })
    parsed.hostname = proxy.host
    parsed.port = String(proxy.port)
    return { ...proxy, url: parsed.href }
  })
