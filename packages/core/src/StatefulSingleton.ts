/**
 * A cluster singleton with typed, persisted, fenced state: one leader at a time runs it, and the
 * state it writes survives every change of leader.
 *
 * Built on `@effect/cluster`'s `Singleton.make`. When this runner becomes the leader, the runtime
 * claims the state (a new epoch: the claimer sees every write acknowledged before) and hands
 * `run` a {@link FencedState.Lease}: `get`, and fenced `update` / `modify` / `set` /
 * `heartbeat`. The runtime keeps the singleton alive, which `Singleton.make` alone does not do
 * (a failed `run` becomes a silent defect there, and a completed one is never run again):
 *
 * | what happens | what the runtime does |
 * |---|---|
 * | `run` succeeds | persists the heartbeat (`lastSuccessAt`, fenced), sets the gauge; runs again `every` later |
 * | `run` fails or dies, or the heartbeat cannot be written | logs, counts, retries after the `retry` backoff (same claim while it is current) |
 * | the store is unreachable (`StateLoadFailed`, `StatePersistFailed`, `HeartbeatFailed`) | same: retried with backoff, never a crash loop |
 * | `run` produced a state that does not encode with the schema (`SchemaDecodeFailed`, `details.direction` `"encode"`) | same: nothing was written, retried with backoff |
 * | another leader claimed the state (`LeaderHandoffFailed` from any write) | interrupts `run`, never writes with that claim again ("stepping down" warning); after `stepDown`, claims again if this runner still owns the singleton's shard |
 * | the stored state cannot be decoded (`SchemaDecodeFailed`: corrupt, wrong shape, newer schema) | logs an error, leaves the stored bytes alone, parks and checks again every `parkedRecheck` |
 * | the cluster moves the singleton away | `run` is interrupted (keep its finalizers short); no claim is made while this runner does not own the shard |
 *
 * A retry runs `run` again from the start, on the state as stored. If the attempt that failed
 * with `StatePersistFailed` had in fact written (the acknowledgement was lost), that write is in
 * the state the retry reads: the lease never loses or repeats an acknowledged update, but a run
 * that unconditionally applies an increment applies it again. Let each run decide from the state
 * it reads (e.g. record in the state which unit of work is done) where that matters.
 *
 * Without `every`, `run` is a long-lived process: call `state.heartbeat` whenever it completes a
 * unit of work; if it returns anyway, it is restarted after the retry backoff.
 *
 * Inside `run` the {@link SingletonContext.SingletonContext} is provided. Metrics: see
 * {@link SingletonMetrics}. Health: {@link SingletonHealth.check}.
 *
 * @example
 * ```ts
 * import { MemoryStore, StatefulSingleton } from "@durable-singleton/core"
 * import { Effect, Schema } from "effect"
 *
 * const Counter = StatefulSingleton.make({
 *   name: "counter",
 *   schema: Schema.Struct({ count: Schema.Number }),
 *   initial: { count: 0 },
 *   every: "10 seconds",
 *   run: (state) => state.update(({ count }) => ({ count: count + 1 }))
 * })
 * // Counter: Layer<never, never, Sharding | Store>; provide a cluster and a store
 * ```
 *
 * @since 0.1.0
 */
