import {
  FencedState,
  MemoryStore,
  SingletonHealth,
  StatefulSingleton,
  StateEnvelope,
  TestKit
} from "@durable-singleton/core"
import { describe, expect, it } from "@effect/vitest"
import { Clock, DateTime, Duration, Effect, Option, Schema, TestClock } from "effect"
import { errorOf, on } from "./helpers.js"

const Job = FencedState.make({ name: "job", schema: Schema.Number, initial: 0 })
const interval = Duration.seconds(60)

const tagAndAge = (health: SingletonHealth.Health) =>
  health._tag === "Healthy" || health._tag === "Late" || health._tag === "Dead"
    ? [health._tag, Duration.toMillis(health.age)] as const
    : [health._tag] as const

describe("SingletonHealth", () => {
  it.scoped("moves from Healthy to Late just after 1× and to Dead just after 2× the interval, from any client", () =>
    Effect.gen(function*() {
      const storage = MemoryStore.makeStorage()
      const leader = yield* MemoryStore.make({ storage })
      const elsewhere = yield* MemoryStore.make({ storage })
      const check = on(elsewhere, SingletonHealth.check(Job, { expectedInterval: interval }))

      expect(yield* check).toEqual(SingletonHealth.Health.NeverRan())
      const lease = yield* on(leader, Job.claim())
      expect((yield* check)._tag).toBe("NeverRan")

      yield* TestClock.setTime(1_000_000)
      yield* lease.heartbeat
      expect(tagAndAge(yield* check)).toEqual(["Healthy", 0])
      yield* TestClock.adjust("60 seconds")
      expect(tagAndAge(yield* check)).toEqual(["Healthy", 60_000])
      yield* TestClock.adjust("1 millis")
      expect(tagAndAge(yield* check)).toEqual(["Late", 60_001])
      yield* TestClock.adjust("59999 millis")
      expect(tagAndAge(yield* check)).toEqual(["Late", 120_000])
      yield* TestClock.adjust("1 millis")
      expect(tagAndAge(yield* check)).toEqual(["Dead", 120_001])

      const health = yield* check
      if (health._tag !== "Dead") throw new Error("expected Dead")
      expect(DateTime.toEpochMillis(health.lastSuccessAt)).toBe(1_000_000)

      // A new heartbeat, even by another leader after a failover, makes it healthy again.
      const successor = yield* on(elsewhere, Job.claim())
      yield* successor.heartbeat
      expect(tagAndAge(yield* check)).toEqual(["Healthy", 0])
    }))

  it("classify: a heartbeat in the future (clock skew) counts as age zero", () => {
    expect(tagAndAge(SingletonHealth.classify(Option.some(5_000), 1_000, interval))).toEqual(["Healthy", 0])
    expect(SingletonHealth.classify(Option.none(), 1_000, interval)._tag).toBe("NeverRan")
  })

  it.scoped("corrupt or newer-version state is Unreadable, with the heartbeat when the envelope is readable", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      const check = on(store, SingletonHealth.check(Job, { expectedInterval: interval }))

      yield* store.set(Job.key, "{broken")
      const corrupt = yield* check
      expect(corrupt._tag).toBe("Unreadable")
      if (corrupt._tag === "Unreadable") {
        expect(corrupt.error.reason).toBe("SchemaDecodeFailed")
        expect(corrupt.lastSuccessAt).toEqual(Option.none())
      }

      yield* store.set(
        Job.key,
        StateEnvelope.stringify({
          format: StateEnvelope.format,
          schemaVersion: 3,
          epoch: 2,
          token: "t",
          seq: 4,
          updatedAt: 0,
          lastSuccessAt: 42_000,
          holder: null,
          state: "from the future"
        })
      )
      const newer = yield* check
      expect(newer._tag).toBe("Unreadable")
      if (newer._tag === "Unreadable") {
        expect(newer.error.details).toMatchObject({ storedVersion: 3, supportedVersion: 1 })
        expect(Option.map(newer.lastSuccessAt, DateTime.toEpochMillis)).toEqual(Option.some(42_000))
      }
    }))

  it.effect("an unreachable store is a retryable StateLoadFailed in the error channel", () =>
    Effect.gen(function*() {
      const closed = yield* Effect.scoped(MemoryStore.make())
      const error = errorOf(yield* Effect.exit(on(closed, SingletonHealth.check(Job, { expectedInterval: interval }))))
      expect(error?.reason).toBe("StateLoadFailed")
      expect(error?.isRetryable).toBe(true)
    }))

  it.scoped("a running singleton is Healthy; once every runner is gone it turns Late, then Dead", () =>
    Effect.gen(function*() {
      const singleton = StatefulSingleton.make({
        name: "dead-mans-switch",
        schema: Schema.Number,
        initial: 0,
        every: "10 seconds",
        run: (state) => Effect.asVoid(state.update((n) => n + 1))
      })
      const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"] })
      const check = on(cluster.store, SingletonHealth.check(singleton, { expectedInterval: "10 seconds" }))
      yield* cluster.advance("35 seconds")
      expect((yield* check)._tag).toBe("Healthy")
      yield* cluster.stop("a")
      const last = Option.getOrThrow(Option.getOrThrow(yield* TestKit.stateOf(cluster, singleton)).lastSuccessAt)
      const now = yield* Clock.currentTimeMillis
      yield* cluster.advance(Duration.millis(last + 10_001 - now))
      expect((yield* check)._tag).toBe("Late")
      yield* cluster.advance("10 seconds")
      expect((yield* check)._tag).toBe("Dead")
    }))
})
