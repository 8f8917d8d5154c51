import { Subject, TcpProxy } from "@durable-singleton/conformance"
import { runConformance } from "@durable-singleton/conformance/Vitest"
import { Store } from "@durable-singleton/core"
import { RedisStore } from "@durable-singleton/store-redis"
import type { PlatformError } from "@effect/platform/Error"
import { describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Exit, Fiber, Layer, Option, Schedule } from "effect"
import { Redis } from "ioredis"
import * as Increments from "../../../support/Increments.js"
import * as PrivateRedis from "./support/PrivateRedis.js"
import { rawClient, redisTest, storeClient, uniquePrefix, url } from "./support/redis.js"

/**
 * The conformance subject: every client is a store with its own connection (default options),
 * made through a proxy of the storage's own, which the suite disrupts (the shared server is
 * never touched).
 */
const subject = (url: string) =>
  Subject.make({
    name: "redis",
    acquire: Effect.all({ prefix: uniquePrefix(url), proxy: TcpProxy.fromUrl(url) }),
    client: ({ prefix, proxy }, { namespace }) =>
      RedisStore.make({ url: proxy.url, prefix, namespace }),
    disrupt: ({ proxy }) => proxy.disrupt
  })

if (url === undefined) {
  it("conformance: redis (SKIPPED: REDIS_URL is not set)", (ctx) => ctx.skip())
} else {
  runConformance(subject(url))
}

const failureOf = (exit: Exit.Exit<unknown, PlatformError>) =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const increment = (n: string) => String(Number(n) + 1)

