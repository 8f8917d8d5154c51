/**
 * A cluster cron job whose ticks run **at most once, never overlapping**, with typed state,
 * a persisted heartbeat and counted skips.
 *
 * Built on `@effect/cluster`'s `ClusterCron.make`, which is at-least-once: measured on 0.60.2, a
 * tick ran up to 3 times and 2–3 executions of one job ran concurrently around a handoff (a new
 * shard owner re-reads a tick the old one is still executing; a reply lost with the shard makes
 * the tick run again), and its own `skipIfOlderThan` skips silently. Here every delivery of a
 * tick first goes through the job's **tick ledger** in the store (one document, changed only by
 * an atomic `modifyOrInit`):
 *
 * | outcome (`durable_singleton_cron_ticks_total`) | when |
 * |---|---|
 * | `completed` / `failed` | the tick ran (a failure is logged, not retried: ClusterCron does not retry either); `failed` also counts an execution that was interrupted, or never recorded its end |
 * | `skipped_duplicate` | this tick already began (a redelivery), even if its execution was cut short |
 * | `skipped_overlap` | another tick of this job is still executing |
 * | `skipped_late` | the tick was delivered too late (see `skipIfOlderThan`) |
 *
 * The counts are also kept in the ledger, so {@link FencedCron.status} shows them from any node;
 * the counter counts what each process recorded in the ledger, so across processes they agree.
 * A delivery that cannot reach the ledger at all is not a tick outcome: it is counted in
 * `durable_singleton_state_errors_total` and does not run.
 *
 * An execution is acquire / use / release: it takes the job's **slot** in the ledger (`begin`),
 * runs, and always gives the slot back with its outcome (`finish`, retried a few times with
 * jittered backoff when the store fails; it frees the slot only if this execution still holds
 * it). When the `begin` write fails, its outcome is unknown (it may have landed with its
 * acknowledgement lost), so the slot is released the same way before giving up on the tick.
 *
 * Each tick that runs claims the job's state (its own short tenure: epoch + 1) and hands
 * `execute` a {@link FencedState.Lease}; after a successful execution the heartbeat is persisted
 * (`lastSuccessAt`, fenced), so `SingletonHealth.check` works for cron jobs too. Inside `execute`
 * the {@link SingletonContext.SingletonContext} is provided, with the scheduled time as `tick`.
 *
 * Guarantees and limits:
 * - At most once: a tick whose execution was interrupted (its runner stopped, or it exceeded
 *   `maxExecutionTime`) is not run again when the scheduler delivers it again.
 * - No overlap: the deadline of an execution is fixed when it takes the slot (`maxExecutionTime`
 *   later) and covers claiming the state and `execute` together; at the deadline the execution
 *   is interrupted. The slot stays taken until the execution has stopped and recorded its end,
 *   or at most until the deadline plus `interruptionGrace`, whichever comes first. So a runner
 *   that crashes mid-tick blocks the job until then (`maxExecutionTime` + `interruptionGrace`
 *   after the tick began: 10 min 15 s by default); an execution that takes longer than the grace
 *   to stop (an uninterruptible region, a frozen process) may overlap the next one: its state
 *   writes are rejected by fencing, but side effects outside the store are not.
 * - The next tick is computed from the time the previous one finished (ClusterCron's default):
 *   after downtime there is no burst of missed runs.
 *
 * @example
 * ```ts
 * import { FencedCron } from "@durable-singleton/core"
 * import { Cron, Effect, Schema } from "effect"
 *
 * const Report = FencedCron.make({
 *   name: "nightly-report",
 *   cron: Cron.unsafeParse("0 2 * * *"),
 *   state: { schema: Schema.Struct({ sent: Schema.Number }), initial: { sent: 0 } },
 *   execute: (state, tick) =>
 *     Effect.gen(function*() {
 *       yield* Effect.log(`report for ${tick.scheduledAt}`)
 *       yield* state.update(({ sent }) => ({ sent: sent + 1 }))
 *     })
 * })
 * // Report: Layer<never, never, Sharding | Store>; Report.status reads the ledger from any node
 * ```
 *
 * @since 0.1.0
 */
