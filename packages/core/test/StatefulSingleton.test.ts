import {
  FencedState,
  MemoryStore,
  SingletonContext,
  SingletonHealth,
  SingletonMetrics,
  StatefulSingleton,
  StateEnvelope,
  Store,
  TestKit
} from "@durable-singleton/core"
import * as EntityId from "@effect/cluster/EntityId"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Metric, Option, Schedule, Schema, TestClock } from "effect"
import { count, gauge, on, reasonOf, stateIn } from "./helpers.js"

interface Ack {
  readonly value: number
  readonly epoch: number
  readonly runner: string
  readonly at: number
}

// A counter singleton that records every increment it attempts and every one acknowledged, with
// who made it. An uninterruptible write models a paused process, which cannot be interrupted.
const counter = (
  name: string,
  options?: Partial<StatefulSingleton.Options<number, number, never, never>>,
  write: { readonly uninterruptible?: boolean } = {}
) => {
  const attempts: Array<string> = []
  const acks: Array<Ack> = []
  const singleton = StatefulSingleton.make({
    name,
    schema: Schema.Number,
    initial: 0,
    every: "1 second",
    run: (state) =>
      Effect.gen(function*() {
        const context = yield* SingletonContext.SingletonContext
        const runner = Option.getOrThrow(context.runnerAddress)
        attempts.push(runner)
        const update = state.update((n) => n + 1)
        const value = yield* (write.uninterruptible ? Effect.uninterruptible(update) : update)
        acks.push({ value, epoch: context.epoch, runner, at: yield* Clock.currentTimeMillis })
      }),
    ...options
  })
  return { singleton, attempts, acks }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

describe("StatefulSingleton", () => {
  it.scoped("the successor resumes from the last acknowledged write, under a higher epoch", () =>
    Effect.gen(function*() {
      const { acks, singleton } = counter("survives-handoff")
      const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"] })
      yield* cluster.advance("5 seconds")
      yield* cluster.start("b")
      yield* cluster.stop("a")
      yield* cluster.advance("5 seconds")
      expect(cluster.owners(singleton.name)).toEqual(["b"])

      const first = acks.filter((ack) => ack.runner === TestKit.addressOf("a"))
      const second = acks.filter((ack) => ack.runner === TestKit.addressOf("b"))
      expect(first.length).toBeGreaterThanOrEqual(5)
      expect(second.length).toBeGreaterThanOrEqual(3)
      expect(first.every((ack) => ack.epoch === 1)).toBe(true)
      expect(second.every((ack) => ack.epoch === 2)).toBe(true)
      // no acknowledged increment lost, none applied twice
      expect(acks.map((ack) => ack.value)).toEqual(range(1, acks.length))
      expect(yield* stateIn(cluster.store, singleton.state)).toEqual(Option.some(acks.length))
      const stored = Option.getOrThrow(yield* on(cluster.store, singleton.state.inspect))
      expect(stored.holder).toEqual(Option.some(second[0]!.runner))
    }))

  it.scoped("a superseded leader's write is rejected, it stops, and claims again after stepDown while it owns the shard", () =>
    Effect.gen(function*() {
      const name = "superseded-leader"
      const { acks, singleton } = counter(name, { stepDown: "10 seconds" })
      const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"] })
      yield* cluster.advance("3 seconds")
      expect(acks.length).toBeGreaterThanOrEqual(3)

      // Someone else claims the state (another process that believes it leads).
      const intruder = yield* on(cluster.store, singleton.state.claim({ holder: "intruder" }))
      expect(intruder.epoch).toBe(2)
      const beforeRejection = acks.length
      yield* cluster.advance("1 second")
      expect(acks.length).toBe(beforeRejection) // its write was rejected, not acknowledged
      expect(yield* count(SingletonMetrics.executionsOf(name, "superseded"))).toBe(1)
      expect(yield* count(SingletonMetrics.stateErrorsOf(name, "LeaderHandoffFailed"))).toBe(1)
      yield* intruder.update((n) => n + 100)
      const afterIntruder = acks.length + 100

      // It stays down (no write at all) until stepDown has passed.
      yield* cluster.advance("8 seconds")
      expect(acks.length).toBe(beforeRejection)
      expect(yield* stateIn(cluster.store, singleton.state)).toEqual(Option.some(afterIntruder))

      // Then, still owning the shard, it claims again and resumes from the intruder's writes.
      yield* cluster.advance("3 seconds")
      const resumed = acks.slice(beforeRejection)
      expect(resumed.length).toBeGreaterThanOrEqual(1)
      expect(resumed[0]).toMatchObject({ epoch: 3, value: afterIntruder + 1 })
      expect(reasonOf(yield* Effect.exit(intruder.update((n) => n + 1)))).toBe("LeaderHandoffFailed")
    }))

  it.scoped("a superseded run that swallows the rejection is interrupted anyway", () =>
    Effect.gen(function*() {
      const name = "swallowing-run"
      const attempts: Array<number> = []
      let finalized = 0
      const singleton = StatefulSingleton.make({
        name,
        schema: Schema.Number,
        initial: 0,
        stepDown: "1 hour",
        run: (state) =>
          Effect.gen(function*() {
            yield* Effect.addFinalizer(() => Effect.sync(() => finalized++))
            while (true) {
              attempts.push(yield* Clock.currentTimeMillis)
              yield* Effect.ignore(state.update((n) => n + 1))
              yield* Effect.sleep("1 second")
            }
          })
      })
      const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"] })
      yield* cluster.advance("3 seconds")
      yield* on(cluster.store, singleton.state.claim({ holder: "intruder" }))
      yield* cluster.advance("2 seconds")
      const stopped = attempts.length
      yield* cluster.advance("1 minute")
      expect(attempts.length).toBe(stopped)
      expect(finalized).toBe(1)
      expect(yield* count(SingletonMetrics.executionsOf(name, "superseded"))).toBe(1)
    }))

  it.scoped("a frozen leader's late write reaches the store after the takeover and is rejected; it stops", () =>
    Effect.gen(function*() {
      const name = "frozen-leader"
      const { acks, attempts, singleton } = counter(name, {}, { uninterruptible: true })
      const cluster = yield* TestKit.make({ layer: singleton, runners: ["a", "b"] })
      yield* cluster.advance("3 seconds")
      const leader = cluster.owners(name)[0]!
      const other = leader === "a" ? "b" : "a"

      yield* cluster.partition(leader)
      yield* cluster.advance("10 seconds")
      expect(cluster.owners(name)).toEqual([other])
      // The frozen leader tried a write that is still held back; the new leader wrote meanwhile.
      expect(attempts.filter((runner) => runner === TestKit.addressOf(leader)).length)
        .toBe(acks.filter((ack) => ack.runner === TestKit.addressOf(leader)).length + 1)
      const newLeaderAcks = acks.filter((ack) => ack.runner === TestKit.addressOf(other))
      expect(newLeaderAcks.length).toBeGreaterThanOrEqual(3)

      const before = yield* cluster.store.get(singleton.state.key)
      yield* cluster.heal(leader)
      // Delivered now, and rejected by the fence: the stored state did not change.
      expect(yield* cluster.store.get(singleton.state.key)).toEqual(before)
      expect(yield* count(SingletonMetrics.stateErrorsOf(name, "LeaderHandoffFailed"))).toBe(1)

      // Its cluster had stopped it. Once healed it may lead again (the shard can move back), but
      // only under a new claim.
      const acked = acks.length
      const newLeaderEpoch = Math.max(...newLeaderAcks.map((ack) => ack.epoch))
      yield* cluster.advance("10 seconds")
      const later = acks.slice(acked).filter((ack) => ack.runner === TestKit.addressOf(leader))
      expect(later.every((ack) => ack.epoch > newLeaderEpoch)).toBe(true)
      const values = acks.map((ack) => ack.value)
      expect(values).toEqual(range(1, values.length))
      expect(yield* stateIn(cluster.store, singleton.state)).toEqual(Option.some(values.length))
    }))

  describe("failures never crash-loop", () => {
    // A backend whose writes fail while `failing` is set.
    const flaky = () => {
      const control = { failing: false }
      const backend = (backend: Store.Backend): Store.Backend => ({
        ...backend,
        modifyOrInit: (key, f) =>
          control.failing
            ? Effect.fail(Store.systemError("modifyOrInit", new Error("connection refused")))
            : backend.modifyOrInit(key, f)
      })
      return { control, backend }
    }

    // A counter that records when each execution starts, whether its update succeeds or not.
    const attemptingCounter = (name: string, options: Partial<StatefulSingleton.Options<number, number, never, never>>) => {
      const attempts: Array<number> = []
      const singleton = StatefulSingleton.make({
        name,
        schema: Schema.Number,
        initial: 0,
        run: (state) =>
          Effect.zipRight(
            Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => attempts.push(now))),
            state.update((n) => n + 1)
          ),
        ...options
      })
      return { attempts, singleton }
    }

    it.scoped("store errors are retried with the backoff on the same claim, and the singleton recovers", () =>
      Effect.gen(function*() {
        const name = "store-outage"
        const { control, backend } = flaky()
        const { attempts, singleton } = attemptingCounter(name, { every: "1 second", retry: Schedule.spaced("2 seconds") })
        const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"], backend })
        yield* cluster.advance("2 seconds")
        const healthy = yield* stateIn(cluster.store, singleton.state)
        control.failing = true
        const outageStart = attempts.length
        yield* cluster.advance("20 seconds")
        const duringOutage = attempts.length - outageStart
        // one attempt per backoff period (2 s), not a crash loop
        expect(duringOutage).toBeGreaterThanOrEqual(9)
        expect(duringOutage).toBeLessThanOrEqual(11)
        expect(yield* count(SingletonMetrics.stateErrorsOf(name, "StatePersistFailed"))).toBe(duringOutage)
        expect(yield* count(SingletonMetrics.executionsOf(name, "failure"))).toBe(duringOutage)
        expect(yield* stateIn(cluster.store, singleton.state)).toEqual(healthy)

        control.failing = false
        yield* cluster.advance("5 seconds")
        const stored = Option.getOrThrow(yield* on(cluster.store, singleton.state.read))
        expect(stored.epoch).toBe(1) // the same claim carried on
        expect(stored.state).toBeGreaterThan(Option.getOrThrow(healthy) + 2)
      }))

    it.scoped("the default retry backs off exponentially up to 30 s and resumes after a long outage", () =>
      Effect.gen(function*() {
        const name = "default-retry"
        const { control, backend } = flaky()
        const { attempts, singleton } = attemptingCounter(name, { every: "1 second" })
        const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"], backend })
        yield* cluster.advance("1 second")
        control.failing = true
        const from = attempts.length
        yield* cluster.advance("3 minutes")
        const gaps = attempts.slice(from).map((at, i, all) => i === 0 ? 0 : at - all[i - 1]!).slice(1)
        // 0.1 s, 0.2 s, 0.4 s … doubling (±20 % jitter), never more than 30 s (+20 %)
        expect(gaps.length).toBeGreaterThanOrEqual(10)
        expect(gaps.length).toBeLessThanOrEqual(20)
        expect(gaps[0]).toBeLessThanOrEqual(200)
        expect(Math.max(...gaps)).toBeLessThanOrEqual(36_000)
        expect(Math.max(...gaps)).toBeGreaterThanOrEqual(24_000)
        control.failing = false
        yield* cluster.advance("40 seconds")
        expect(Option.getOrThrow(yield* stateIn(cluster.store, singleton.state))).toBeGreaterThan(2)
      }))

    it.scoped("a failing or dying run is retried with backoff, reset after a success", () =>
      Effect.gen(function*() {
        const name = "failing-run"
        const starts: Array<number> = []
        const plan: Array<"fail" | "die" | "ok"> = ["fail", "die", "fail", "ok", "fail", "ok"]
        const singleton = StatefulSingleton.make({
          name,
          schema: Schema.Number,
          initial: 0,
          every: "10 seconds",
          retry: Schedule.exponential("1 second"),
          run: () =>
            Effect.gen(function*() {
              starts.push(yield* Clock.currentTimeMillis)
              const step = plan[starts.length - 1] ?? "ok"
              if (step === "fail") return yield* Effect.fail("boom")
              if (step === "die") return yield* Effect.die("defect")
            })
        })
        const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"] })
        yield* cluster.advance("20 seconds")
        const t0 = starts[0]!
        // fail → 1 s → die → 2 s → fail → 4 s → ok → 10 s → fail → 1 s (reset) → ok
        expect(starts.slice(0, 6).map((at) => at - t0)).toEqual([0, 1000, 3000, 7000, 17000, 18000])
        expect(yield* count(SingletonMetrics.executionsOf(name, "failure"))).toBe(4)
        expect(yield* count(SingletonMetrics.executionsOf(name, "success"))).toBe(2)
      }))

    it.scoped("a run that completes without `every` is run again after the backoff, with a heartbeat each time", () =>
      Effect.gen(function*() {
        const { attempts: starts, singleton } = attemptingCounter("completing-run", { retry: Schedule.spaced("5 seconds") })
        const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"] })
        yield* cluster.advance("12 seconds")
        expect(starts.map((at) => at - starts[0]!)).toEqual([0, 5000, 10000])
        const stored = Option.getOrThrow(yield* on(cluster.store, singleton.state.read))
        expect(stored.state).toBe(3)
        expect(stored.lastSuccessAt).toEqual(Option.some(starts[2]!))
      }))
  })

  describe("state that cannot be decoded is never reset", () => {
    const corrupt = "{\"format\":\"durable-singleton/1\",\"schemaVersion\":1,"
    const newerVersion = StateEnvelope.stringify({
      format: StateEnvelope.format,
      schemaVersion: 2,
      epoch: 4,
      token: "t",
      seq: 10,
      updatedAt: 0,
      lastSuccessAt: 500,
      holder: null,
      state: { renamed: 1 }
    })

    for (const [title, stored] of [["corrupt JSON", corrupt], ["a newer schema version", newerVersion]] as const) {
      it.scoped(`${title}: parked with SchemaDecodeFailed, bytes untouched, health Unreadable, resumes once fixed`, () =>
        Effect.gen(function*() {
          const name = `undecodable-${title}`
          const runs: Array<number> = []
          const singleton = StatefulSingleton.make({
            name,
            schema: Schema.Number,
            initial: 0,
            every: "1 second",
            parkedRecheck: "10 seconds",
            run: (state) => Effect.zipRight(Effect.sync(() => runs.push(1)), state.update((n) => n + 1))
          })
          const storage = MemoryStore.makeStorage()
          const seed = yield* MemoryStore.make({ storage })
          yield* seed.set(singleton.state.key, stored)
          const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"], storage })
          yield* cluster.advance("35 seconds")

          expect(runs).toEqual([])
          expect(yield* cluster.store.get(singleton.state.key)).toEqual(Option.some(stored))
          // checked at activation and every 10 s since: no crash loop
          const decodeErrors = yield* count(SingletonMetrics.stateErrorsOf(name, "SchemaDecodeFailed"))
          expect(decodeErrors).toBe(4)
          expect(yield* count(SingletonMetrics.stateOperationsOf(name, "claim"))).toBe(4)
          const health = yield* on(cluster.store, SingletonHealth.check(singleton, { expectedInterval: "1 second" }))
          expect(health._tag).toBe("Unreadable")
          if (health._tag === "Unreadable") expect(health.error.reason).toBe("SchemaDecodeFailed")

          // An operator deletes the bad state: the singleton starts over at the next check.
          yield* cluster.store.remove(singleton.state.key)
          yield* cluster.advance("12 seconds")
          expect(runs.length).toBeGreaterThanOrEqual(2)
          expect(yield* stateIn(cluster.store, singleton.state)).toEqual(Option.some(runs.length))
        }))
    }

    it.scoped("state corrupted while a leader runs: its next write fails SchemaDecodeFailed and it parks", () =>
      Effect.gen(function*() {
        const { acks, singleton } = counter("corrupted-while-running", { parkedRecheck: "1 minute" })
        const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"] })
        yield* cluster.advance("3 seconds")
        const before = acks.length
        yield* cluster.store.set(singleton.state.key, corrupt)
        yield* cluster.advance("30 seconds")
        expect(acks.length).toBe(before)
        expect(yield* cluster.store.get(singleton.state.key)).toEqual(Option.some(corrupt))
        expect(yield* count(SingletonMetrics.stateErrorsOf(singleton.name, "SchemaDecodeFailed"))).toBe(1)
      }))
  })

  describe("metrics", () => {
    it.scoped("executions, durations, operations and the last-success gauge change as documented", () =>
      Effect.gen(function*() {
        const name = "metrics"
        const singleton = StatefulSingleton.make({
          name,
          schema: Schema.Number,
          initial: 0,
          every: "1 second",
          run: (state) => Effect.zipRight(Effect.sleep("250 millis"), state.update((n) => n + 1))
        })
        const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"] })
        yield* cluster.advance("3 seconds")
        const stored = Option.getOrThrow(yield* on(cluster.store, singleton.state.read))
        const executions = stored.state
        expect(executions).toBeGreaterThanOrEqual(2)
        expect(yield* count(SingletonMetrics.executionsOf(name, "success"))).toBe(executions)
        expect(yield* count(SingletonMetrics.executionsOf(name, "failure"))).toBe(0)
        expect(yield* count(SingletonMetrics.stateOperationsOf(name, "claim"))).toBe(1)
        expect(yield* count(SingletonMetrics.stateOperationsOf(name, "update"))).toBe(executions)
        expect(yield* count(SingletonMetrics.stateOperationsOf(name, "heartbeat"))).toBe(executions)
        expect(yield* gauge(SingletonMetrics.lastSuccessOf(name))).toBe(Option.getOrThrow(stored.lastSuccessAt) / 1000)
        const durations = yield* Metric.value(SingletonMetrics.executionDurationOf(name))
        expect(durations.count).toBe(executions)
        expect(durations.min).toBe(0.25)
        expect(durations.max).toBe(0.25)
      }))

    it.scoped("the gauge is seeded from the stored heartbeat when a leader takes over, before any execution", () =>
      Effect.gen(function*() {
        const name = "seeded-gauge"
        const singleton = StatefulSingleton.make({
          name,
          schema: Schema.Number,
          initial: 0,
          run: () => Effect.never
        })
        const storage = MemoryStore.makeStorage()
        const earlier = yield* MemoryStore.make({ storage })
        yield* TestClock.setTime(123_000)
        const lease = yield* on(earlier, singleton.state.claim())
        yield* lease.heartbeat
        yield* TestClock.setTime(500_000)
        const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"], storage })
        yield* cluster.advance("2 seconds")
        expect(yield* count(SingletonMetrics.executionsOf(name, "success"))).toBe(0)
        expect(yield* gauge(SingletonMetrics.lastSuccessOf(name))).toBe(123)
      }))
  })

  it.scoped("run sees its handler context: name, epoch, leadership, runner address and shard", () =>
    Effect.gen(function*() {
      const name = "context"
      const seen: Array<SingletonContext.Service> = []
      const singleton = StatefulSingleton.make({
        name,
        schema: Schema.Number,
        initial: 0,
        run: (state) =>
          Effect.gen(function*() {
            seen.push(yield* SingletonContext.current)
            while (true) {
              yield* Effect.sleep("1 second")
              yield* state.verify
            }
          })
      })
      const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"] })
      yield* cluster.advance("2 seconds")
      expect(seen).toHaveLength(1)
      const context = seen[0]!
      const sharding = Option.getOrThrow(cluster.sharding("a"))
      expect(context).toMatchObject({
        name,
        kind: "singleton",
        epoch: 1,
        runnerAddress: Option.some("a:34431"),
        shardId: Option.some(sharding.getShardId(EntityId.make(name), "default").toString()),
        tick: Option.none()
      })
      expect(yield* context.isLeader).toBe(true)
      yield* on(cluster.store, singleton.state.claim())
      yield* cluster.advance("2 seconds")
      expect(yield* context.isLeader).toBe(false)
    }))

  it.scoped("`every` may be a schedule: when it ends, the leader keeps its claim and stops executing", () =>
    Effect.gen(function*() {
      const singleton = StatefulSingleton.make({
        name: "every-schedule",
        schema: Schema.Number,
        initial: 0,
        every: Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(2))),
        run: (state) => Effect.asVoid(state.update((n) => n + 1))
      })
      const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"] })
      yield* cluster.advance("30 seconds")
      const stored = Option.getOrThrow(yield* on(cluster.store, singleton.state.read))
      expect(stored).toMatchObject({ state: 3, epoch: 1 })
    }))

  it.effect("the definition is readable without a cluster, and its state is a FencedState", () =>
    Effect.gen(function*() {
      const singleton = StatefulSingleton.make({
        name: "plain",
        schema: Schema.Number,
        initial: 5,
        run: () => Effect.void
      })
      expect(singleton.name).toBe("plain")
      expect(singleton.state.key).toBe(FencedState.keyFor("plain"))
      const snapshot = yield* Effect.provide(
        Effect.zipRight(singleton.state.claim(), singleton.state.read),
        MemoryStore.layer
      )
      expect(Option.map(snapshot, (s) => s.state)).toEqual(Option.some(5))
    }))
})
