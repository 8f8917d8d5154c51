import { FencedState, MemoryStore, StateEnvelope, Store } from "@durable-singleton/core"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, FastCheck as fc, Option, Schema, TestClock } from "effect"
import { errorOf, faultyClient, noFaults, reasonOf, replayable } from "./helpers.js"

const Counter = FencedState.make({ name: "counter", schema: Schema.Number, initial: 0 })

// A client of `storage` that lives as long as the test's scope: one "process".
const client = (storage: MemoryStore.Storage) => MemoryStore.make({ storage })

const claimOn = (store: Store.Store, holder?: string) =>
  Effect.provideService(Counter.claim(holder === undefined ? undefined : { holder }), Store.Store, store)

const readOn = <A>(store: Store.Store, definition: FencedState.FencedState<A>) =>
  Effect.provideService(definition.read, Store.Store, store)

const stateOf = <A>(store: Store.Store, definition: FencedState.FencedState<A>) =>
  Effect.map(readOn(store, definition), Option.map((s) => s.state))

const readEnvelope = (store: Store.Store, key: string) =>
  Effect.map(store.get(key), Option.flatMap((raw) => Option.getRight(StateEnvelope.parse(raw))))

describe("FencedState", () => {
  it.scoped("creates the state with initial at the first claim, then bumps the epoch", () =>
    Effect.gen(function*() {
      const storage = MemoryStore.makeStorage()
      const [a, b] = [yield* client(storage), yield* client(storage)]
      const first = yield* claimOn(a, "a")
      expect(first.epoch).toBe(1)
      expect(yield* first.get).toBe(0)
      expect(yield* first.update((n) => n + 5)).toBe(5)
      const second = yield* claimOn(b, "b")
      expect(second.epoch).toBe(2)
      expect(yield* second.get).toBe(5)
      expect(second.token).not.toBe(first.token)
      const snapshot = Option.getOrThrow(yield* readOn(a, Counter))
      expect(snapshot).toMatchObject({ epoch: 2, seq: 2, schemaVersion: 1, state: 5, holder: Option.some("b") })
    }))

  it.scoped("concurrent claims from many clients get distinct epochs and exactly one stays current", () =>
    Effect.gen(function*() {
      const storage = MemoryStore.makeStorage()
      const clients = yield* Effect.all(Array.from({ length: 10 }, () => client(storage)))
      const leases = yield* Effect.all(
        clients.map((c) => Effect.zipRight(Effect.yieldNow(), claimOn(c))),
        { concurrency: "unbounded" }
      )
      expect(leases.map((l) => l.epoch).sort((x, y) => x - y)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1))
      const verdicts = yield* Effect.all(leases.map((l) => Effect.exit(l.verify)))
      expect(verdicts.filter(Exit.isSuccess)).toHaveLength(1)
      const current = leases[verdicts.findIndex(Exit.isSuccess)]!
      expect(current.epoch).toBe(10)
      for (const [i, verdict] of verdicts.entries()) {
        if (leases[i] !== current) expect(reasonOf(verdict)).toBe("LeaderHandoffFailed")
      }
    }))

  it.scoped("a stale leader's write is rejected, changes nothing, and it never touches the store again", () =>
    Effect.gen(function*() {
      const storage = MemoryStore.makeStorage()
      const [a, b] = [yield* client(storage), yield* client(storage)]
      const stale = yield* claimOn(a)
      yield* stale.update((n) => n + 1)
      const fresh = yield* claimOn(b)
      const before = yield* b.get(Counter.key)
      const error = errorOf(yield* Effect.exit(stale.update((n) => n + 100)))!
      expect(error.reason).toBe("LeaderHandoffFailed")
      expect(error.details).toMatchObject({ expectedEpoch: 1, actualEpoch: 2 })
      expect(yield* b.get(Counter.key)).toEqual(before)
      expect(yield* stale.isCurrent).toBe(false)
      expect(reasonOf(yield* Effect.exit(stale.set(7)))).toBe("LeaderHandoffFailed")
      expect(reasonOf(yield* Effect.exit(stale.heartbeat))).toBe("LeaderHandoffFailed")
      expect(yield* b.get(Counter.key)).toEqual(before)
      expect(yield* fresh.update((n) => n + 1)).toBe(2)
    }))

  it.effect("a superseded lease answers from memory once it knows, even when its store is closed", () =>
    Effect.gen(function*() {
      const storage = MemoryStore.makeStorage()
      const stale = yield* Effect.scoped(Effect.gen(function*() {
        const lease = yield* claimOn(yield* client(storage))
        yield* Effect.scoped(Effect.flatMap(client(storage), claimOn))
        expect(reasonOf(yield* Effect.exit(lease.verify))).toBe("LeaderHandoffFailed")
        return lease
      }))
      // its client is closed now: a store call would fail with StatePersistFailed, not this
      expect(reasonOf(yield* Effect.exit(stale.set(7)))).toBe("LeaderHandoffFailed")
    }))

  it.scoped("after clear(), a former leader can never write, even when the epoch number comes round again", () =>
    Effect.gen(function*() {
      const storage = MemoryStore.makeStorage()
      const [a, b, c] = [yield* client(storage), yield* client(storage), yield* client(storage)]
      const old = yield* claimOn(a)
      yield* c.clear
      expect(reasonOf(yield* Effect.exit(old.update((n) => n + 1)))).toBe("LeaderHandoffFailed")
      expect(yield* c.get(Counter.key)).toEqual(Option.none())
      const old2 = yield* claimOn(b)
      expect(old2.epoch).toBe(old.epoch)
      yield* c.clear
      const newest = yield* claimOn(c)
      expect(newest.epoch).toBe(old2.epoch)
      yield* newest.set(42)
      expect(reasonOf(yield* Effect.exit(old2.set(-1)))).toBe("LeaderHandoffFailed")
      expect(yield* stateOf(c, Counter)).toEqual(Option.some(42))
    }))

  const claimsAndWrites = "every acknowledged write is seen by the next claimer; stale writes never land"
  it.effect.prop(
    claimsAndWrites,
    [
      fc.array(
        fc.oneof(
          fc.record({ claim: fc.nat(3) }),
          fc.record({ lease: fc.nat(7), delta: fc.integer({ min: 1, max: 9 }) })
        ),
        { maxLength: 40 }
      )
    ],
    ([commands]) =>
      Effect.scoped(Effect.gen(function*() {
        const storage = MemoryStore.makeStorage()
        const clients = yield* Effect.all(Array.from({ length: 4 }, () => client(storage)))
        const leases: Array<FencedState.Lease<number>> = []
        let model = 0
        for (const command of commands) {
          if ("claim" in command) {
            const lease = yield* claimOn(clients[command.claim]!)
            expect(yield* lease.get).toBe(model)
            expect(lease.epoch).toBe(leases.length + 1)
            leases.push(lease)
          } else if (leases.length > 0) {
            const lease = leases[command.lease % leases.length]!
            const exit = yield* Effect.exit(lease.update((n) => n + command.delta))
            if (lease === leases[leases.length - 1]) {
              model += command.delta
              expect(exit).toEqual(Exit.succeed(model))
            } else {
              expect(reasonOf(exit)).toBe("LeaderHandoffFailed")
            }
          }
        }
        expect(yield* stateOf(clients[0]!, Counter)).toEqual(leases.length === 0 ? Option.none() : Option.some(model))
      })),
    { fastCheck: replayable("test/FencedState.test.ts", claimsAndWrites, 200) }
  )

  describe("undecodable state is reported and left as it was", () => {
    const envelope = (fields: Partial<StateEnvelope.Envelope>) =>
      StateEnvelope.stringify({
        format: StateEnvelope.format,
        schemaVersion: 1,
        epoch: 3,
        token: "t",
        seq: 9,
        updatedAt: 0,
        lastSuccessAt: null,
        holder: null,
        state: 1,
        ...fields
      })

    const cases = {
      "corrupt JSON": "{\"format\":",
      "not an envelope": "{\"hello\":1}",
      "wrong shape": envelope({ state: "not a number" }),
      "a newer schema version": envelope({ schemaVersion: 2 })
    }

    for (const [title, stored] of Object.entries(cases)) {
      it.scoped(title, () =>
        Effect.gen(function*() {
          const store = yield* client(MemoryStore.makeStorage())
          yield* store.set(Counter.key, stored)
          expect(reasonOf(yield* Effect.exit(claimOn(store)))).toBe("SchemaDecodeFailed")
          expect(reasonOf(yield* Effect.exit(readOn(store, Counter)))).toBe("SchemaDecodeFailed")
          expect(yield* store.get(Counter.key)).toEqual(Option.some(stored))
        }))
    }

    it.scoped("bytes where an envelope should be", () =>
      Effect.gen(function*() {
        const store = yield* client(MemoryStore.makeStorage())
        yield* store.set(Counter.key, new Uint8Array([123]))
        expect(reasonOf(yield* Effect.exit(claimOn(store)))).toBe("SchemaDecodeFailed")
        expect(yield* store.getUint8Array(Counter.key)).toEqual(Option.some(new Uint8Array([123])))
      }))

    it.scoped("a newer schema version names both versions", () =>
      Effect.gen(function*() {
        const store = yield* client(MemoryStore.makeStorage())
        yield* store.set(Counter.key, envelope({ schemaVersion: 3 }))
        const V2 = FencedState.make({
          name: "counter",
          schema: Schema.Number,
          initial: 0,
          version: 2,
          migrations: { 1: (n) => n }
        })
        const error = errorOf(yield* Effect.exit(Effect.provideService(V2.claim(), Store.Store, store)))!
        expect(error.details).toMatchObject({ storedVersion: 3, supportedVersion: 2 })
      }))

    it.scoped("inspect reads the bookkeeping without decoding the state", () =>
      Effect.gen(function*() {
        const store = yield* client(MemoryStore.makeStorage())
        yield* store.set(Counter.key, envelope({ state: "not a number", lastSuccessAt: 1234 }))
        const meta = Option.getOrThrow(yield* Effect.provideService(Counter.inspect, Store.Store, store))
        expect(meta).toMatchObject({ epoch: 3, seq: 9, lastSuccessAt: Option.some(1234) })
      }))
  })

  describe("schema versions", () => {
    const V1 = FencedState.make({
      name: "ledger",
      schema: Schema.Struct({ count: Schema.Number }),
      initial: { count: 0 }
    })
    const V2 = FencedState.make({
      name: "ledger",
      schema: Schema.Struct({ total: Schema.Number, entries: Schema.Array(Schema.String) }),
      initial: { total: 0, entries: [] },
      version: 2,
      migrations: { 1: (old) => ({ total: (old as { count: number }).count, entries: [] }) }
    })
    const claimWith = <A>(store: Store.Store, definition: FencedState.FencedState<A>) =>
      Effect.provideService(definition.claim(), Store.Store, store)

    it.scoped("a claim migrates older state and writes it back in the new version", () =>
      Effect.gen(function*() {
        const store = yield* client(MemoryStore.makeStorage())
        const v1 = yield* claimWith(store, V1)
        yield* v1.set({ count: 7 })
        const v2 = yield* claimWith(store, V2)
        expect(yield* v2.get).toEqual({ total: 7, entries: [] })
        const stored = Option.getOrThrow(yield* Effect.provideService(V2.inspect, Store.Store, store))
        expect(stored.schemaVersion).toBe(2)
        // old code now finds a newer version and refuses instead of overwriting it
        expect(reasonOf(yield* Effect.exit(claimWith(store, V1)))).toBe("SchemaDecodeFailed")
        expect(reasonOf(yield* Effect.exit(v1.set({ count: 0 })))).toBe("LeaderHandoffFailed")
        expect(yield* stateOf(store, V2)).toEqual(Option.some({ total: 7, entries: [] }))
      }))

    it.scoped("read migrates in memory without writing", () =>
      Effect.gen(function*() {
        const store = yield* client(MemoryStore.makeStorage())
        yield* Effect.flatMap(claimWith(store, V1), (l) => l.set({ count: 3 }))
        const before = yield* store.get(V1.key)
        expect(yield* stateOf(store, V2)).toEqual(Option.some({ total: 3, entries: [] }))
        expect(yield* store.get(V1.key)).toEqual(before)
      }))

    it.scoped("a missing or failing migration is a decode failure that leaves the state alone", () =>
      Effect.gen(function*() {
        const store = yield* client(MemoryStore.makeStorage())
        yield* Effect.flatMap(claimWith(store, V1), (l) => l.set({ count: 1 }))
        const before = yield* store.get(V1.key)
        const NoMigration = FencedState.make({ name: "ledger", schema: Schema.Number, initial: 0, version: 2 })
        const Throwing = FencedState.make({
          name: "ledger",
          schema: Schema.Number,
          initial: 0,
          version: 2,
          migrations: {
            1: () => {
              throw new Error("boom")
            }
          }
        })
        for (const definition of [NoMigration, Throwing]) {
          expect(reasonOf(yield* Effect.exit(claimWith(store, definition)))).toBe("SchemaDecodeFailed")
          expect(yield* store.get(V1.key)).toEqual(before)
        }
      }))

    it("rejects a version that is not a positive integer", () => {
      expect(() => FencedState.make({ name: "x", schema: Schema.Number, initial: 0, version: 0 })).toThrow(/version/)
      expect(() => FencedState.make({ name: "x", schema: Schema.Number, initial: 0, version: 1.5 })).toThrow(/version/)
    })
  })

  describe("writes whose outcome was not learned", () => {
    for (const fault of ["lostRequests", "lostAcks"] as const) {
      const landed = fault === "lostAcks"
      it.scoped(`${fault}: later reads and writes neither lose nor repeat an acknowledged update`, () =>
        Effect.gen(function*() {
          const faults = noFaults()
          const store = yield* faultyClient(MemoryStore.makeStorage(), faults)
          const lease = yield* claimOn(store)
          yield* lease.update((n) => n + 1)
          faults[fault] = 1
          const failed = errorOf(yield* Effect.exit(lease.update((n) => n + 10)))!
          expect(failed.reason).toBe("StatePersistFailed")
          expect(failed.isRetryable).toBe(true)
          // resolved by a read
          expect(yield* lease.get).toBe(landed ? 11 : 1)
          expect(yield* lease.update((n) => n + 100)).toBe(landed ? 111 : 101)
          // resolved by the next write
          faults[fault] = 1
          expect(reasonOf(yield* Effect.exit(lease.update((n) => n + 1000)))).toBe("StatePersistFailed")
          expect(yield* lease.update((n) => n + 1)).toBe(landed ? 1112 : 102)
          expect(yield* stateOf(store, Counter)).toEqual(Option.some(landed ? 1112 : 102))
        }))
    }

    it.scoped("several lost acknowledgements in a row: the lease is still the only writer and carries on", () =>
      Effect.gen(function*() {
        const faults = noFaults()
        const store = yield* faultyClient(MemoryStore.makeStorage(), faults)
        const lease = yield* claimOn(store)
        faults.lostAcks = 3
        for (const delta of [1, 10, 100]) {
          expect(reasonOf(yield* Effect.exit(lease.update((n) => n + delta)))).toBe("StatePersistFailed")
        }
        // all three landed (seq is 3 ahead of what the lease knew): adopted, not a handoff
        expect(yield* lease.update((n) => n + 1000)).toBe(1111)
        expect(yield* lease.isCurrent).toBe(true)
        faults.lostAcks = 2
        yield* Effect.exit(lease.update((n) => n + 1))
        yield* Effect.exit(lease.heartbeat)
        expect(yield* lease.get).toBe(1112)
        expect(Option.getOrThrow(yield* readOn(store, Counter))).toMatchObject({ epoch: 1, seq: 6, state: 1112 })
      }))

    it.scoped("the caller who retries an update after StatePersistFailed applies it again if it had landed: read get first", () =>
      Effect.gen(function*() {
        const faults = noFaults()
        const store = yield* faultyClient(MemoryStore.makeStorage(), faults)
        const lease = yield* claimOn(store)
        faults.lostAcks = 1
        // the documented limit: the lease cannot know that the retry means the same update
        expect(yield* Effect.retry(lease.update((n) => n + 1), { times: 1 })).toBe(2)
        // what to do instead: after the error, `get` tells whether it landed
        faults.lostAcks = 1
        expect(reasonOf(yield* Effect.exit(lease.update((n) => n + 10)))).toBe("StatePersistFailed")
        expect(yield* lease.get).toBe(12)
      }))

    it.scoped("a store that went back under the lease's own token (lost acknowledged writes) fails StateLoadFailed, not a handoff, and is not written over", () =>
      Effect.gen(function*() {
        const store = yield* client(MemoryStore.makeStorage())
        const lease = yield* claimOn(store)
        yield* lease.update((n) => n + 1)
        const older = Option.getOrThrow(yield* store.get(Counter.key))
        yield* lease.update((n) => n + 1)
        const latest = Option.getOrThrow(yield* store.get(Counter.key))
        yield* store.set(Counter.key, older) // restored from a backup, or a replica that missed a write

        for (const operation of [lease.update((n) => n + 1), lease.verify]) {
          const error = errorOf(yield* Effect.exit(operation))!
          expect(error.reason).toBe("StateLoadFailed")
          expect(error.isRetryable).toBe(true)
          expect(error.message).toMatch(/seq 1 under this lease's token, older than its last acknowledged write \(seq 2\)/)
        }
        expect(yield* store.get(Counter.key)).toEqual(Option.some(older))
        expect(yield* lease.isCurrent).toBe(true)

        yield* store.set(Counter.key, latest) // the store caught up
        expect(yield* lease.update((n) => n + 1)).toBe(3)
      }))
  })

  it.scoped("a new state that does not encode is SchemaDecodeFailed (direction encode), writes nothing, and leaves the lease usable", () =>
    Effect.gen(function*() {
      const Ints = FencedState.make({ name: "ints", schema: Schema.Int, initial: 0 })
      const store = yield* client(MemoryStore.makeStorage())
      const lease = yield* Effect.provideService(Ints.claim(), Store.Store, store)
      yield* lease.update((n) => n + 1)
      const before = yield* store.get(Ints.key)
      const error = errorOf(yield* Effect.exit(lease.update((n) => n + 0.5)))!
      expect(error.reason).toBe("SchemaDecodeFailed")
      expect(error.details?.direction).toBe("encode")
      expect(error.message).toMatch(/the new state does not encode with the schema: nothing was written/)
      expect(yield* store.get(Ints.key)).toEqual(before)
      expect(yield* lease.update((n) => n + 1)).toBe(2)
      // stored state that does not decode says so, the other way round
      yield* store.set(Ints.key, StateEnvelope.stringify({ ...Option.getOrThrow(yield* readEnvelope(store, Ints.key)), state: 0.5 }))
      const stored = errorOf(yield* Effect.exit(readOn(store, Ints)))!
      expect([stored.reason, stored.details?.direction]).toEqual(["SchemaDecodeFailed", "decode"])
    }))

  it("rejects, when defined, a key no store can hold", () => {
    const make = (name: string, key?: string) =>
      FencedState.make({ name, schema: Schema.Number, initial: 0, ...(key === undefined ? {} : { key }) })
    expect(() => make("x".repeat(Store.maxKeyBytes))).toThrow(/FencedState "x+": key is 1034 UTF-8 bytes, more than 1024/)
    expect(() => make("ok", "\ud800")).toThrow(/not well-formed/)
    expect(make("x".repeat(Store.maxKeyBytes - "singleton/".length)).key).toHaveLength(Store.maxKeyBytes)
  })

  it.scoped("heartbeat persists lastSuccessAt at the current (test) time, fenced", () =>
    Effect.gen(function*() {
      const storage = MemoryStore.makeStorage()
      const [a, b] = [yield* client(storage), yield* client(storage)]
      yield* TestClock.setTime(5_000)
      const lease = yield* claimOn(a)
      expect(yield* lease.lastSuccessAt).toEqual(Option.none())
      yield* TestClock.setTime(9_000)
      yield* lease.heartbeat
      expect(yield* lease.lastSuccessAt).toEqual(Option.some(9_000))
      const meta = Option.getOrThrow(yield* Effect.provideService(Counter.inspect, Store.Store, b))
      expect(meta).toMatchObject({ lastSuccessAt: Option.some(9_000), updatedAt: 9_000 })
      // a new leader keeps the last heartbeat until it beats itself
      const next = yield* claimOn(b)
      expect(yield* next.lastSuccessAt).toEqual(Option.some(9_000))
    }))

  it.effect("store failures at claim time are retryable StateLoadFailed with the PlatformError as cause", () =>
    Effect.gen(function*() {
      const closed = yield* Effect.scoped(client(MemoryStore.makeStorage()))
      const error = errorOf(yield* Effect.exit(claimOn(closed)))!
      expect(error.reason).toBe("StateLoadFailed")
      expect(error.isRetryable).toBe(true)
      expect((error.cause as { _tag: string })._tag).toBe("SystemError")
    }))
})