import * as EntityId from "@effect/cluster/EntityId"
import * as Sharding from "@effect/cluster/Sharding"
import * as Singleton from "@effect/cluster/Singleton"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as FencedState from "./FencedState.js"
import * as execution from "./internal/execution.js"
import * as instrument from "./internal/instrument.js"
import * as SingletonContext from "./SingletonContext.js"
import * as SingletonError from "./SingletonError.js"
import type * as Store from "./Store.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<A, I, E, R> extends FencedState.Options<A, I> {
  /** One execution. Every write through `state` is fenced. */
  readonly run: (state: FencedState.Lease<A>) => Effect.Effect<void, E, R>
  /**
   * Run again this long after each successful execution (or when the schedule says; when the
   * schedule ends, the leader keeps its claim and stops executing). Absent: `run` is long-lived.
   */
  readonly every?: Duration.DurationInput | Schedule.Schedule<unknown, unknown> | undefined
  /** The cluster shard group to run in; default `"default"`. */
  readonly shardGroup?: string | undefined
  /**
   * Backoff between attempts after a failure: default {@link defaultRetry}. Its input is the
   * failure (a `SingletonError` or the `Cause` of `run`). When it ends, the singleton parks
   * (see `parkedRecheck`) and then starts over.
   */
  readonly retry?: Schedule.Schedule<unknown, unknown> | undefined
  /** How often a parked singleton (undecodable state) checks again; default 1 minute. */
  readonly parkedRecheck?: Duration.DurationInput | undefined
  /**
   * How long a superseded leader waits before claiming again (if it still owns the shard): default
   * {@link defaultStepDown}.
   */
  readonly stepDown?: Duration.DurationInput | undefined
}

/**
 * The singleton: a `Layer` to add to a runner, which also tells its name and state definition
 * (for `SingletonHealth.check` and `read` from any node).
 *
 * @since 0.1.0
 * @category models
 */
export interface StatefulSingleton<A, R> extends Layer.Layer<never, never, R> {
  readonly name: string
  readonly state: FencedState.FencedState<A>
}

