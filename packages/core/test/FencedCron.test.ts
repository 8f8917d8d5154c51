import {
  FencedCron,
  MemoryStore,
  SingletonContext,
  SingletonHealth,
  SingletonMetrics,
  Store,
  TestKit
} from "@durable-singleton/core"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Cron, DateTime, Duration, Effect, Fiber, Option, Schema, TestClock } from "effect"
import { count, errorOf, faultyClient, noFaults, on, reasonOf } from "./helpers.js"

const everyTenSeconds = Cron.unsafeParse("*/10 * * * * *")
const everyMinute = Cron.unsafeParse("* * * * *")
const iso = (millis: number) => new Date(millis).toISOString()

interface Execution {
  readonly tick: string
  readonly epoch: number
  readonly runner: Option.Option<string>
  readonly started: number
  readonly finished: number
}

// A job that counts its ticks in its state and records each execution.
const countingJob = (name: string, options?: {
  readonly cron?: Cron.Cron
  readonly work?: Effect.Effect<void>
  readonly maxExecutionTime?: Duration.DurationInput
  readonly skipIfOlderThan?: Duration.DurationInput
}) => {
  const executions: Array<Execution> = []
  const job = FencedCron.make({
    name,
    cron: options?.cron ?? everyTenSeconds,
    state: { schema: Schema.Struct({ ticks: Schema.Number }), initial: { ticks: 0 } },
    maxExecutionTime: options?.maxExecutionTime,
    skipIfOlderThan: options?.skipIfOlderThan,
    execute: (state, tick) =>
      Effect.gen(function*() {
        const context = yield* SingletonContext.SingletonContext
        expect(context.kind).toBe("cron")
        expect(Option.map(context.tick, DateTime.formatIso)).toEqual(Option.some(DateTime.formatIso(tick.scheduledAt)))
        const started = yield* Clock.currentTimeMillis
        yield* options?.work ?? Effect.void
        yield* state.update(({ ticks }) => ({ ticks: ticks + 1 }))
        executions.push({
          tick: DateTime.formatIso(tick.scheduledAt),
          epoch: context.epoch,
          runner: context.runnerAddress,
          started,
          finished: yield* Clock.currentTimeMillis
        })
      })
  })
  return { job, executions }
}

// A job every minute whose state is a number.
const minutely = <E>(name: string, execute: FencedCron.Options<number, number, E, never>["execute"]) =>
  FencedCron.make({ name, cron: everyMinute, state: { schema: Schema.Number, initial: 0 }, execute })

const statusOn = <A, R>(store: Store.Store, job: FencedCron.FencedCron<A, R>) => on(store, job.status)

// A store client whose writes to the ledger of the job `name` suffer the returned faults.
const faultyLedger = (name: string) =>
  Effect.gen(function*() {
    const faults = noFaults()
    const store = yield* faultyClient(MemoryStore.makeStorage(), faults, (key) => key === FencedCron.ledgerKeyFor(name))
    return { faults, store }
  })

// Counts the executions of a job running at once.
const concurrency = () => {
  const state = { running: 0, max: 0 }
  const track = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        state.running++
        state.max = Math.max(state.max, state.running)
      }),
      () => effect,
      () => Effect.sync(() => state.running--)
    )
  return { state, track }
}

