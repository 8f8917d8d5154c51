/**
 * A TCP proxy in front of a server, for tests that drop a client's connection at a chosen
 * moment: all of them at once, or the one that carries a given command, before the server sees
 * it.
 */
import { Effect } from "effect"
import type * as Scope from "effect/Scope"
import * as net from "node:net"

export interface Proxy {
  /** `redis://` URL of the proxy. */
  readonly url: string
  /** Closes every connection open now (client and server side). */
  readonly dropAll: Effect.Effect<void>
  /**
   * The next time a client sends bytes containing `marker`, its connection is closed before
   * those bytes are forwarded (so the server never runs that command). Resolves when it did.
   */
  readonly dropOnNext: (marker: string) => Effect.Effect<Effect.Effect<void>>
}

export const make = (target: { readonly host: string; readonly port: number }): Effect.Effect<Proxy, never, Scope.Scope> =>
  Effect.gen(function*() {
    const pairs = new Set<readonly [net.Socket, net.Socket]>()
    let armed: { readonly marker: string; readonly dropped: () => void } | undefined
    const server = net.createServer((client) => {
      const upstream = net.connect(target.port, target.host)
      const pair = [client, upstream] as const
      pairs.add(pair)
      const drop = () => {
        pairs.delete(pair)
        client.destroy()
        upstream.destroy()
      }
      upstream.on("data", (data) => client.write(data))
      client.on("data", (data) => {
        if (armed !== undefined && data.toString("latin1").includes(armed.marker)) {
          const { dropped } = armed
          armed = undefined
          drop()
          return dropped()
        }
        upstream.write(data)
      })
      for (const socket of pair) {
        socket.on("error", () => {})
        socket.on("close", drop)
      }
    })
    const port = yield* Effect.acquireRelease(
      Effect.async<number>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as net.AddressInfo).port)))
      }),
      () =>
        Effect.async<void>((resume) => {
          for (const [client, upstream] of pairs) {
            client.destroy()
            upstream.destroy()
          }
          server.close(() => resume(Effect.void))
        })
    )
    return {
      url: `redis://127.0.0.1:${port}/0`,
      dropAll: Effect.sync(() => {
        for (const [client, upstream] of [...pairs]) {
          client.destroy()
          upstream.destroy()
        }
      }),
      dropOnNext: (marker) =>
        Effect.sync(() => {
          let resolve!: () => void
          const dropped = new Promise<void>((r) => (resolve = r))
          armed = { marker, dropped: resolve }
          return Effect.promise(() => dropped)
        })
    }
  })
