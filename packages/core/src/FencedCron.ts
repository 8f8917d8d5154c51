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
 * | `completed` / `failed` | the tick ran (a failure is logged, not retried: ClusterCron does not retry either) |
 * | `skipped_duplicate` | this tick already began (a redelivery), even if its execution was cut short |
 * | `skipped_overlap` | another tick of this job is still executing |
 * | `skipped_late` | the tick was delivered too late (see `skipIfOlderThan`) |
 *
 * The counts are also kept in the ledger, so {@link FencedCron.status} shows them from any node.
 *
 * Each tick that runs claims the job's state (its own short tenure: epoch + 1) and hands
 * `execute` a {@link FencedState.Lease}; after a successful execution the heartbeat is persisted
 * (`lastSuccessAt`, fenced), so `SingletonHealth.check` works for cron jobs too. Inside `execute`
 * the {@link SingletonContext.SingletonContext} is provided, with the scheduled time as `tick`.
 *
 * Guarantees and limits:
 * - At most once: a tick whose execution was interrupted (its runner stopped, or it exceeded
 *   `maxExecutionTime`) is not run again when the scheduler delivers it again.
 * - No overlap while executions end within `maxExecutionTime` (they are interrupted when they
 *   exceed it; after that the ledger no longer waits for them). A process frozen in the middle of
 *   an execution cannot be interrupted: its later state writes are rejected by fencing, but side
 *   effects outside the store are not.
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
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as FencedState from "./FencedState.js"
import * as cronLedger from "./internal/cronLedger.js"
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
export interface StateOptions<A, I> {
  readonly schema: Schema.Schema<A, I>
  readonly initial: A
  readonly version?: number | undefined
  readonly migrations?: FencedState.Migrations | undefined
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
  /** An execution running longer is interrupted and counted as failed; default 10 minutes. */
  readonly maxExecutionTime?: Duration.DurationInput | undefined
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
  readonly running: Option.Option<{ readonly tick: DateTime.Utc; readonly startedAt: DateTime.Utc }>
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
   * does: for tests, and for running a tick by hand. Never fails: the outcome says what happened
   * (errors are logged and counted).
   */
  readonly trigger: (
    scheduledAt: DateTime.DateTime | Date | number
  ) => Effect.Effect<SingletonMetrics.CronOutcome, never, Store.Store | R>
}