describe("RedisStore", () => {
  redisTest("stores key k of namespace ns at prefix + byteLength(ns) + ':' + ns + ':' + k, as tag + bytes", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      const raw = yield* rawClient(url)
      const store = yield* RedisStore.make({ url, prefix, namespace: "né:*" })
      yield* store.set("k\u0000", "v")
      yield* store.set("bytes", new Uint8Array([9, 0]))
      const base = `${prefix}5:né:*:`
      expect(yield* Effect.promise(() => raw.getBuffer(`${base}k\u0000`))).toEqual(Buffer.from([0, 0x76]))
      expect(yield* Effect.promise(() => raw.getBuffer(`${base}bytes`))).toEqual(Buffer.from([1, 9, 0]))
    }))

  redisTest("namespaces never see each other, whatever their names", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      // Names that are prefixes of each other, glob metacharacters, and names that look like
      // the encoding itself (`1:a` and a key `b` vs `a` and a key `1:b`...).
      const namespaces = ["a", "a:b", "a:", "a%", "a_", "a*", "*", "?", "[a]", "[", "a\\", "\\", "", "1:a", "é", "e\u0301"]
      const stores = yield* Effect.forEach(namespaces, (namespace) => RedisStore.make({ url, prefix, namespace }))
      // Keys chosen so that namespace + key spell the same text across namespaces.
      yield* Effect.forEach(stores, (store, i) =>
        Effect.all([
          store.set("b:c", `${i}`),
          store.set(":b:c", `${i}`),
          store.set("c", `${i}`),
          ...Array.from({ length: i }, (_, j) => store.set(`extra-${j}`, `${i}`))
        ]))
      for (const [i, store] of stores.entries()) {
        expect(yield* store.size).toBe(3 + i)
        expect(yield* store.get("c")).toEqual(Option.some(`${i}`))
        expect(yield* store.get("b:c")).toEqual(Option.some(`${i}`))
      }
      // Clearing one namespace at a time leaves every other one intact.
      for (const [i, store] of stores.entries()) {
        yield* store.clear
        expect(yield* store.size).toBe(0)
        expect(yield* store.isEmpty).toBe(true)
        for (const [j, other] of stores.entries()) expect(yield* other.size).toBe(j <= i ? 0 : 3 + j)
      }
    }), 60_000)

  redisTest("size and clear see only the namespace, are correct when it is empty, and never touch other keys", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      const raw = yield* rawClient(url)
      const store = yield* RedisStore.make({ url, prefix, namespace: "ns" })
      expect(yield* store.size).toBe(0)
      yield* store.clear
      expect(yield* store.isEmpty).toBe(true)
      // Keys that only differ from the namespace's keys after the prefix, or are foreign.
      const foreign = [`${prefix}2:ns`, `${prefix}2:nsx`, `${prefix}2:n:x`, `${prefix}3:ns::x`, `${prefix}ns:x`, `${prefix}2:n*:x`]
      for (const key of foreign) yield* Effect.promise(() => raw.set(key, "foreign"))
      yield* Effect.forEach(Array.from({ length: 2500 }, (_, i) => i), (i) => store.set(`k${i}`, "v"), {
        concurrency: 50,
        discard: true
      })
      expect(yield* store.size).toBe(2500)
      yield* store.clear
      expect(yield* store.size).toBe(0)
      for (const key of foreign) expect(yield* Effect.promise(() => raw.get(key))).toBe("foreign")
    }), 60_000)

  redisTest("combined updates stay exact: 4 clients × 8 fibers × 40 increments of one key", (url) =>
    Effect.gen(function*() {
      const storage = yield* subject(url).acquire
      const clients = yield* Effect.forEach(
        Array.from({ length: 4 }),
        () => subject(url).client(storage, { namespace: "counters" })
      )
      yield* clients[0]!.set("hot", "0")
      yield* Effect.forEach(clients, (client) =>
        Effect.forEach(Array.from({ length: 8 }), () =>
          Effect.forEach(Array.from({ length: 40 }), () => client.modify("hot", increment), { discard: true }), {
          concurrency: "unbounded",
          discard: true
        }), { concurrency: "unbounded", discard: true })
      expect(yield* clients[3]!.get("hot")).toEqual(Option.some(String(4 * 8 * 40)))
    }), 60_000)

  redisTest("4 processes × 250 modify increments end at exactly 1000", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      yield* Increments.expectExact({ kind: "redis", url, prefix, namespace: "multi-process" })
    }), 120_000)

  redisTest("a value this store did not write fails with InvalidData and is left untouched", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      const raw = yield* rawClient(url)
      const store = yield* RedisStore.make({ url, prefix, namespace: "ns" })
      yield* Effect.promise(() => raw.set(`${prefix}2:ns:foreign`, "\u0007not ours"))
      for (const exit of [yield* Effect.exit(store.get("foreign")), yield* Effect.exit(store.modify("foreign", increment))]) {
        const error = failureOf(exit)
        expect(error?._tag).toBe("SystemError")
        expect(error?._tag === "SystemError" && error.reason).toBe("InvalidData")
      }
      expect(yield* Effect.promise(() => raw.get(`${prefix}2:ns:foreign`))).toBe("\u0007not ours")
    }))

  redisTest("an empty value written by someone else is not an absent key: create-if-absent never overwrites it", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      const client = yield* storeClient(url)
      const store = yield* RedisStore.fromClient(client, { prefix, namespace: "ns" })
      // f runs after the read saw the key absent and before the compare-and-set: an empty value
      // written then on the same connection lands first.
      const exit = yield* Effect.exit(store.modifyOrInit("k", (current) => {
        if (Option.isNone(current)) void client.set(`${prefix}2:ns:k`, "")
        return [current, Option.some("mine")]
      }))
      const error = failureOf(exit)
      expect(error?._tag === "SystemError" && error.reason).toBe("InvalidData")
      expect(yield* Effect.promise(() => client.get(`${prefix}2:ns:k`))).toBe("")
    }))

  redisTest("loads its script again after SCRIPT FLUSH (NOSCRIPT fallback)", () =>
    Effect.gen(function*() {
      const server = yield* PrivateRedis.make
      const raw = yield* rawClient(server.url)
      const store = yield* RedisStore.make({ url: server.url })
      yield* store.set("n", "0")
      yield* store.modify("n", increment)
      yield* Effect.promise(() => raw.script("FLUSH"))
      yield* store.modify("n", increment)
      expect(yield* store.get("n")).toEqual(Option.some("2"))
    }), 30_000)

  redisTest("an update that keeps conflicting fails with Busy after maxAttempts and writes nothing", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      const client = yield* storeClient(url)
      const store = yield* RedisStore.fromClient(client, { prefix, namespace: "ns", maxAttempts: 3 })
      yield* store.set("k", "0")
      let calls = 0
      // Every call of f changes the key on the store's own connection, so the write is
      // queued before the compare-and-set that follows: each attempt conflicts.
      const exit = yield* Effect.exit(store.modify("k", (n) => {
        calls++
        void client.set(`${prefix}2:ns:k`, `\u0000other-${calls}`)
        return n + "!"
      }))
      const error = failureOf(exit)
      expect(error?._tag === "SystemError" && error.reason).toBe("Busy")
      expect(calls).toBe(3)
      expect(yield* store.get("k")).toEqual(Option.some("other-3"))
    }))

  redisTest("a call queued behind a write never answers from a value another client has replaced since", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      const other = yield* rawClient(url)
      const client = yield* storeClient(url)
      const store = yield* RedisStore.fromClient(client, { prefix, namespace: "ns" })
      const redisKey = `${prefix}2:ns:k`
      yield* store.set("k", "0")
      // The write's f runs just before its compare-and-set is sent: stop reading replies there,
      // so the write lands on the server while this store has not seen it land yet.
      const write = yield* Effect.fork(store.modify("k", (n) => {
        client.stream.pause()
        return increment(n)
      }))
      while ((yield* Effect.promise(() => other.get(redisKey))) !== "\u00001") yield* Effect.sleep("1 millis")
      // Another client replaces the value, and only then does this call start (queued behind
      // the write): its answer must not be the value the write left.
      yield* Effect.promise(() => other.set(redisKey, "\u0000replaced"))
      const read = yield* Effect.fork(store.modifyOrInit("k", (current) => [current, Option.none()]))
      yield* Effect.sleep("10 millis")
      client.stream.resume()
      expect(yield* Fiber.join(write)).toEqual(Option.some("1"))
      expect(yield* Fiber.join(read)).toEqual(Option.some("replaced"))
    }))

  redisTest("interrupted updates apply once or not at all, never twice", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      const store = yield* RedisStore.make({ url, prefix })
      yield* store.set("n", "0")
      const fibers = yield* Effect.forEach(
        Array.from({ length: 200 }),
        () => Effect.fork(store.modify("n", increment))
      )
      yield* Effect.sleep("1 millis")
      const interrupted = fibers.filter((_, i) => i % 2 === 1)
      yield* Effect.forEach(interrupted, Fiber.interrupt, { concurrency: "unbounded", discard: true })
      const exits = yield* Effect.forEach(fibers, Fiber.await)
      const acknowledged = exits.filter(Exit.isSuccess).length
      const final = Number(Option.getOrThrow(yield* store.get("n")))
      expect(final).toBeGreaterThanOrEqual(acknowledged)
      expect(final).toBeLessThanOrEqual(acknowledged + interrupted.length)
      // Nothing is left running: later updates see a stable value.
      yield* Effect.sleep("100 millis")
      expect(yield* store.get("n")).toEqual(Option.some(String(final)))
    }))

  redisTest("fromClient: uses the client's keyPrefix, never quits the client, and refuses work after its scope", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      const raw = yield* rawClient(url)
      const client = new Redis(url, { keyPrefix: `${prefix}client*[x]:`, autoResendUnfulfilledCommands: false })
      yield* Effect.addFinalizer(() => Effect.promise(() => client.quit()))
      const store = yield* Effect.scoped(Effect.gen(function*() {
        const store = yield* RedisStore.fromClient(client, { prefix: "p:", namespace: "ns" })
        yield* store.set("a", "1")
        yield* store.set("b", "2")
        yield* store.modify("a", increment)
        expect(yield* store.size).toBe(2)
        expect(yield* Effect.promise(() => raw.getBuffer(`${prefix}client*[x]:p:2:ns:a`))).toEqual(
          Buffer.from("\u00002")
        )
        yield* store.clear
        expect(yield* store.size).toBe(0)
        yield* store.set("kept", "1")
        return store
      }))
      const error = failureOf(yield* Effect.exit(store.get("kept")))
      expect(error?._tag === "SystemError" && error.reason).toBe("BadResource")
      expect(client.status).toBe("ready")
      expect(yield* Effect.promise(() => client.get("p:2:ns:kept"))).toBe("\u00001")
    }))

  redisTest("fromClient refuses a client that resends unanswered commands after a reconnect (ioredis' default)", (url) =>
    Effect.gen(function*() {
      for (const options of [{}, { autoResendUnfulfilledCommands: true }]) {
        const client = yield* rawClient(url, options)
        const error = failureOf(yield* Effect.exit(RedisStore.fromClient(client)))
        expect(error?._tag).toBe("BadArgument")
        expect(error?.message).toMatch(/autoResendUnfulfilledCommands: false/)
      }
      // make's own connection never resends, whatever its options say
      const prefix = yield* uniquePrefix(url)
      const store = yield* RedisStore.make({ url, prefix, redis: { autoResendUnfulfilledCommands: true } })
      yield* store.set("k", "v")
    }))

  redisTest("layerConfig reads REDIS_URL, REDIS_STORE_NAMESPACE and REDIS_STORE_PREFIX", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      const raw = yield* rawClient(url)
      const layer = RedisStore.layerConfig().pipe(
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(
          new Map([["REDIS_URL", url], ["REDIS_STORE_NAMESPACE", "configured"], ["REDIS_STORE_PREFIX", prefix]])
        )))
      )
      yield* Effect.provide(Effect.flatMap(Store.Store, (store) => store.set("k", "v")), layer)
      expect(yield* Effect.promise(() => raw.get(`${prefix}10:configured:k`))).toBe("\u0000v")
      const missing = yield* Effect.exit(Layer.build(RedisStore.layerConfig().pipe(
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map())))
      )))
      expect(Exit.isFailure(missing)).toBe(true)
    }))

  redisTest("rejects a bad namespace, prefix, maxAttempts or URL with BadArgument", (url) =>
    Effect.gen(function*() {
      const bad: ReadonlyArray<RedisStore.Options> = [
        { namespace: "\ud800" },
        { prefix: "a\udc00" },
        { prefix: 1 as unknown as string },
        { maxAttempts: 0 },
        { maxAttempts: 1.5 },
        { url: "not a url" },
        { url: "" }
      ]
      for (const options of bad) {
        const error = failureOf(yield* Effect.exit(RedisStore.make({ url, ...options })))
        expect(error?._tag).toBe("BadArgument")
      }
    }))
})