describe("FencedCron", () => {
  it.scoped("runs each scheduled tick once, across runners and a handoff, with typed state and a heartbeat", () =>
    Effect.gen(function*() {
      const name = "ticks"
      const { executions, job } = countingJob(name)
      const cluster = yield* TestKit.make({ layer: job, runners: ["a", "b"] })
      yield* cluster.advance("65 seconds")
      yield* cluster.stop("a")
      yield* cluster.advance("60 seconds")

      const ticks = executions.map((execution) => execution.tick)
      expect(ticks).toEqual(Array.from({ length: 12 }, (_, i) => iso((i + 1) * 10_000)))
      // each tick started on time and is its own tenure over the state
      expect(executions.every((execution) => execution.started === Date.parse(execution.tick))).toBe(true)
      expect(executions.map((execution) => execution.epoch)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1))
      expect(new Set(executions.map((execution) => Option.getOrThrow(execution.runner)))).toEqual(
        new Set(["a:34431", "b:34431"])
      )

      const stored = Option.getOrThrow(yield* on(cluster.store, job.state.read))
      expect(stored.state).toEqual({ ticks: 12 })
      expect(stored.lastSuccessAt).toEqual(Option.some(120_000))
      const status = yield* statusOn(cluster.store, job)
      expect(status.counts).toEqual({ completed: 12, failed: 0, skippedDuplicate: 0, skippedOverlap: 0, skippedLate: 0 })
      expect(Option.map(status.lastTick, DateTime.formatIso)).toEqual(Option.some(iso(120_000)))
      expect(status.running).toEqual(Option.none())
      expect(yield* count(SingletonMetrics.cronTicksOf(name, "completed"))).toBe(12)
      expect(yield* count(SingletonMetrics.executionsOf(name, "success"))).toBe(12)
      const health = yield* on(cluster.store, SingletonHealth.check(job, { expectedInterval: "10 seconds" }))
      expect(health._tag).toBe("Healthy")
    }))

  it.scoped("a tick the scheduler delivers again (its reply lost with the shard) runs once", () =>
    Effect.gen(function*() {
      const name = "redelivered"
      const { executions, job } = countingJob(name, { cron: everyMinute })
      const cluster = yield* TestKit.make({ layer: job, runners: ["a", "b"] })
      yield* cluster.advance("61 seconds")
      expect(executions.map((execution) => execution.tick)).toEqual([iso(60_000)])
      const ranOn = Option.getOrThrow(executions[0]!.runner).split(":")[0]!

      // The reply is forgotten and the runner that ran it goes away: the next owner of the
      // tick's shard receives it again.
      expect(yield* cluster.redeliver({ entityType: `ClusterCron/${name}`, entityId: iso(60_000) })).toBe(1)
      yield* cluster.stop(ranOn)
      yield* cluster.advance("10 seconds")

      expect(yield* count(SingletonMetrics.cronTicksOf(name, "skipped_duplicate"))).toBe(1)
      expect(executions.map((execution) => execution.tick)).toEqual([iso(60_000)])
      expect((yield* statusOn(cluster.store, job)).counts).toMatchObject({ completed: 1, skippedDuplicate: 1 })
      expect(Option.getOrThrow(yield* on(cluster.store, job.state.read)).state).toEqual({ ticks: 1 })
      // and the schedule goes on
      yield* cluster.advance("60 seconds")
      expect(executions.map((execution) => execution.tick)).toEqual([iso(60_000), iso(120_000)])
    }))

  describe("deliveries through the ledger (trigger)", () => {
    it.scoped("a duplicate of a running tick is skipped, another tick never overlaps it, and both are counted", () =>
      Effect.gen(function*() {
        const name = "overlap"
        const { executions, job } = countingJob(name, { cron: everyMinute, work: Effect.sleep("70 seconds") })
        yield* TestClock.setTime(60_000)
        const first = yield* Effect.fork(job.trigger(60_000))
        yield* TestClock.adjust("1 second")
        expect(yield* job.trigger(60_000)).toBe("skipped_duplicate")
        yield* TestClock.setTime(120_000)
        expect(yield* job.trigger(120_000)).toBe("skipped_overlap")
        const status = yield* job.status
        expect(Option.map(status.running, (running) => [running.tick, running.expiresAt].map(DateTime.formatIso))).toEqual(
          Option.some([iso(60_000), iso(60_000 + 10 * 60_000 + 15_000)]) // + maxExecutionTime + interruptionGrace
        )
        yield* TestClock.setTime(130_000)
        expect(yield* Fiber.join(first)).toBe("completed")
        yield* TestClock.setTime(180_000)
        const second = yield* Effect.fork(job.trigger(180_000))
        yield* TestClock.adjust("70 seconds")
        expect(yield* Fiber.join(second)).toBe("completed")

        expect(executions.map((execution) => execution.tick)).toEqual([iso(60_000), iso(180_000)])
        for (let i = 1; i < executions.length; i++) {
          expect(executions[i]!.started).toBeGreaterThanOrEqual(executions[i - 1]!.finished)
        }
        expect((yield* job.status).counts).toEqual({
          completed: 2,
          failed: 0,
          skippedDuplicate: 1,
          skippedOverlap: 1,
          skippedLate: 0
        })
        expect(yield* count(SingletonMetrics.cronTicksOf(name, "skipped_overlap"))).toBe(1)
        expect(yield* count(SingletonMetrics.cronTicksOf(name, "skipped_duplicate"))).toBe(1)
        // a tick never runs twice, even delivered long after
        expect(yield* job.trigger(60_000)).toBe("skipped_duplicate")
      }).pipe(Effect.provide(MemoryStore.layer)))

    it.scoped("concurrent deliveries of one tick: exactly one runs", () =>
      Effect.gen(function*() {
        const { executions, job } = countingJob("concurrent", { cron: everyMinute, work: Effect.sleep("1 second") })
        yield* TestClock.setTime(60_000)
        const outcomes = yield* Effect.fork(Effect.all(Array.from({ length: 5 }, () => job.trigger(60_000)), {
          concurrency: "unbounded"
        }))
        yield* TestClock.adjust("2 seconds")
        const results = yield* Fiber.join(outcomes)
        expect(results.filter((outcome) => outcome === "completed")).toHaveLength(1)
        expect(results.filter((outcome) => outcome === "skipped_duplicate")).toHaveLength(4)
        expect(executions).toHaveLength(1)
      }).pipe(Effect.provide(MemoryStore.layer)))

    it.scoped("an execution exceeding maxExecutionTime is interrupted and counted failed; the job is free again", () =>
      Effect.gen(function*() {
        const name = "too-slow"
        const { executions, job } = countingJob(name, {
          cron: everyMinute,
          work: Effect.sleep("10 minutes"),
          maxExecutionTime: "20 seconds"
        })
        yield* TestClock.setTime(60_000)
        const slow = yield* Effect.fork(job.trigger(60_000))
        yield* TestClock.adjust("20 seconds")
        expect(yield* Fiber.join(slow)).toBe("failed")
        expect(executions).toEqual([])
        const status = yield* job.status
        expect(status.running).toEqual(Option.none())
        expect(status.counts).toMatchObject({ completed: 0, failed: 1 })
        expect(yield* count(SingletonMetrics.executionsOf(name, "failure"))).toBe(1)
        expect(Option.getOrThrow(yield* job.state.read).lastSuccessAt).toEqual(Option.none())
      }).pipe(Effect.provide(MemoryStore.layer)))

    it.scoped("late ticks are skipped and counted: by default once the next slot has come", () =>
      Effect.gen(function*() {
        const name = "late"
        const { executions, job } = countingJob(name, { cron: everyMinute })
        yield* TestClock.setTime(60_000 + 59_999)
        expect(yield* job.trigger(60_000)).toBe("completed")
        yield* TestClock.setTime(180_000)
        expect(yield* job.trigger(120_000)).toBe("skipped_late")
        expect(yield* job.trigger(120_000)).toBe("skipped_duplicate") // redelivered: already consumed
        expect(executions.map((execution) => execution.tick)).toEqual([iso(60_000)])
        expect((yield* job.status).counts).toMatchObject({ completed: 1, skippedLate: 1, skippedDuplicate: 1 })
        expect(yield* count(SingletonMetrics.cronTicksOf(name, "skipped_late"))).toBe(1)

        const strict = countingJob("late-strict", { cron: everyMinute, skipIfOlderThan: "5 seconds" })
        yield* TestClock.setTime(240_000 + 5_000)
        expect(yield* strict.job.trigger(240_000)).toBe("completed")
        yield* TestClock.setTime(300_000 + 5_001)
        expect(yield* strict.job.trigger(300_000)).toBe("skipped_late")
      }).pipe(Effect.provide(MemoryStore.layer)))

    it.scoped("a failing execute is counted failed and not retried; its fenced writes stay, the heartbeat does not move", () =>
      Effect.gen(function*() {
        const name = "failing-tick"
        let calls = 0
        const job = minutely(name, (state) =>
          Effect.gen(function*() {
            calls++
            yield* state.update((n) => n + 1)
            return yield* Effect.fail("downstream unavailable")
          }))
        yield* TestClock.setTime(60_000)
        expect(yield* job.trigger(60_000)).toBe("failed")
        expect(calls).toBe(1)
        const stored = Option.getOrThrow(yield* job.state.read)
        expect(stored.state).toBe(1)
        expect(stored.lastSuccessAt).toEqual(Option.none())
        expect((yield* job.status).counts).toMatchObject({ completed: 0, failed: 1 })
        expect(yield* count(SingletonMetrics.cronTicksOf(name, "failed"))).toBe(1)
      }).pipe(Effect.provide(MemoryStore.layer)))

    it.scoped("a tick whose state is claimed by someone else mid-execution stops and never writes again", () =>
      Effect.gen(function*() {
        const name = "superseded-tick"
        let wrote = 0
        const job = minutely(name, (state) =>
          Effect.gen(function*() {
            yield* Effect.sleep("10 seconds")
            yield* state.update((n) => n + 1)
            wrote++
          }))
        yield* TestClock.setTime(60_000)
        const tick = yield* Effect.fork(job.trigger(60_000))
        yield* TestClock.adjust("1 second")
        const other = yield* job.state.claim({ holder: "operator" })
        yield* other.set(100)
        yield* TestClock.adjust("10 seconds")
        expect(yield* Fiber.join(tick)).toBe("failed")
        expect(wrote).toBe(0)
        expect(Option.getOrThrow(yield* job.state.read).state).toBe(100)
        expect(yield* count(SingletonMetrics.executionsOf(name, "superseded"))).toBe(1)
        expect(yield* count(SingletonMetrics.stateErrorsOf(name, "LeaderHandoffFailed"))).toBe(1)
      }).pipe(Effect.provide(MemoryStore.layer)))

    it.scoped("an undecodable ledger is reported, left untouched, and no tick runs", () =>
      Effect.gen(function*() {
        const name = "corrupt-ledger"
        const { executions, job } = countingJob(name, { cron: everyMinute })
        const store = yield* Store.Store
        yield* store.set(job.ledgerKey, "{not json")
        yield* TestClock.setTime(60_000)
        expect(yield* job.trigger(60_000)).toBe("failed")
        expect(executions).toEqual([])
        expect(yield* store.get(job.ledgerKey)).toEqual(Option.some("{not json"))
        expect(reasonOf(yield* Effect.exit(job.status))).toBe("SchemaDecodeFailed")
        expect(yield* count(SingletonMetrics.stateErrorsOf(name, "SchemaDecodeFailed"))).toBe(1)
        // not a tick outcome: the ledger, which counts those, could not record it
        expect(yield* count(SingletonMetrics.cronTicksOf(name, "failed"))).toBe(0)
      }).pipe(Effect.provide(MemoryStore.layer)))

    it.effect("a store that cannot be reached fails the status with a retryable error", () =>
      Effect.gen(function*() {
        const { job } = countingJob("unreachable", { cron: everyMinute })
        const closed = yield* Effect.scoped(MemoryStore.make())
        const error = errorOf(yield* Effect.exit(on(closed, job.status)))
        expect(error?.reason).toBe("StateLoadFailed")
        expect(error?.isRetryable).toBe(true)
        yield* TestClock.setTime(60_000)
        const delivery = yield* Effect.fork(on(closed, job.trigger(60_000)))
        yield* TestClock.adjust("10 seconds") // its begin may have landed: the release is retried a few times
        expect(yield* Fiber.join(delivery)).toBe("failed")
      }))

    it.scoped("a tick not due yet cannot be triggered (it would make the scheduler skip every tick up to it)", () =>
      Effect.gen(function*() {
        const { executions, job } = countingJob("future", { cron: everyMinute })
        yield* TestClock.setTime(60_000)
        const error = yield* Effect.flip(job.trigger(3_600_000))
        expect(error._tag).toBe("TickNotDue")
        expect(error.message).toMatch(/1970-01-01T01:00:00.000Z is not due yet \(now 1970-01-01T00:01:00.000Z\)/)
        expect((yield* job.status).lastTick).toEqual(Option.none())
        yield* TestClock.setTime(120_000)
        expect(yield* job.trigger(120_000)).toBe("completed")
        expect(executions.map((execution) => execution.tick)).toEqual([iso(120_000)])
      }).pipe(Effect.provide(MemoryStore.layer)))
  })

  describe("the job's slot (acquire, execute, release)", () => {
    it.scoped("a begin that landed with its acknowledgement lost gives the slot back: the next tick is not blocked", () =>
      Effect.gen(function*() {
        const name = "begin-lost-ack"
        const { executions, job } = countingJob(name, { cron: everyMinute })
        const { faults, store } = yield* faultyLedger(name)
        yield* TestClock.setTime(60_000)
        faults.lostAcks = 1
        expect(yield* on(store, job.trigger(60_000))).toBe("failed")
        const status = yield* statusOn(store, job)
        expect(status.running).toEqual(Option.none())
        expect(Option.map(status.lastTick, DateTime.formatIso)).toEqual(Option.some(iso(60_000))) // it did begin
        // the ledger and the counter agree: the tick that began is counted as failed in both
        expect(status.counts).toMatchObject({ failed: 1, completed: 0 })
        expect(yield* count(SingletonMetrics.cronTicksOf(name, "failed"))).toBe(1)
        expect(yield* count(SingletonMetrics.stateErrorsOf(name, "StatePersistFailed"))).toBe(1)
        yield* TestClock.setTime(120_000)
        expect(yield* on(store, job.trigger(120_000))).toBe("completed")
        expect(executions.map((execution) => execution.tick)).toEqual([iso(120_000)])
      }))

    it.scoped("a begin that did not land changes nothing: no slot taken, no tick counted", () =>
      Effect.gen(function*() {
        const name = "begin-lost-request"
        const { executions, job } = countingJob(name, { cron: everyMinute })
        const { faults, store } = yield* faultyLedger(name)
        yield* TestClock.setTime(60_000)
        faults.lostRequests = 1
        expect(yield* on(store, job.trigger(60_000))).toBe("failed")
        const status = yield* statusOn(store, job)
        expect(status).toMatchObject({ running: Option.none(), lastTick: Option.none() })
        expect(status.counts.failed).toBe(0)
        expect(yield* count(SingletonMetrics.cronTicksOf(name, "failed"))).toBe(0)
        // the tick never began, so a redelivery may run it
        expect(yield* on(store, job.trigger(60_000))).toBe("completed")
        expect(executions.map((execution) => execution.tick)).toEqual([iso(60_000)])
      }))

    it.scoped("a finish whose acknowledgement is lost is retried and counted once", () =>
      Effect.gen(function*() {
        const name = "finish-lost-ack"
        const { faults, store } = yield* faultyLedger(name)
        const { job } = countingJob(name, {
          cron: everyMinute,
          work: Effect.sync(() => {
            faults.lostAcks = 2 // the finish, and its first retry
          })
        })
        yield* TestClock.setTime(60_000)
        const done = yield* Effect.fork(on(store, job.trigger(60_000)))
        yield* TestClock.adjust("10 seconds")
        expect(yield* Fiber.join(done)).toBe("completed")
        const status = yield* statusOn(store, job)
        expect(status.running).toEqual(Option.none())
        expect(status.counts).toMatchObject({ completed: 1, failed: 0 })
        expect(yield* count(SingletonMetrics.cronTicksOf(name, "completed"))).toBe(1)
        expect(yield* count(SingletonMetrics.stateErrorsOf(name, "StatePersistFailed"))).toBe(2)
      }))

    it.scoped("a slot whose execution never recorded its end is free at deadline + grace, and that execution counts as failed", () =>
      Effect.gen(function*() {
        const name = "finish-never-ran"
        const ticks: Array<string> = []
        const { faults, store } = yield* faultyLedger(name)
        const job = FencedCron.make({
          name,
          cron: everyMinute,
          maxExecutionTime: "3 minutes",
          interruptionGrace: "30 seconds",
          execute: (_, tick) =>
            Effect.sync(() => {
              ticks.push(DateTime.formatIso(tick.scheduledAt))
              if (ticks.length === 1) faults.lostRequests = Infinity // the store goes away mid-tick
            })
        })
        yield* TestClock.setTime(60_000)
        const first = yield* Effect.fork(on(store, job.trigger(60_000)))
        yield* TestClock.adjust("10 seconds") // the release gives up after a few retries
        expect(yield* Fiber.join(first)).toBe("completed")
        expect(yield* count(SingletonMetrics.cronTicksOf(name, "completed"))).toBe(0) // not recorded
        faults.lostRequests = 0
        const status = yield* statusOn(store, job)
        expect(Option.map(status.running, (running) => DateTime.formatIso(running.expiresAt))).toEqual(
          Option.some(iso(60_000 + 180_000 + 30_000))
        )
        for (const tick of [120_000, 180_000, 240_000]) {
          yield* TestClock.setTime(tick)
          expect(yield* on(store, job.trigger(tick))).toBe("skipped_overlap")
        }
        yield* TestClock.setTime(300_000) // past 270 s
        expect(yield* on(store, job.trigger(300_000))).toBe("completed")
        expect(ticks).toEqual([iso(60_000), iso(300_000)])
        expect((yield* statusOn(store, job)).counts).toEqual({
          completed: 1,
          failed: 1,
          skippedDuplicate: 0,
          skippedOverlap: 3,
          skippedLate: 0
        })
        expect(yield* count(SingletonMetrics.cronTicksOf(name, "failed"))).toBe(1)
      }))

    it.scoped("an execution that outlived its slot does not free the slot of the one that took it over", () =>
      Effect.gen(function*() {
        const name = "outlived"
        const { state: overlap, track } = concurrency()
        const job = FencedCron.make({
          name,
          cron: everyTenSeconds,
          maxExecutionTime: "20 seconds",
          interruptionGrace: "5 seconds",
          execute: (_, tick) =>
            track(
              DateTime.toEpochMillis(tick.scheduledAt) === 10_000
                ? Effect.uninterruptible(Effect.sleep("40 seconds")) // frozen: cannot be interrupted
                : Effect.sleep("15 seconds")
            )
        })
        yield* TestClock.setTime(10_000)
        const frozen = yield* Effect.fork(job.trigger(10_000)) // slot until 10 + 20 + 5 = 35 s
        yield* TestClock.setTime(40_000)
        const second = yield* Effect.fork(job.trigger(40_000)) // takes the expired slot, runs until 55 s
        yield* TestClock.setTime(50_000)
        expect(yield* Fiber.join(frozen)).toBe("failed") // timed out at 30 s, stopped at 50 s
        expect(yield* job.trigger(50_000)).toBe("skipped_overlap") // the second still holds the slot
        yield* TestClock.setTime(55_000)
        expect(yield* Fiber.join(second)).toBe("completed")
        expect((yield* job.status).counts).toMatchObject({ completed: 1, failed: 1, skippedOverlap: 1 })
        expect(overlap.max).toBe(2) // the price of an execution that cannot be interrupted (documented)
      }).pipe(Effect.provide(MemoryStore.layer)))

    it.scoped("one deadline from the begin covers claiming the state and executing: a slow claim leaves less time", () =>
      Effect.gen(function*() {
        const name = "slow-claim"
        const { state: overlap, track } = concurrency()
        let calls = 0
        const job = FencedCron.make({
          name,
          cron: everyMinute,
          maxExecutionTime: "20 seconds",
          execute: () => track(++calls === 1 ? Effect.sleep("1 hour") : Effect.void)
        })
        const faults = noFaults()
        const store = yield* faultyClient(MemoryStore.makeStorage(), faults, (key) => key === job.state.key)
        faults.delayMillis = 5_000
        yield* TestClock.setTime(60_000)
        const first = yield* Effect.fork(on(store, job.trigger(60_000)))
        yield* TestClock.adjust("20 seconds") // claimed at 65 s, interrupted at 80 s
        expect(yield* Fiber.join(first)).toBe("failed")
        faults.delayMillis = 0
        yield* TestClock.adjust("1 second")
        expect(yield* on(store, job.trigger(81_000))).toBe("completed")
        expect(overlap.max).toBe(1)
        expect((yield* statusOn(store, job)).counts).toMatchObject({ completed: 1, failed: 1 })
      }))

    it.scoped("an interrupted execution keeps the slot while it stops, up to the grace", () =>
      Effect.gen(function*() {
        const name = "slow-to-stop"
        const { state: overlap, track } = concurrency()
        let calls = 0
        const job = FencedCron.make({
          name,
          cron: everyMinute,
          maxExecutionTime: "20 seconds",
          interruptionGrace: "15 seconds",
          execute: () =>
            track(
              ++calls === 1
                ? Effect.zipRight(Effect.addFinalizer(() => Effect.sleep("10 seconds")), Effect.never)
                : Effect.void
            )
        })
        yield* TestClock.setTime(60_000)
        const first = yield* Effect.fork(job.trigger(60_000)) // interrupted at 80 s, stopped at 90 s
        yield* TestClock.setTime(85_000)
        expect(yield* job.trigger(85_000)).toBe("skipped_overlap")
        yield* TestClock.setTime(90_000)
        expect(yield* Fiber.join(first)).toBe("failed")
        expect(yield* job.trigger(90_000)).toBe("completed") // released at once, not at 95 s
        expect(overlap.max).toBe(1)
      }).pipe(Effect.provide(MemoryStore.layer)))

    it.scoped("an execution that swallows the rejection of its writes is interrupted anyway when another claim supersedes it", () =>
      Effect.gen(function*() {
        const name = "swallowing-tick"
        let attempts = 0
        const job = minutely(name, (state) =>
          Effect.gen(function*() {
            while (true) {
              attempts++
              yield* Effect.ignore(state.update((n) => n + 1))
              yield* Effect.sleep("1 second")
            }
          }))
        yield* TestClock.setTime(60_000)
        const tick = yield* Effect.fork(job.trigger(60_000))
        yield* TestClock.adjust("3 seconds")
        yield* job.state.claim({ holder: "operator" })
        yield* TestClock.adjust("2 seconds")
        expect(yield* Fiber.join(tick)).toBe("failed")
        const stopped = attempts
        yield* TestClock.adjust("1 minute")
        expect(attempts).toBe(stopped)
        expect(yield* count(SingletonMetrics.executionsOf(name, "superseded"))).toBe(1)
        expect((yield* job.status).running).toEqual(Option.none())
      }).pipe(Effect.provide(MemoryStore.layer)))

    it.scoped("an execution cut short by its runner stopping is recorded as failed and frees the slot", () =>
      Effect.gen(function*() {
        const name = "runner-stops"
        const { job } = countingJob(name, { work: Effect.never })
        const cluster = yield* TestKit.make({ layer: job, runners: ["a"] })
        yield* cluster.advance("15 seconds")
        expect(Option.isSome((yield* statusOn(cluster.store, job)).running)).toBe(true)
        yield* cluster.stop("a")
        const status = yield* statusOn(cluster.store, job)
        expect(status.running).toEqual(Option.none())
        expect(status.counts).toMatchObject({ completed: 0, failed: 1 })
      }))
  })

  it("keys and defaults are documented values; a name too long for a key is rejected when defined", () => {
    const { job } = countingJob("keys")
    expect(job.ledgerKey).toBe("cron/keys/ledger")
    expect(job.state.key).toBe("cron/keys/state")
    expect(Duration.toMillis(FencedCron.defaultMaxExecutionTime)).toBe(600_000)
    expect(Duration.toMillis(FencedCron.defaultInterruptionGrace)).toBe(15_000)
    const longest = "x".repeat(Store.maxKeyBytes - "cron//ledger".length)
    expect(countingJob(longest).job.ledgerKey).toHaveLength(Store.maxKeyBytes)
    expect(() => countingJob(`${longest}x`)).toThrow(/FencedCron "x+": key is 1025 UTF-8 bytes/)
  })

  it("an infinite, zero or negative maxExecutionTime, and an infinite or negative grace, are rejected when defined", () => {
    const define = (options: Partial<FencedCron.Options<never, never, null, null>>) =>
      FencedCron.make({ name: "limits", cron: everyMinute, execute: () => Effect.void, ...options })
    expect(() => define({ maxExecutionTime: Duration.infinity })).toThrow(/maxExecutionTime must be a finite duration above zero/)
    expect(() => define({ maxExecutionTime: 0 })).toThrow(/maxExecutionTime must be a finite duration above zero/)
    expect(() => define({ maxExecutionTime: -5 })).toThrow(/maxExecutionTime/)
    expect(() => define({ interruptionGrace: Duration.infinity })).toThrow(/interruptionGrace must be a finite duration, got/)
    expect(() => define({ interruptionGrace: -1 })).toThrow(/interruptionGrace/)
    expect(define({ interruptionGrace: 0 }).ledgerKey).toBe("cron/limits/ledger")
  })
})