/**
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxExecutionTime: Duration.Duration = Duration.minutes(10)

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
  const maxExecution = Duration.decode(options.maxExecutionTime ?? defaultMaxExecutionTime)
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

  // Applies `f` to the ledger atomically; an undecodable ledger is reported and left alone.
  const changeLedger = <B>(f: (ledger: cronLedger.Ledger) => readonly [B, cronLedger.Ledger]) =>
    Effect.flatMap(Store.Store, (store) =>
      Effect.flatten(Effect.mapError(
        store.modifyOrInit(ledgerKey, (current): Store.Decision<Either.Either<B, SingletonError>> => {
          const ledger = cronLedger.parse(current)
          if (ledger._tag === "Left") {
            return [Either.left(ledgerUndecodable(name, ledger.left)), Option.none()]
          }
          const [result, next] = f(ledger.right)
          return [Either.right(result), Option.some(cronLedger.stringify(next))]
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
              startedAt: DateTime.unsafeMake(running.startedAt)
            })),
            counts: ledger.counts
          })
      })))

  interface Placement {
    readonly shardId: Option.Option<string>
    readonly runnerAddress: Option.Option<string>
    readonly ownsShard: Effect.Effect<boolean>
  }

  // One execution of a tick that began: claim, execute, heartbeat. Problems are logged and
  // counted here; the outcome goes to the ledger.
  const execute = (tick: Tick, placement: Placement) =>
    Effect.gen(function*() {
      const failed = (message: string, cause: unknown, outcome: SingletonMetrics.ExecutionOutcome = "failure") =>
        Effect.as(
          Effect.zipRight(
            Metric.increment(SingletonMetrics.executionsOf(name, outcome)),
            Effect.logWarning(message, cause)
          ),
          "failed" as const
        )
      const holder = placement.runnerAddress
      const claimed = yield* Effect.either(instrument.counted(
        name,
        "claim",
        state.claim(Option.isSome(holder) ? { holder: holder.value } : undefined)
      ))
      if (claimed._tag === "Left") return yield* failed("cannot claim the state", claimed.left)
      const lease = claimed.right
      yield* instrument.seedGauge(name, lease)
      const superseded = yield* Deferred.make<SingletonError>()
      const handle = instrument.lease(lease, (error) => Deferred.succeed(superseded, error))
      const context = SingletonContext.SingletonContext.of({
        name,
        kind: "cron",
        epoch: lease.epoch,
        isLeader: Effect.zipWith(placement.ownsShard, lease.isCurrent, (owns, current) => owns && current),
        runnerAddress: holder,
        shardId: placement.shardId,
        tick: Option.some(tick.scheduledAt)
      })
      const started = yield* Clock.currentTimeMillis
      const exit = yield* Effect.raceFirst(
        Effect.exit(
          Effect.scoped(options.execute(handle, tick)).pipe(
            Effect.provideService(SingletonContext.SingletonContext, context),
            Effect.timeoutFail({
              duration: maxExecution,
              onTimeout: () => new ExecutionTimedOut({ maxExecutionTime: maxExecution })
            })
          )
        ),
        Effect.as(Deferred.await(superseded), "superseded" as const)
      )
      const finished = yield* Clock.currentTimeMillis
      yield* Metric.update(SingletonMetrics.executionDurationOf(name), (finished - started) / 1000)
      const supersededBy = "another execution claimed the state: stopping"
      if (exit === "superseded" || !(yield* lease.isCurrent)) {
        const error = yield* Deferred.poll(superseded)
        return yield* failed(supersededBy, Option.isSome(error) ? yield* error.value : lease.epoch, "superseded")
      }
      if (Exit.isFailure(exit)) return yield* failed("tick failed", exit.cause)
      const beat = yield* Effect.either(handle.heartbeat)
      if (beat._tag === "Left") {
        return yield* (yield* lease.isCurrent)
          ? failed("cannot persist the heartbeat", beat.left)
          : failed(supersededBy, beat.left, "superseded")
      }
      yield* Metric.increment(SingletonMetrics.executionsOf(name, "success"))
      yield* instrument.seedGauge(name, lease)
      return "completed" as const
    })

  const runTick = (scheduledAt: DateTime.Utc, placement: Placement) =>
    Effect.gen(function*() {
      const tick = DateTime.toEpochMillis(scheduledAt)
      const now = yield* Clock.currentTimeMillis
      const token = crypto.randomUUID()
      const begun = yield* Effect.either(changeLedger((ledger) =>
        cronLedger.begin(ledger, {
          tick,
          now,
          token,
          late: isLate(tick, now),
          maxExecutionMillis: Duration.toMillis(maxExecution)
        })
      ))
      if (begun._tag === "Left") {
        yield* instrument.countError(name, begun.left)
        yield* Metric.increment(SingletonMetrics.cronTicksOf(name, "failed"))
        yield* Effect.logError("cannot record the tick in the ledger: not running it", begun.left)
        return "failed" as const
      }
      if (begun.right !== "run") {
        yield* Metric.increment(SingletonMetrics.cronTicksOf(name, begun.right))
        yield* Effect.logInfo(`tick ${begun.right.replace("_", " ")}`)
        return begun.right
      }
      // Recorded even when the execution is interrupted, so that `running` is cleared.
      const record = (outcome: "completed" | "failed") =>
        changeLedger((ledger) => [undefined, cronLedger.finish(ledger, token, outcome)]).pipe(
          Effect.zipRight(Metric.increment(SingletonMetrics.cronTicksOf(name, outcome))),
          Effect.catchAll((error) =>
            Effect.zipRight(
              instrument.countError(name, error),
              Effect.logError("cannot record the end of the tick in the ledger", error)
            )
          )
        )
      return yield* execute({ name, scheduledAt }, placement).pipe(
        Effect.onExit((exit) => record(Exit.isSuccess(exit) ? exit.value : "failed"))
      )
    }).pipe(Effect.annotateLogs({ tick: DateTime.formatIso(scheduledAt) }))

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

  const layer = ClusterCron.make({
    name,
    cron: options.cron,
    execute: scheduled,
    shardGroup: options.shardGroup,
    // The late-skip is ours (counted); ClusterCron's own skips silently.
    skipIfOlderThan: neverTooOld
  }) as Layer.Layer<never, never, Sharding.Sharding | Store.Store | Exclude<R, Scope.Scope | SingletonContext.SingletonContext>>

  const trigger = (scheduledAt: DateTime.DateTime | Date | number) =>
    // The same requirements, spelled differently (TypeScript does not flatten nested Excludes).
    Effect.gen(function*() {
      const runnerAddress = yield* SingletonContext.runnerAddress
      return yield* runTick(DateTime.toUtc(DateTime.unsafeMake(scheduledAt)), {
        shardId: Option.none(),
        runnerAddress,
        ownsShard: Effect.succeed(true)
      })
    }).pipe(Effect.annotateLogs({ module: "FencedCron", cron: name })) as Effect.Effect<
      SingletonMetrics.CronOutcome,
      never,
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
