import { MemoryStore, Store } from "@durable-singleton/core"
import { KeyValueStore } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Option, Schema } from "effect"

// The tag of the typed failure of an exit (undefined for success or a defect).
const failureTag = <A, E extends { readonly _tag: string }>(exit: Exit.Exit<A, E>) =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause))?._tag : undefined

describe("Store (derived from a backend)", () => {
  it.scoped("provides the same service under the Store and platform KeyValueStore tags", () =>
    Effect.gen(function*() {
      const store = yield* Store.Store
      const kv = yield* KeyValueStore.KeyValueStore
      expect(kv).toBe(store)
      expect(Store.isStore(kv)).toBe(true)
    }).pipe(Effect.provide(MemoryStore.layer)))

  it.scoped("keeps the kind of a value: get of bytes is base64, getUint8Array of a string is UTF-8", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      yield* store.set("text", "é\u0000x")
      yield* store.set("bytes", new Uint8Array([0, 255, 1]))
      expect(yield* store.get("bytes")).toEqual(Option.some("AP8B"))
      expect(yield* store.getUint8Array("bytes")).toEqual(Option.some(new Uint8Array([0, 255, 1])))
      expect(yield* store.getUint8Array("text")).toEqual(Option.some(new TextEncoder().encode("é\u0000x")))
      expect(yield* store.get("text")).toEqual(Option.some("é\u0000x"))
      // "AAAA" is valid base64 but a string value: its bytes are its UTF-8, not a base64 decoding
      yield* store.set("b64", "AAAA")
      expect(yield* store.getUint8Array("b64")).toEqual(Option.some(new TextEncoder().encode("AAAA")))
    }))

  it.scoped("modify changes present keys only and returns the new value", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      expect(yield* store.modify("missing", (v) => v + "!")).toEqual(Option.none())
      expect(yield* store.has("missing")).toBe(false)
      yield* store.set("k", "a")
      expect(yield* store.modify("k", (v) => v + "!")).toEqual(Option.some("a!"))
      expect(yield* store.get("k")).toEqual(Option.some("a!"))
      yield* store.set("bin", new Uint8Array([1, 2]))
      expect(yield* store.modifyUint8Array("bin", (v) => new Uint8Array([...v, 3]))).toEqual(
        Option.some(new Uint8Array([1, 2, 3]))
      )
    }))

  it.scoped("setIfAbsent and modifyOrInit create missing keys exactly once", () =>
    Effect.gen(function*() {
      const storage = MemoryStore.makeStorage()
      const clients = yield* Effect.all(Array.from({ length: 8 }, () => MemoryStore.make({ storage })))
      const wins = yield* Effect.all(clients.map((c, i) => c.setIfAbsent("leader", `client-${i}`)), {
        concurrency: "unbounded"
      })
      expect(wins.filter((won) => won)).toHaveLength(1)
      const winner = wins.indexOf(true)
      expect(yield* clients[0]!.get("leader")).toEqual(Option.some(`client-${winner}`))
      const seen = yield* clients[1]!.modifyOrInit("n", (current) => [current, Option.some("1")])
      expect(seen).toEqual(Option.none())
      const seenAgain = yield* clients[2]!.modifyOrInit("n", (current) => [current, Option.none()])
      expect(seenAgain).toEqual(Option.some("1"))
    }))

  it.scoped("concurrent modify from many clients loses no update", () =>
    Effect.gen(function*() {
      const storage = MemoryStore.makeStorage()
      const clients = yield* Effect.all(Array.from({ length: 4 }, () => MemoryStore.make({ storage })))
      yield* clients[0]!.set("counter", "0")
      yield* Effect.all(
        clients.flatMap((client) =>
          Array.from({ length: 50 }, () =>
            Effect.yieldNow().pipe(Effect.zipRight(client.modify("counter", (n) => String(Number(n) + 1))))
          )
        ),
        { concurrency: "unbounded" }
      )
      expect(yield* clients[3]!.get("counter")).toEqual(Option.some("200"))
    }))

  it.scoped("rejects keys and values no backend can store, with BadArgument, writing nothing", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      const lone = "a\uD800b"
      expect(failureTag(yield* Effect.exit(store.set(lone, "v")))).toBe("BadArgument")
      expect(failureTag(yield* Effect.exit(store.get(lone)))).toBe("BadArgument")
      expect(failureTag(yield* Effect.exit(store.set("k", lone)))).toBe("BadArgument")
      expect(failureTag(yield* Effect.exit(store.set("x".repeat(Store.maxKeyBytes + 1), "v")))).toBe("BadArgument")
      // 342 three-byte characters are more than maxKeyBytes
      expect(failureTag(yield* Effect.exit(store.set("€".repeat(342), "v")))).toBe("BadArgument")
      expect(yield* store.set("x".repeat(Store.maxKeyBytes), "v")).toBeUndefined()
      expect(failureTag(yield* Effect.exit(store.set("k", 42 as unknown as string)))).toBe("BadArgument")
      yield* store.set("k", "before")
      expect(failureTag(yield* Effect.exit(store.modify("k", () => lone)))).toBe("BadArgument")
      expect(failureTag(yield* Effect.exit(store.modifyOrInit("k", () => [1, Option.some(lone)])))).toBe("BadArgument")
      expect(yield* store.get("k")).toEqual(Option.some("before"))
      expect(yield* store.size).toBe(2)
    }))

  it.scoped("keeps namespaces apart, including prefixes and metacharacters", () =>
    Effect.gen(function*() {
      const storage = MemoryStore.makeStorage()
      const a = yield* MemoryStore.make({ storage, namespace: "a" })
      const ab = yield* MemoryStore.make({ storage, namespace: "a:b" })
      const pct = yield* MemoryStore.make({ storage, namespace: "a%" })
      yield* a.set("k", "1")
      yield* ab.set("k", "2")
      yield* pct.set("j", "3")
      expect(yield* a.size).toBe(1)
      yield* a.clear
      expect(yield* a.isEmpty).toBe(true)
      expect(yield* ab.get("k")).toEqual(Option.some("2"))
      expect(yield* pct.size).toBe(1)
    }))

  it.effect("a closed client fails with a typed error and the storage lives on", () =>
    Effect.gen(function*() {
      const storage = MemoryStore.makeStorage()
      const closed = yield* Effect.scoped(Effect.tap(MemoryStore.make({ storage }), (s) => s.set("k", "v")))
      const exit = yield* Effect.exit(closed.get("k"))
      expect(failureTag(exit)).toBe("SystemError")
      const reopened = yield* Effect.scoped(Effect.flatMap(MemoryStore.make({ storage }), (s) => s.get("k")))
      expect(reopened).toEqual(Option.some("v"))
    }))

  it.scoped("bytes are copied in and out, as plain Uint8Arrays even when written as a Node Buffer", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      for (const input of [new Uint8Array([1, 2, 3]), Buffer.from([1, 2, 3])]) {
        yield* store.set("k", input)
        input[0] = 9
        const out = Option.getOrThrow(yield* store.getUint8Array("k"))
        expect(Object.getPrototypeOf(out)).toBe(Uint8Array.prototype)
        out[1] = 9
        expect(yield* store.getUint8Array("k")).toEqual(Option.some(new Uint8Array([1, 2, 3])))
      }
    }))

  it.scoped("forSchema.modify is atomic and never writes a value that does not decode", () =>
    Effect.gen(function*() {
      const storage = MemoryStore.makeStorage()
      const clients = yield* Effect.all(Array.from({ length: 4 }, () => MemoryStore.make({ storage })))
      const Counter = Schema.Struct({ n: Schema.Number })
      yield* clients[0]!.forSchema(Counter).set("c", { n: 0 })
      yield* Effect.all(
        clients.flatMap((c) =>
          Array.from({ length: 25 }, () =>
            Effect.yieldNow().pipe(Effect.zipRight(c.forSchema(Counter).modify("c", ({ n }) => ({ n: n + 1 }))))
          )
        ),
        { concurrency: "unbounded" }
      )
      expect(yield* clients[1]!.forSchema(Counter).get("c")).toEqual(Option.some({ n: 100 }))
      yield* clients[0]!.set("bad", "{\"n\":\"x\"}")
      const exit = yield* Effect.exit(clients[0]!.forSchema(Counter).modify("bad", ({ n }) => ({ n: n + 1 })))
      expect(failureTag(exit)).toBe("ParseError")
      expect(yield* clients[0]!.get("bad")).toEqual(Option.some("{\"n\":\"x\"}"))
    }))

  it("checkNamespace accepts any well-formed string, and rejects lone surrogates, non-strings and names over maxBytes", () => {
    for (const namespace of ["", "default", "a:b%_*?[", "\u00e9\u0000\ud83d\ude00", "x".repeat(5000)]) {
      expect(Store.checkNamespace("make", namespace)).toBeUndefined()
    }
    for (const namespace of ["\ud800", "a\udc00b", 42 as unknown as string]) {
      expect(Store.checkNamespace("make", namespace)).toMatchObject({ _tag: "BadArgument", module: "KeyValueStore", method: "make" })
    }
    expect(Store.checkNamespace("make", "\u00e9".repeat(512), { maxBytes: 1024 })).toBeUndefined()
    const tooLong = Store.checkNamespace("make", "\u00e9".repeat(512) + "x", { maxBytes: 1024 })
    expect(tooLong).toMatchObject({ _tag: "BadArgument" })
    expect(tooLong?.message).toContain("1025 UTF-8 bytes, more than 1024")
  })

  it("encodes tagged values so that strings and bytes never alias", () => {
    const values: Array<Store.Value> = ["", "\u0000", "é", "😀", new Uint8Array(), new Uint8Array([0]), new Uint8Array([255, 0])]
    for (const value of values) {
      const decoded = Store.decodeTagged(Store.encodeTagged(value))
      expect(decoded).toEqual(value)
      expect(typeof decoded).toBe(typeof value)
    }
    const fromBuffer = Store.decodeTagged(Buffer.from([1, 7, 8])) as Uint8Array
    expect(Object.getPrototypeOf(fromBuffer)).toBe(Uint8Array.prototype)
    expect(fromBuffer).toEqual(new Uint8Array([7, 8]))
    expect(Store.decodeTagged(new Uint8Array([2, 65]))).toBeUndefined()
    expect(Store.decodeTagged(new Uint8Array([0, 0xff]))).toBeUndefined()
    expect(Store.decodeTagged(new Uint8Array([]))).toBeUndefined()
    expect(Store.valueEquals("a", new TextEncoder().encode("a"))).toBe(false)
    expect(Store.valueEquals(new Uint8Array([1]), new Uint8Array([1]))).toBe(true)
  })
})

describe("Store.mapBackend", () => {
  it.scoped("passes every operation, named, through the change; a backend without has stays without", () =>
    Effect.gen(function*() {
      const backend = yield* MemoryStore.makeBackend({ storage: MemoryStore.makeStorage() })
      const seen: Array<string> = []
      const logged = Store.mapBackend(backend, (method, effect) => Effect.zipLeft(effect, Effect.sync(() => seen.push(method))))
      const store = Store.make(logged)
      yield* store.set("k", "v")
      yield* store.get("k")
      yield* store.has("k")
      yield* store.modify("k", (v) => `${v}!`)
      yield* store.size
      yield* store.remove("k")
      yield* store.clear
      expect(seen).toEqual(["set", "get", "has", "modifyOrInit", "size", "remove", "clear"])
      expect(logged.namespace).toBe(backend.namespace)
      const { has: _, ...withoutHas } = backend
      expect(Store.mapBackend(withoutHas, (_, effect) => effect).has).toBeUndefined()
    }))
})