describe("RedisStore failures (a private redis-server per test)", () => {
  redisTest("connection refused: make fails with a SystemError carrying the ioredis error", () =>
    Effect.gen(function*() {
      const port = yield* PrivateRedis.freePort
      const error = failureOf(yield* Effect.exit(RedisStore.make({ url: `redis://127.0.0.1:${port}` })))
      expect(error?._tag).toBe("SystemError")
      expect(error?.message).toMatch(/ECONNREFUSED/)
      expect((error?.cause as NodeJS.ErrnoException | undefined)?.code).toBe("ECONNREFUSED")
    }))

  redisTest("the server dies mid-operation: the operation fails with a PlatformError, and the store reconnects", () =>
    Effect.gen(function*() {
      const server = yield* PrivateRedis.make
      const store = yield* RedisStore.make({ url: server.url, redis: { retryStrategy: () => 50 } })
      yield* store.set("n", "0")
      // Frozen, the server holds the commands unanswered; killed, their connection drops.
      yield* server.freeze
      const inFlight = yield* Effect.fork(Effect.exit(store.modify("n", increment)))
      const inFlightSet = yield* Effect.fork(Effect.exit(store.set("m", "1")))
      yield* Effect.sleep("100 millis")
      yield* server.kill
      for (const exit of [yield* Fiber.join(inFlight), yield* Fiber.join(inFlightSet)]) {
        const error = failureOf(exit)
        expect(error?._tag).toBe("SystemError")
        expect(error?._tag === "SystemError" && error.reason).toBe("UnexpectedEof")
        expect((error?.cause as Error).name).toBe("ConnectionLost")
      }
      yield* server.start
      // The new server is empty (no persistence); the same store works again once it has
      // reconnected (until then an operation fails at once, having sent nothing).
      const fresh = store.modifyOrInit("n", (n) => [n, Option.some("fresh")])
      expect(yield* Effect.retry(fresh, { schedule: Schedule.spaced("50 millis"), times: 40 })).toEqual(Option.none())
      expect(yield* store.get("n")).toEqual(Option.some("fresh"))
    }), 30_000)

  redisTest("a command queued while reconnecting, whose new connection drops before the reply, fails with UnexpectedEof; the key stays usable", () =>
    Effect.gen(function*() {
      const server = yield* PrivateRedis.make
      const proxy = yield* TcpProxy.fromUrl(server.url)
      const client = yield* storeClient(proxy.url, { retryStrategy: () => 100 })
      client.on("error", () => {})
      const store = yield* RedisStore.fromClient(client, { namespace: "flap" })
      yield* store.set("marker-k", "0")
      yield* proxy.cutAll
      while (client.status === "ready") yield* Effect.sleep("1 millis")
      // Issued while the client is down: held in ioredis' offline queue, written on reconnect,
      // and that connection is dropped as soon as it carries them.
      const dropped = yield* proxy.cutOnNext("marker-")
      const exits = yield* Effect.all([
        Effect.exit(store.modify("marker-k", increment)),
        Effect.exit(store.set("marker-other", "1"))
      ], { concurrency: "unbounded" }).pipe(Effect.timeout("10 seconds"))
      yield* dropped
      for (const exit of exits) {
        const error = failureOf(exit)
        expect(error?._tag === "SystemError" && error.reason).toBe("UnexpectedEof")
        expect((error?.cause as Error).name).toBe("ConnectionLost")
      }
      // The proxy dropped them before the server saw them; the key's updates carry on.
      expect(yield* store.modify("marker-k", increment).pipe(Effect.timeout("10 seconds"))).toEqual(Option.some("1"))
      expect(yield* store.get("marker-other")).toEqual(Option.none())
    }), 30_000)

  redisTest("maxRetriesPerRequest exhausted: operations fail with a PlatformError, then work once the server is back", () =>
    Effect.gen(function*() {
      const server = yield* PrivateRedis.make
      const client = new Redis(server.url, {
        maxRetriesPerRequest: 2,
        retryStrategy: () => 50,
        autoResendUnfulfilledCommands: false
      })
      client.on("error", () => {})
      yield* Effect.addFinalizer(() => Effect.sync(() => client.disconnect()))
      const store = yield* RedisStore.fromClient(client)
      yield* store.set("k", "v")
      yield* server.kill
      // Once the client has seen the connection drop, commands wait for a reconnection.
      while (client.status === "ready") yield* Effect.sleep("5 millis")
      for (const exit of [yield* Effect.exit(store.get("k")), yield* Effect.exit(store.modify("k", increment))]) {
        const error = failureOf(exit)
        expect(error?._tag).toBe("SystemError")
        expect((error?.cause as Error).name).toBe("MaxRetriesPerRequestError")
      }
      yield* server.start
      yield* store.set("k", "back")
      expect(yield* store.get("k")).toEqual(Option.some("back"))
    }), 30_000)

  redisTest("a frozen server with commandTimeout: operations fail with TimedOut instead of hanging", () =>
    Effect.gen(function*() {
      const server = yield* PrivateRedis.make
      const store = yield* RedisStore.make({ url: server.url, redis: { commandTimeout: 200 } })
      yield* store.set("k", "v")
      yield* server.freeze
      const error = failureOf(yield* Effect.exit(store.modify("k", (v) => v + "!")))
      expect(error?._tag === "SystemError" && error.reason).toBe("TimedOut")
    }), 30_000)

  redisTest("a closed store fails with BadResource and its connection is quit", () =>
    Effect.gen(function*() {
      const server = yield* PrivateRedis.make
      const raw = yield* rawClient(server.url)
      const store = yield* Effect.scoped(RedisStore.make({ url: server.url }))
      for (const op of [store.get("k"), store.set("k", "v"), store.modify("k", increment), store.size, store.clear]) {
        const error = failureOf(yield* Effect.exit(op))
        expect(error?._tag === "SystemError" && error.reason).toBe("BadResource")
      }
      const clients = yield* Effect.promise(() => raw.client("LIST") as Promise<string>)
      expect(clients.trim().split("\n")).toHaveLength(1)
    }), 30_000)
})
