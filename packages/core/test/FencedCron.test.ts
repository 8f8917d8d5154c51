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
import { count, errorOf, on, reasonOf } from "./helpers.js"

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
        const { executions, job } = countingJob(name, { cron: everyMinute, work: Effect.sleep("30 seconds") })
        yield* TestClock.setTime(60_000)
        const first = yield* Effect.fork(job.trigger(60_000))
        yield* TestClock.adjust("1 second")
        expect(yield* job.trigger(60_000)).toBe("skipped_duplicate")
        expect(yield* job.trigger(120_000)).toBe("skipped_overlap")
        const status = yield* job.status
        expect(Option.map(status.running, (running) => DateTime.formatIso(running.tick))).toEqual(
          Option.some(iso(60_000))
        )
        yield* TestClock.adjust("29 seconds")
        expect(yield* Fiber.join(first)).toBe("completed")
        yield* TestClock.setTime(120_000)
        const second = yield* Effect.fork(job.trigger(120_000))
        yield* TestClock.adjust("30 seconds")
        expect(yield* Fiber.join(second)).toBe("completed")

        expect(executions.map((execution) => execution.tick)).toEqual([iso(60_000), iso(120_000)])
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
        expect(yield* count(SingletonMetrics.cronTicksOf(name, "failed"))).toBe(1)
      }).pipe(Effect.provide(MemoryStore.layer)))

    it.effect("a store that cannot be reached fails the status with a retryable error", () =>
      Effect.gen(function*() {
        const { job } = countingJob("unreachable", { cron: everyMinute })
        const closed = yield* Effect.scoped(MemoryStore.make())
        const error = errorOf(yield* Effect.exit(on(closed, job.status)))
        expect(error?.reason).toBe("StateLoadFailed")
        expect(error?.isRetryable).toBe(true)
        expect(yield* on(closed, job.trigger(60_000))).toBe("failed")
      }))
  })

  it("keys and defaults are documented values", () => {
    const { job } = countingJob("keys")
    expect(job.ledgerKey).toBe("cron/keys/ledger")
    expect(job.state.key).toBe("cron/keys/state")
    expect(Duration.toMillis(FencedCron.defaultMaxExecutionTime)).toBe(600_000)
  })
})