/**
 * Exponential from 100 ms, doubling, each delay capped at 30 seconds, then jittered (×0.8–1.2,
 * so 24–36 s once capped); never ends, so an outage of the store does not kill the singleton.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultRetry: Schedule.Schedule<unknown, unknown> = Schedule.exponential("100 millis", 2).pipe(
  Schedule.union(Schedule.spaced("30 seconds")),
  // After the cap, or every capped delay would be exactly 30 s and singletons that lost the store
  // together would retry in lockstep for as long as the outage lasts.
  Schedule.jittered
)

/**
 * 15 seconds. A superseded leader that still believes it owns the singleton's shard may just
 * not have heard yet that the cluster moved it: a runner learns that at its next shard-lock
 * refresh, every 10 seconds by default (`ShardingConfig.shardLockRefreshInterval`), and claiming
 * before then would supersede the new leader. 15 s covers one refresh with a margin, and halves
 * the leaderless time after a claim from outside the cluster (an operator's tool) compared with
 * 30 s. With a longer lock refresh interval, set `stepDown` above it.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultStepDown: Duration.Duration = Duration.seconds(15)

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = <A, I, E = never, R = never>(
  options: Options<A, I, E, R>
): StatefulSingleton<A, Sharding.Sharding | Store.Store | Exclude<R, Scope.Scope | SingletonContext.SingletonContext>> => {
  const name = options.name
  const state = FencedState.make(options)
  const shardGroup = options.shardGroup ?? "default"
  const retrySchedule = options.retry ?? defaultRetry
  const parkedRecheck = options.parkedRecheck ?? Duration.minutes(1)
  const stepDown = options.stepDown ?? defaultStepDown
  const every = options.every

  const program = Effect.gen(function*() {
    const sharding = yield* Sharding.Sharding
    const shardId = sharding.getShardId(EntityId.make(name), shardGroup)
    const ownsShard = Effect.sync(() => sharding.hasShardId(shardId))
    const holder = yield* SingletonContext.runnerAddress
    const retry = yield* Schedule.driver(retrySchedule)

    const placement: execution.Placement = {
      kind: "singleton",
      runnerAddress: holder,
      shardId: Option.some(shardId.toString()),
      ownsShard,
      tick: Option.none()
    }

    // Claims and executions share one backoff, reset by any success: a store outage in which
    // claims and runs fail in turn still backs off instead of starting over at the first delay.
    // False once the schedule has ended.
    const backoff = (input: unknown) =>
      Effect.map(Effect.option(retry.next(input)), Option.isSome).pipe(
        Effect.tap((more) =>
          more ? Effect.void : Effect.zipRight(
            Effect.logError("the retry schedule has ended: parking"),
            retry.reset
          )
        )
      )

    const claim = Effect.gen(function*() {
      while (true) {
        // The cluster interrupts a singleton whose shard moved, but not at once: a claim made in
        // between would supersede the new owner's.
        if (!(yield* ownsShard)) {
          yield* Effect.logInfo("this runner does not own the singleton's shard: not claiming")
          return "not owner" as const
        }
        const claimed = yield* Effect.either(
          instrument.counted(name, "claim", state.claim(Option.isSome(holder) ? { holder: holder.value } : undefined))
        )
        if (claimed._tag === "Right") {
          yield* retry.reset
          return claimed.right
        }
        const error = claimed.left
        if (!error.isRetryable) {
          yield* Effect.logError("cannot claim the state: parking", error)
          return "parked" as const
        }
        yield* Effect.logWarning("cannot claim the state: retrying", error)
        if (!(yield* backoff(error))) return "parked" as const
      }
    })

    const lead = (lease: FencedState.Lease<A>) =>
      Effect.gen(function*() {
        const next = every === undefined
          ? undefined
          : Schedule.isSchedule(every)
          ? Effect.map(Effect.option((yield* Schedule.driver(every)).next(undefined)), Option.isSome)
          : Effect.as(Effect.sleep(every), true)

        yield* instrument.seedGauge(name, lease)
        yield* Effect.logInfo("leading")
        while (true) {
          const outcome = yield* execution.run(lease, placement, options.run)
          if (outcome._tag === "Superseded") {
            yield* Effect.logWarning("another leader claimed the state: stepping down", ...Option.toArray(outcome.error))
            return "superseded" as const
          }
          if (outcome._tag === "Succeeded") {
            yield* retry.reset
            if (next !== undefined) {
              if (!(yield* next)) {
                yield* Effect.logInfo("the every schedule has ended: keeping the claim, not executing")
                return yield* Effect.never
              }
              continue
            }
            yield* Effect.logWarning("run completed: running it again after the retry backoff")
            if (!(yield* backoff(undefined))) return "parked" as const
            continue
          }
          if (isStoredStateUndecodable(outcome.cause)) {
            yield* Effect.logError("the stored state cannot be decoded: parking", outcome.cause)
            return "parked" as const
          }
          yield* Effect.logWarning("execution failed: retrying", outcome.cause)
          if (!(yield* backoff(outcome.cause))) return "parked" as const
        }
      }).pipe(Effect.annotateLogs("epoch", lease.epoch))

    while (true) {
      const claimed = yield* claim
      const ending = typeof claimed === "string" ? claimed : yield* lead(claimed)
      // Parked: until someone repairs the state. Superseded or not the owner: until the cluster
      // has settled who owns the shard (the claim loop checks).
      yield* Effect.sleep(ending === "parked" ? parkedRecheck : stepDown)
    }
  }).pipe(Effect.annotateLogs({ module: "StatefulSingleton", singleton: name }))

  // The same requirements, spelled differently (TypeScript does not flatten nested Excludes).
  const layer = Singleton.make(name, program, { shardGroup }) as Layer.Layer<
    never,
    never,
    Sharding.Sharding | Store.Store | Exclude<R, Scope.Scope | SingletonContext.SingletonContext>
  >
  return Object.assign(layer, { name, state })
}

// A state the code produced that does not encode is a failure of this run, retried like any
// other; only stored state that cannot be decoded parks the singleton.
const isStoredStateUndecodable = (cause: Cause.Cause<unknown>): boolean =>
  Array.from(Cause.failures(cause)).some((error) =>
    SingletonError.isSingletonError(error) && error.reason === "SchemaDecodeFailed" &&
    error.details?.direction !== "encode"
  )
