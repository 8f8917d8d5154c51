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
import * as Sharding from "@effect/cluster/Sharding"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Either, Layer, Metric, Option, Schedule, Schema, TestClock } from "effect"
import { count, faulty, gauge, noFaults, on, reasonOf, stateIn } from "./helpers.js"

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
    // Runners whose store writes suffer the returned faults.
    const flaky = () => {
      const faults = noFaults()
      return { faults, backend: (backend: Store.Backend) => faulty(backend, faults) }
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
        const { backend, faults } = flaky()
        const { attempts, singleton } = attemptingCounter(name, { every: "1 second", retry: Schedule.spaced("2 seconds") })
        const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"], backend })
        yield* cluster.advance("2 seconds")
        const healthy = yield* stateIn(cluster.store, singleton.state)
        faults.lostRequests = Infinity
        const outageStart = attempts.length
        yield* cluster.advance("20 seconds")
        const duringOutage = attempts.length - outageStart
        // one attempt per backoff period (2 s), not a crash loop
        expect(duringOutage).toBeGreaterThanOrEqual(9)
        expect(duringOutage).toBeLessThanOrEqual(11)
        expect(yield* count(SingletonMetrics.stateErrorsOf(name, "StatePersistFailed"))).toBe(duringOutage)
        expect(yield* count(SingletonMetrics.executionsOf(name, "failure"))).toBe(duringOutage)
        expect(yield* stateIn(cluster.store, singleton.state)).toEqual(healthy)

        faults.lostRequests = 0
        yield* cluster.advance("5 seconds")
        const stored = Option.getOrThrow(yield* on(cluster.store, singleton.state.read))
        expect(stored.epoch).toBe(1) // the same claim carried on
        expect(stored.state).toBeGreaterThan(Option.getOrThrow(healthy) + 2)
      }))

    it.scoped("the default retry backs off exponentially up to 30 s and resumes after a long outage", () =>
      Effect.gen(function*() {
        const name = "default-retry"
        const { backend, faults } = flaky()
        const { attempts, singleton } = attemptingCounter(name, { every: "1 second" })
        const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"], backend })
        yield* cluster.advance("1 second")
        faults.lostRequests = Infinity
        const from = attempts.length
        yield* cluster.advance("3 minutes")
        const gaps = attempts.slice(from).map((at, i, all) => i === 0 ? 0 : at - all[i - 1]!).slice(1)
        // 0.1 s, 0.2 s, 0.4 s … doubling (±20 % jitter), never more than 30 s (+20 %)
        expect(gaps.length).toBeGreaterThanOrEqual(10)
        expect(gaps.length).toBeLessThanOrEqual(20)
        expect(gaps[0]).toBeLessThanOrEqual(200)
        expect(Math.max(...gaps)).toBeLessThanOrEqual(36_000)
        expect(Math.max(...gaps)).toBeGreaterThanOrEqual(24_000)
        // jittered after the cap: capped delays differ, so runners do not retry in lockstep
        const capped = gaps.filter((gap) => gap >= 24_000)
        expect(capped.length).toBeGreaterThanOrEqual(3)
        expect(new Set(capped).size).toBe(capped.length)
        faults.lostRequests = 0
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

    it.scoped("lost acknowledgements in a row are not a handoff: the sole leader carries on under its claim", () =>
      Effect.gen(function*() {
        const name = "lost-acks"
        const { backend, faults } = flaky()
        const { attempts, singleton } = attemptingCounter(name, { every: "1 second", retry: Schedule.spaced("1 second") })
        const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"], backend })
        yield* cluster.advance("3 seconds")
        faults.lostAcks = 2 // the next update and its heartbeat land, both acknowledgements are lost
        yield* cluster.advance("10 seconds")
        expect(yield* count(SingletonMetrics.executionsOf(name, "superseded"))).toBe(0)
        expect(yield* count(SingletonMetrics.stateOperationsOf(name, "claim"))).toBe(1)
        const stored = Option.getOrThrow(yield* on(cluster.store, singleton.state.read))
        expect(stored.epoch).toBe(1)
        // every attempt landed, the one whose acknowledgement was lost included
        expect(stored.state).toBe(attempts.length)
      }))

    it.scoped("a heartbeat that fails after a successful run counts as a failure and is retried with the backoff", () =>
      Effect.gen(function*() {
        const name = "heartbeat-fails"
        const { backend, faults } = flaky()
        const starts: Array<number> = []
        const singleton = StatefulSingleton.make({
          name,
          schema: Schema.Number,
          initial: 0,
          every: "10 seconds",
          retry: Schedule.spaced("2 seconds"),
          run: (state) =>
            Effect.gen(function*() {
              starts.push(yield* Clock.currentTimeMillis)
              yield* state.update((n) => n + 1)
              if (starts.length === 1) faults.lostRequests = 1 // the heartbeat's write
            })
        })
        const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"], backend })
        yield* cluster.advance("15 seconds")
        expect(starts.map((at) => at - starts[0]!)).toEqual([0, 2000, 12000])
        expect(yield* count(SingletonMetrics.stateErrorsOf(name, "HeartbeatFailed"))).toBe(1)
        expect(yield* count(SingletonMetrics.executionsOf(name, "failure"))).toBe(1)
        expect(yield* count(SingletonMetrics.executionsOf(name, "success"))).toBe(2)
        const stored = Option.getOrThrow(yield* on(cluster.store, singleton.state.read))
        expect(stored.lastSuccessAt).toEqual(Option.some(starts[2]!))
      }))

    it.scoped("a successful claim resets the backoff that its failed attempts grew", () =>
      Effect.gen(function*() {
        const name = "claim-resets-backoff"
        const { backend, faults } = flaky()
        faults.lostRequests = 3 // the first three claims
        const starts: Array<number> = []
        const singleton = StatefulSingleton.make({
          name,
          schema: Schema.Number,
          initial: 0,
          every: "1 minute",
          retry: Schedule.exponential("1 second"),
          run: () =>
            Effect.flatMap(Clock.currentTimeMillis, (now) => {
              starts.push(now)
              return starts.length === 1 ? Effect.fail("boom") : Effect.void
            })
        })
        const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"], backend })
        yield* cluster.advance("20 seconds")
        expect(yield* count(SingletonMetrics.stateOperationsOf(name, "claim"))).toBe(4) // after 1 + 2 + 4 s
        expect(starts.map((at) => at - starts[0]!)).toEqual([0, 1000]) // not 8 s: the backoff started over
      }))

    it.scoped("a run whose new state does not encode is retried with the backoff, not parked", () =>
      Effect.gen(function*() {
        const name = "does-not-encode"
        let runs = 0
        const singleton = StatefulSingleton.make({
          name,
          schema: Schema.Int,
          initial: 0,
          every: "10 seconds",
          retry: Schedule.spaced("1 second"),
          parkedRecheck: "1 hour",
          run: (state) => Effect.asVoid(state.update((n) => ++runs === 1 ? n + 0.5 : n + 1))
        })
        const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"] })
        yield* cluster.advance("3 seconds")
        expect(runs).toBe(2)
        expect(yield* stateIn(cluster.store, singleton.state)).toEqual(Option.some(1))
        expect(yield* count(SingletonMetrics.stateErrorsOf(name, "SchemaDecodeFailed"))).toBe(1)
        expect(yield* count(SingletonMetrics.executionsOf(name, "failure"))).toBe(1)
        expect(yield* count(SingletonMetrics.stateOperationsOf(name, "claim"))).toBe(1)
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

  describe("shard ownership", () => {
    // The cluster interrupts a singleton whose shard moved, but asynchronously. To hold that
    // window open, the singleton sees a Sharding whose ownership the test can take away while
    // the real cluster keeps running it.
    const withOwnership = <E, R>(layer: Layer.Layer<never, E, R>) => {
      const ownership = { owns: true }
      const sharding = Layer.effect(
        Sharding.Sharding,
        Effect.map(Sharding.Sharding, (sharding) =>
          Sharding.Sharding.of({
            ...sharding,
            hasShardId: (shardId) => ownership.owns && sharding.hasShardId(shardId)
          }))
      )
      return { ownership, layer: layer.pipe(Layer.provide(sharding)) }
    }

    it.scoped("no claim is made while this runner does not own the shard: neither after stepping down nor while retrying a claim", () =>
      Effect.gen(function*() {
        const name = "ownership"
        const faults = noFaults()
        const { acks, singleton } = counter(name, { stepDown: "2 seconds", retry: Schedule.spaced("1 second") })
        const { layer, ownership } = withOwnership(singleton)
        const cluster = yield* TestKit.make({ layer, runners: ["a"], backend: (backend) => faulty(backend, faults) })
        const claims = count(SingletonMetrics.stateOperationsOf(name, "claim"))
        yield* cluster.advance("3 seconds")
        expect(yield* claims).toBe(1)

        // The shard is gone and someone else claimed: the leader steps down and stays down.
        ownership.owns = false
        const successor = yield* on(cluster.store, singleton.state.claim({ holder: "successor" }))
        yield* cluster.advance("10 seconds")
        expect(yield* count(SingletonMetrics.executionsOf(name, "superseded"))).toBe(1)
        expect(yield* claims).toBe(1)
        expect(yield* successor.update((n) => n + 100)).toBe(acks.length + 100)

        // Owning it again while the store is down: claims are retried every second...
        faults.lostRequests = Infinity
        ownership.owns = true
        yield* cluster.advance("4 seconds")
        const retried = yield* claims
        expect(retried).toBeGreaterThanOrEqual(3)
        // ...until the shard is lost again: no more attempts, even once the store is back.
        ownership.owns = false
        faults.lostRequests = 0
        yield* cluster.advance("10 seconds")
        expect(yield* claims).toBe(retried)
        expect(Option.getOrThrow(yield* on(cluster.store, singleton.state.inspect)).epoch).toBe(2)

        ownership.owns = true
        yield* cluster.advance("4 seconds")
        expect(Option.getOrThrow(yield* on(cluster.store, singleton.state.inspect)).epoch).toBe(3)
        expect(reasonOf(yield* Effect.exit(successor.update((n) => n + 1)))).toBe("LeaderHandoffFailed")
      }))

    it.scoped("isLeader turns false once the shard has moved, before the old lease learns anything", () =>
      Effect.gen(function*() {
        const name = "moving-leader"
        const contexts: Array<SingletonContext.Service> = []
        const singleton = StatefulSingleton.make({
          name,
          schema: Schema.Number,
          initial: 0,
          run: () =>
            Effect.flatMap(SingletonContext.SingletonContext, (context) =>
              Effect.zipRight(Effect.sync(() => contexts.push(context)), Effect.never))
        })
        const cluster = yield* TestKit.make({ layer: singleton, runners: ["a", "b"] })
        yield* cluster.advance("2 seconds")
        const leader = cluster.owners(name)[0]!
        const first = contexts[0]!
        expect(yield* first.isLeader).toBe(true)
        yield* cluster.stop(leader)
        yield* cluster.advance("5 seconds")
        expect(contexts.map((context) => context.epoch)).toEqual([1, 2])
        expect(yield* first.isLeader).toBe(false)
        expect(yield* contexts[1]!.isLeader).toBe(true)
      }))
  })

  it.scoped("run sees its handler context: name, epoch, fencing token, leadership, runner address and shard", () =>
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
      const stored = Either.getOrThrow(StateEnvelope.parse(Option.getOrThrow(yield* cluster.store.get(singleton.state.key))))
      expect(context).toMatchObject({
        name,
        kind: "singleton",
        epoch: 1,
        token: stored.token,
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
