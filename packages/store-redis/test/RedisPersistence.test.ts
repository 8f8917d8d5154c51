import { RedisPersistence, RedisStore } from "@durable-singleton/store-redis"
import * as Persistence from "@effect/experimental/Persistence"
import { describe, expect } from "@effect/vitest"
import { Duration, Effect, Exit, Layer, Option, PrimaryKey, Schema } from "effect"
import { rawClient, redisTest, storeClient, uniquePrefix } from "./support/redis.js"

class GetUser extends Schema.TaggedRequest<GetUser>()("GetUser", {
  failure: Schema.String,
  success: Schema.Struct({ name: Schema.String }),
  payload: { id: Schema.Number }
}) {
  [PrimaryKey.symbol]() {
    return `user:${this.id}`
  }
}

const never = Option.none<Duration.Duration>()
const ttl = (millis: number) => Option.some(Duration.millis(millis))

describe("RedisPersistence (BackingPersistence for @effect/experimental)", () => {
  redisTest("get, getMany, set and remove round-trip JSON values", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      const backing = yield* RedisPersistence.make({ url, prefix })
      const store = yield* backing.make("users")
      const value = { name: "é\u0000🙂", tags: ["a", "b"], n: 1.5, nested: { ok: true } }
      yield* store.set("k1", value, never)
      expect(yield* store.get("k1")).toEqual(Option.some(value))
      expect(yield* store.get("missing")).toEqual(Option.none())
      yield* store.set("k2", 2, never)
      expect(yield* store.getMany(["k1", "missing", "k2"])).toEqual([Option.some(value), Option.none(), Option.some(2)])
      expect(yield* store.getMany([])).toEqual([])
      yield* store.remove("k1")
      expect(yield* store.get("k1")).toEqual(Option.none())
    }))

  redisTest("setMany writes every entry, with or without time-to-live", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      const store = yield* Effect.flatMap(RedisPersistence.make({ url, prefix }), (backing) => backing.make("s"))
      const entries = Array.from({ length: 50 }, (_, i) => [`k${i}`, { i }, i % 2 === 0 ? never : ttl(60_000)] as const)
      yield* store.setMany(entries)
      expect(yield* store.getMany(entries.map(([key]) => key))).toEqual(entries.map(([, value]) => Option.some(value)))
    }))

  redisTest("time-to-live is Redis' own: expired entries are gone; zero removes; infinite never expires", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      const raw = yield* rawClient(url)
      const store = yield* Effect.flatMap(RedisPersistence.make({ url, prefix }), (backing) => backing.make("ttl"))
      yield* store.set("short", 1, ttl(150))
      yield* store.set("forever", 1, Option.some(Duration.infinity))
      yield* store.set("zero", 1, never)
      yield* store.set("zero", 1, ttl(0))
      expect(yield* Effect.promise(() => raw.pttl(`${prefix}3:ttl:short`))).toBeGreaterThan(0)
      expect(yield* Effect.promise(() => raw.pttl(`${prefix}3:ttl:forever`))).toBe(-1)
      expect(yield* store.get("zero")).toEqual(Option.none())
      expect(yield* store.get("short")).toEqual(Option.some(1))
      yield* Effect.sleep("300 millis")
      expect(yield* Effect.promise(() => raw.exists(`${prefix}3:ttl:short`))).toBe(0)
      expect(yield* store.get("short")).toEqual(Option.none())
      expect(yield* store.get("forever")).toEqual(Option.some(1))
    }))

  redisTest("clear removes its own store's entries only", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      // The default prefixes' relation: persistence keys sit beside the stores' namespaces.
      const backing = yield* RedisPersistence.make({ url, prefix: `${prefix}persistence:` })
      const ids = ["a", "a:b", "1:a", "*", "[a]", ""]
      const stores = yield* Effect.forEach(ids, (id) => backing.make(id))
      yield* Effect.forEach(stores, (store, i) => store.setMany([["x", i, never], ["y", i, ttl(60_000)]]))
      // A RedisStore namespace named like a store id.
      const kv = yield* RedisStore.make({ url, prefix, namespace: "a" })
      yield* kv.set("x", "store")
      for (const [i, store] of stores.entries()) {
        yield* store.clear
        expect(yield* store.getMany(["x", "y"])).toEqual([Option.none(), Option.none()])
        for (const [j, other] of stores.entries()) {
          if (j > i) expect(yield* other.getMany(["x", "y"])).toEqual([Option.some(j), Option.some(j)])
        }
      }
      expect(yield* kv.get("x")).toEqual(Option.some("store"))
    }))

  redisTest("a value that is not JSON fails with PersistenceBackingError and is left as it is", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      const raw = yield* rawClient(url)
      const store = yield* Effect.flatMap(RedisPersistence.make({ url, prefix }), (backing) => backing.make("s"))
      yield* Effect.promise(() => raw.set(`${prefix}1:s:bad`, "\u0000{not json"))
      const error = yield* Effect.flip(store.get("bad"))
      expect(error._tag).toBe("PersistenceError")
      expect(error.reason).toBe("BackingError")
      expect(yield* Effect.promise(() => raw.get(`${prefix}1:s:bad`))).toBe("\u0000{not json")
    }))

  redisTest("fromClient refuses a client that resends unanswered commands after a reconnect; accepts one that does not", (url) =>
    Effect.gen(function*() {
      const resending = yield* rawClient(url)
      const error = yield* Effect.flip(RedisPersistence.fromClient(resending))
      expect(error._tag).toBe("BadArgument")
      expect(error.message).toMatch(/autoResendUnfulfilledCommands: false/)
      const prefix = yield* uniquePrefix(url)
      const backing = yield* RedisPersistence.fromClient(yield* storeClient(url), { prefix })
      const store = yield* backing.make("s")
      yield* store.set("k", 1, never)
      expect(yield* store.get("k")).toEqual(Option.some(1))
      expect((yield* Effect.flip(RedisPersistence.fromClient(yield* storeClient(url), { prefix: "\ud800" })))._tag)
        .toBe("BadArgument")
    }))

  redisTest("ResultPersistence on it stores and reads exits of requests", (url) =>
    Effect.gen(function*() {
      const prefix = yield* uniquePrefix(url)
      const layer = RedisPersistence.layerResult({ url, prefix })
      yield* Effect.gen(function*() {
        const results = yield* Persistence.ResultPersistence
        const store = yield* results.make({ storeId: "users" })
        yield* store.set(new GetUser({ id: 1 }), Exit.succeed({ name: "ada" }))
        yield* store.set(new GetUser({ id: 2 }), Exit.fail("not found"))
        expect(yield* store.get(new GetUser({ id: 1 }))).toEqual(Option.some(Exit.succeed({ name: "ada" })))
        const failed = yield* store.get(new GetUser({ id: 2 }))
        expect(Option.isSome(failed) && Exit.isFailure(failed.value)).toBe(true)
        expect(yield* store.get(new GetUser({ id: 3 }))).toEqual(Option.none())
      }).pipe(Effect.provide(layer), Effect.scoped)
      expect(Layer.isLayer(layer)).toBe(true)
    }))
})