import * as ClusterCron from "@effect/cluster/ClusterCron"
import * as Entity from "@effect/cluster/Entity"
import * as Sharding from "@effect/cluster/Sharding"
import * as Clock from "effect/Clock"
import * as Cron from "effect/Cron"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as FencedState from "./FencedState.js"
import * as cronLedger from "./internal/cronLedger.js"
import * as execution from "./internal/execution.js"
import * as instrument from "./internal/instrument.js"
import * as SingletonContext from "./SingletonContext.js"
import { SingletonError } from "./SingletonError.js"
import * as SingletonMetrics from "./SingletonMetrics.js"
import * as Store from "./Store.js"

/**
 * The typed state of a cron job (as for a singleton; see `FencedState.make`).
 *
 * @since 0.1.0
 * @category models
 */
export interface StateOptions<A, I> extends Omit<FencedState.Options<A, I>, "name" | "key"> {
  /** Default `cron/<name>/state`. */
  readonly key?: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<A, I, E, R> {
  /** The job's name, unique in the cluster (ClusterCron registers `ClusterCron/<name>`). */
  readonly name: string
  readonly cron: Cron.Cron
  /** One tick. Every write through `state` is fenced. */
  readonly execute: (state: FencedState.Lease<A>, tick: Tick) => Effect.Effect<void, E, R>
  /** Typed state; without it the job's state is `null` (it still carries the heartbeat). */
  readonly state?: StateOptions<A, I> | undefined
  /** The cluster shard group to run in; default `"default"`. */
  readonly shardGroup?: string | undefined
  /**
   * A tick delivered more than this after its scheduled time is skipped (and counted). Default:
   * a tick is late once the job's next scheduled time has come, i.e. the tolerance is one
   * period of the cron expression, whatever it is.
   */
  readonly skipIfOlderThan?: Duration.DurationInput | undefined
  /**
   * An execution (claiming the state and `execute`) still running this long after it took the
   * job's slot is interrupted and counted as failed; default {@link defaultMaxExecutionTime}.
   * Finite and above zero (`make` throws otherwise): it is stored in the ledger as a time.
   */
  readonly maxExecutionTime?: Duration.DurationInput | undefined
  /**
   * How long after its deadline an execution that has not recorded its end keeps the job's slot:
   * the time it has to stop once interrupted, and so how much longer than `maxExecutionTime` a
   * runner that crashed mid-tick blocks the job. Default {@link defaultInterruptionGrace}.
   * Finite (`make` throws otherwise). Recording the end of an execution is given this long too
   * (at least 1 second).
   */
  readonly interruptionGrace?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Tick {
  readonly name: string
  /** The time the tick was scheduled for (its identity). */
  readonly scheduledAt: DateTime.Utc
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Counts {
  readonly completed: number
  readonly failed: number
  readonly skippedDuplicate: number
  readonly skippedOverlap: number
  readonly skippedLate: number
}

/**
 * What the tick ledger records, readable from any node.
 *
 * @since 0.1.0
 * @category models
 */
export interface Status {
  /** The latest tick that began or was skipped as late. */
  readonly lastTick: Option.Option<DateTime.Utc>
  /**
   * The execution holding the job's slot; if it never records its end (its runner crashed), the
   * slot is free again at `expiresAt`.
   */
  readonly running: Option.Option<{
    readonly tick: DateTime.Utc
    readonly startedAt: DateTime.Utc
    readonly expiresAt: DateTime.Utc
  }>
  readonly counts: Counts
}

/**
 * The job: a `Layer` to add to a runner, plus its state definition, its status, and a way to
 * run a tick by hand.
 *
 * @since 0.1.0
 * @category models
 */
export interface FencedCron<A, R> extends Layer.Layer<never, never, Sharding.Sharding | Store.Store | R> {
  readonly name: string
  readonly state: FencedState.FencedState<A>
  /** The store key of the tick ledger (`cron/<name>/ledger`). */
  readonly ledgerKey: string
  /** Reads the tick ledger. A corrupt ledger fails with `SchemaDecodeFailed`. */
  readonly status: Effect.Effect<Status, SingletonError, Store.Store>
  /**
   * Delivers the tick scheduled at `scheduledAt` through the ledger, exactly as the scheduler
   * does: for tests, and for running a tick by hand. The outcome says what happened (errors are
   * logged and counted; `failed` also when the ledger could not be reached). Fails only with
   * {@link TickNotDue} for a time still in the future: running it now would record it as the
   * last tick, and the scheduler's delivery of every tick up to it would be skipped.
   */
  readonly trigger: (
    scheduledAt: DateTime.DateTime | Date | number
  ) => Effect.Effect<SingletonMetrics.CronOutcome, TickNotDue, Store.Store | R>
}

/**
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxExecutionTime: Duration.Duration = Duration.minutes(10)

/**
 * 15 seconds: the time `@effect/cluster` gives a message handler to stop when its runner shuts
 * down (`ShardingConfig.entityTerminationTimeout`, default 15 s) is also a fair bound for an
 * interrupted execution to run its finalizers.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultInterruptionGrace: Duration.Duration = Duration.seconds(15)

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = <E, R, A = null, I = null>(
  options: Options<A, I, E, R>
): FencedCron<A, Exclude<R, Scope.Scope | SingletonContext.SingletonContext>> => {
  const name = options.name
  const state = FencedState.make<A, I>(
    options.state === undefined
      ? { name, schema: Schema.Null as unknown as Schema.Schema<A, I>, initial: null as A, key: stateKeyFor(name) }
      : { name, ...options.state, key: options.state.key ?? stateKeyFor(name) }
  )
  const ledgerKey = ledgerKeyFor(name)
  const ledgerKeyProblem = Store.keyProblem(ledgerKey)
  if (ledgerKeyProblem !== undefined) throw new TypeError(`FencedCron "${name}": ${ledgerKeyProblem}`)
  // Both end up in the ledger as a time: an infinite one would not even be stored.
  const finiteDuration = (option: string, input: Duration.DurationInput, allowZero: boolean) => {
    const duration = Duration.decodeUnknown(input)
    if (
      // Effect reads a negative number of milliseconds as zero: refuse it rather than guess.
      (typeof input === "number" && !(input >= 0)) ||
      Option.isNone(duration) || !Duration.isFinite(duration.value) ||
      (allowZero ? Duration.toMillis(duration.value) < 0 : Duration.toMillis(duration.value) <= 0)
    ) {
      throw new TypeError(
        `FencedCron "${name}": ${option} must be a finite duration${allowZero ? "" : " above zero"}, got ${String(input)}`
      )
    }
    return duration.value
  }
  const maxExecution = finiteDuration("maxExecutionTime", options.maxExecutionTime ?? defaultMaxExecutionTime, false)
  const grace = finiteDuration("interruptionGrace", options.interruptionGrace ?? defaultInterruptionGrace, true)
  const releaseBound = Duration.max(grace, Duration.seconds(1))
  const skipIfOlderThan = Option.map(Option.fromNullable(options.skipIfOlderThan), Duration.decode)

  const isLate = (tick: number, now: number) =>
    Option.match(skipIfOlderThan, {
      onNone: () => now >= Cron.next(options.cron, tick).getTime(),
      onSome: (tolerance) => now - tick > Duration.toMillis(tolerance)
    })

  const ledgerFailed = (cause: unknown, operation: "load" | "persist") =>
    operation === "load"
      ? SingletonError.StateLoadFailed({ singletonName: name, cause })
      : SingletonError.StatePersistFailed({ singletonName: name, cause })

  // Applies `f` to the ledger atomically (`Option.none()`: write nothing); an undecodable ledger
  // is reported and left alone.
  const changeLedger = <B>(f: (ledger: cronLedger.Ledger) => readonly [B, Option.Option<cronLedger.Ledger>]) =>
    Effect.flatMap(Store.Store, (store) =>
      Effect.flatten(Effect.mapError(
        store.modifyOrInit(ledgerKey, (current): Store.Decision<Either.Either<B, SingletonError>> => {
          const ledger = cronLedger.parse(current)
          if (ledger._tag === "Left") {
            return [Either.left(ledgerUndecodable(name, ledger.left)), Option.none()]
          }
          const [result, next] = f(ledger.right)
          return [Either.right(result), Option.map(next, cronLedger.stringify)]
        }),
        (cause) => ledgerFailed(cause, "persist")
      )))

  const status: Effect.Effect<Status, SingletonError, Store.Store> = Effect.flatMap(Store.Store, (store) =>
    Effect.flatMap(Effect.mapError(store.get(ledgerKey), (cause) => ledgerFailed(cause, "load")), (raw) =>
      Either.match(cronLedger.parse(raw), {
        onLeft: (cause) => Effect.fail(ledgerUndecodable(name, cause)),
        onRight: (ledger) =>
          Effect.succeed<Status>({
            lastTick: Option.map(Option.fromNullable(ledger.lastTick), DateTime.unsafeMake),
            running: Option.map(Option.fromNullable(ledger.running), (running) => ({
              tick: DateTime.unsafeMake(running.tick),
              startedAt: DateTime.unsafeMake(running.startedAt),
              expiresAt: DateTime.unsafeMake(running.expiresAt)
            })),
            counts: ledger.counts
          })
      })))

  type Placement = Omit<execution.Placement, "kind" | "tick">

  // Problems of the execution are logged and counted here, and end as "failed" for the ledger.
  const execute = (tick: Tick, placement: Placement, deadline: number) =>
    Effect.gen(function*() {
      const failed = (message: string, cause: unknown) =>
        Effect.as(Effect.logWarning(message, cause), "failed" as const)
      const withinDeadline = <B, E2, R2>(effect: Effect.Effect<B, E2, R2>) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.timeoutFail(effect, {
            duration: Duration.millis(Math.max(0, deadline - now)),
            onTimeout: () => new ExecutionTimedOut({ maxExecutionTime: maxExecution })
          }))
      const holder = placement.runnerAddress
      const claimed = yield* Effect.either(withinDeadline(instrument.counted(
        name,
        "claim",
        state.claim(Option.isSome(holder) ? { holder: holder.value } : undefined)
      )))
      if (claimed._tag === "Left") {
        yield* Metric.increment(SingletonMetrics.executionsOf(name, "failure"))
        return yield* failed("cannot claim the state", claimed.left)
      }
      const lease = claimed.right
      yield* instrument.seedGauge(name, lease)
      const outcome = yield* execution.run(
        lease,
        { ...placement, kind: "cron", tick: Option.some(tick.scheduledAt) },
        (handle) => withinDeadline(options.execute(handle, tick))
      )
      switch (outcome._tag) {
        case "Succeeded":
          return "completed" as const
        case "Failed":
          return yield* failed("tick failed", outcome.cause)
        case "Superseded":
          return yield* failed("another execution claimed the state: stopping", Option.getOrElse(outcome.error, () => lease.epoch))
      }
    })

  // Gives the slot back with the execution's outcome. Retried because a slot left taken blocks
  // the job until it expires; bounded (a few attempts, within the grace) because it runs while
  // the runner may be shutting down, possibly against a store that does not answer.
  const release = (token: string, outcome: "completed" | "failed") =>
    changeLedger((ledger) => cronLedger.finish(ledger, token, outcome)).pipe(
      Effect.tapError((error) => instrument.countError(name, error)),
      Effect.retry({ schedule: releaseRetry, while: (error) => error.isRetryable }),
      Effect.timeoutFail({
        duration: releaseBound,
        onTimeout: () => ledgerFailed(new Error(`no answer from the store within ${Duration.format(releaseBound)}`), "persist")
      }),
      Effect.matchEffect({
        onFailure: (error) =>
          Effect.logError(
            "cannot record the end of the tick in the ledger: the job stays blocked until its slot expires",
            error
          ),
        onSuccess: (result) =>
          result === "recorded" ? Metric.increment(SingletonMetrics.cronTicksOf(name, outcome)) : Effect.void
      })
    )

  const runTick = (scheduledAt: DateTime.Utc, placement: Placement) =>
    Effect.acquireUseRelease(
      Effect.gen(function*() {
        const tick = DateTime.toEpochMillis(scheduledAt)
        const now = yield* Clock.currentTimeMillis
        const token = crypto.randomUUID()
        // One deadline, fixed when the slot is taken, bounds the whole execution; the slot itself
        // lasts the grace longer, so that an interrupted execution can stop before another begins.
        const deadline = now + Duration.toMillis(maxExecution)
        const begun = yield* Effect.either(changeLedger((ledger) => {
          const [begun, next] = cronLedger.begin(ledger, {
            tick,
            now,
            token,
            late: isLate(tick, now),
            expiresAt: deadline + Duration.toMillis(grace)
          })
          return [begun, Option.some(next)]
        }))
        if (begun._tag === "Left") {
          yield* instrument.countError(name, begun.left)
          yield* Effect.logError("cannot record the tick in the ledger: not running it", begun.left)
          // The write may have landed with its acknowledgement lost, taking the slot.
          if (begun.left.isRetryable) yield* release(token, "failed")
          return { _tag: "Failed" } as const
        }
        if (Option.isSome(begun.right.abandoned)) {
          yield* Metric.increment(SingletonMetrics.cronTicksOf(name, "failed"))
          yield* Effect.logWarning(
            `the execution of tick ${new Date(begun.right.abandoned.value).toISOString()} never recorded its end ` +
              "(its runner stopped, or it did not stop within maxExecutionTime and the grace): counted as failed"
          )
        }
        const outcome = begun.right.outcome
        if (outcome !== "run") {
          yield* Metric.increment(SingletonMetrics.cronTicksOf(name, outcome))
          yield* Effect.logInfo(`tick ${outcome.replace("_", " ")}`)
          return { _tag: "Skipped", outcome } as const
        }
        return { _tag: "Began", token, deadline } as const
      }),
      (begun) =>
        begun._tag === "Began"
          ? execute({ name, scheduledAt }, placement, begun.deadline)
          : Effect.succeed(begun._tag === "Skipped" ? begun.outcome : "failed" as const),
      (begun, exit) =>
        begun._tag === "Began"
          ? release(begun.token, Exit.isSuccess(exit) && exit.value === "completed" ? "completed" : "failed")
          : Effect.void
    ).pipe(Effect.annotateLogs({ tick: DateTime.formatIso(scheduledAt) }))

  // What ClusterCron runs: it tells the tick only through the entity id of the message.
  const scheduled = Effect.gen(function*() {
    const address = yield* Effect.serviceOption(Entity.CurrentAddress)
    const tick = Option.flatMap(address, (address) => parseTick(address.entityId))
    if (Option.isNone(address) || Option.isNone(tick)) {
      return yield* Effect.logError("ClusterCron delivered a tick without a scheduled time: skipping it", address)
    }
    const sharding = yield* Sharding.Sharding
    const runner = yield* Effect.serviceOption(Entity.CurrentRunnerAddress)
    const shardId = address.value.shardId
    yield* runTick(tick.value, {
      shardId: Option.some(shardId.toString()),
      runnerAddress: Option.isSome(runner)
        ? Option.some(`${runner.value.host}:${runner.value.port}`)
        : yield* SingletonContext.runnerAddress,
      ownsShard: Effect.sync(() => sharding.hasShardId(shardId))
    })
  }).pipe(Effect.annotateLogs({ module: "FencedCron", cron: name }))

  // The same requirements, spelled differently (TypeScript does not flatten nested Excludes).
  const layer = ClusterCron.make({
    name,
    cron: options.cron,
    execute: scheduled,
    shardGroup: options.shardGroup,
    // The late-skip is ours (counted); ClusterCron's own skips silently.
    skipIfOlderThan: neverTooOld
  }) as Layer.Layer<never, never, Sharding.Sharding | Store.Store | Exclude<R, Scope.Scope | SingletonContext.SingletonContext>>

  const trigger = (scheduledAt: DateTime.DateTime | Date | number) =>
    Effect.gen(function*() {
      const tick = DateTime.toUtc(DateTime.unsafeMake(scheduledAt))
      const now = yield* DateTime.now
      if (DateTime.greaterThan(tick, now)) return yield* new TickNotDue({ scheduledAt: tick, now })
      const runnerAddress = yield* SingletonContext.runnerAddress
      return yield* runTick(tick, { shardId: Option.none(), runnerAddress, ownsShard: Effect.succeed(true) })
    }).pipe(Effect.annotateLogs({ module: "FencedCron", cron: name })) as Effect.Effect<
      SingletonMetrics.CronOutcome,
      TickNotDue,
      // The same requirements, spelled differently (TypeScript does not flatten nested Excludes).
      Store.Store | Exclude<R, Scope.Scope | SingletonContext.SingletonContext>
    >

  return Object.assign(layer, { name, state, ledgerKey, status, trigger })
}

/**
 * An execution ran longer than `maxExecutionTime` and was interrupted.
 *
 * @since 0.1.0
 * @category errors
 */
export class ExecutionTimedOut extends Schema.TaggedError<ExecutionTimedOut>()("ExecutionTimedOut", {
  maxExecutionTime: Schema.Duration
}) {}

/**
 * `trigger` was asked to run a tick whose scheduled time has not come yet.
 *
 * @since 0.1.0
 * @category errors
 */
export class TickNotDue extends Schema.TaggedError<TickNotDue>()("TickNotDue", {
  scheduledAt: Schema.DateTimeUtcFromSelf,
  now: Schema.DateTimeUtcFromSelf
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `the tick scheduled at ${DateTime.formatIso(this.scheduledAt)} is not due yet (now ${
      DateTime.formatIso(this.now)
    }): running it now would make the scheduler skip every tick up to it`
  }
}

/**
 * The default store key of a cron job's state.
 *
 * @since 0.1.0
 * @category constructors
 */
export const stateKeyFor = (name: string): string => `cron/${name}/state`

/**
 * The store key of a cron job's tick ledger.
 *
 * @since 0.1.0
 * @category constructors
 */
export const ledgerKeyFor = (name: string): string => `cron/${name}/ledger`

// About a thousand years: ClusterCron never skips a tick, we do.
const neverTooOld = Duration.days(365_000)

// 5 retries over about 3 s (0.1 s doubling, jittered so that runners do not retry in step).
const releaseRetry = Schedule.exponential("100 millis").pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(5)))

const ledgerUndecodable = (name: string, cause: unknown) =>
  SingletonError.SchemaDecodeFailed({
    singletonName: name,
    cause,
    details: { description: "the tick ledger cannot be decoded (left untouched)" }
  })

// ClusterCron addresses each tick's message by the ISO time of the tick.
const parseTick = (entityId: string): Option.Option<DateTime.Utc> => {
  const date = new Date(entityId)
  return Number.isNaN(date.getTime()) || date.toISOString() !== entityId
    ? Option.none()
    : Option.some(DateTime.unsafeFromDate(date))
}
