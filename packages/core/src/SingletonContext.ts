/**
 * What a stateful singleton's `run` or a fenced cron job's `execute` knows about where and as
 * whom it runs (the original design's `withinCluster`): its name, its epoch and fencing token,
 * whether it still leads, the runner's address and the shard.
 *
 * Inside `run` / `execute` (and anything they call) the {@link SingletonContext} service is
 * provided. Code that may also run elsewhere uses {@link current}, which fails with the typed
 * {@link NotInSingleton} outside a singleton instead of crashing.
 *
 * @example
 * ```ts
 * import { SingletonContext } from "@durable-singleton/core"
 * import { Effect } from "effect"
 *
 * const audit = Effect.gen(function*() {
 *   const context = yield* SingletonContext.current
 *   yield* Effect.log(`${context.name} epoch ${context.epoch} on ${context.runnerAddress}`)
 * }).pipe(Effect.catchTag("NotInSingleton", () => Effect.log("not in a singleton")))
 * ```
 *
 * @since 0.1.0
 */
import type * as ClusterRunnerAddress from "@effect/cluster/RunnerAddress"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** The singleton's or cron job's name. */
  readonly name: string
  readonly kind: "singleton" | "cron"
  /**
   * The epoch of the claim this code runs under: it grows by one at every claim, for people and
   * logs to order leaders. It restarts at 1 if the state is removed (e.g. the store is cleared),
   * so it does not identify a claim for good: {@link Service.token} does.
   */
  readonly epoch: number
  /**
   * The fencing token of the claim this code runs under: random, drawn at each claim, never
   * reused (not even after the store is cleared). It is what fences the state's writes, and the
   * value to fence side effects outside the store with: send it along and have the other system
   * accept a request only under the token it knows as the current one (e.g. a conditional
   * update that compares it), or use it to tell the work of two claims apart (idempotency keys).
   * Tokens are not ordered: compare them for equality; order claims by `epoch`.
   */
  readonly token: string
  /**
   * Whether this runner still owns the singleton's shard and its claim is still current. It
   * narrows the time a superseded leader keeps working, but it is a local view: it cannot
   * replace fencing, which is why every write is fenced in the store anyway.
   */
  readonly isLeader: Effect.Effect<boolean>
  /** This runner's address (`host:port`), when known (see {@link runnerAddress}). */
  readonly runnerAddress: Option.Option<string>
  /** The shard the code runs on (`group:id`), when running in a cluster. */
  readonly shardId: Option.Option<string>
  /** For a cron job: the scheduled time of the tick being executed. */
  readonly tick: Option.Option<DateTime.Utc>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class SingletonContext extends Context.Tag("@durable-singleton/core/SingletonContext")<
  SingletonContext,
  Service
>() {}

/**
 * The handler context was asked for outside a stateful singleton or fenced cron job.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotInSingleton extends Data.TaggedError("NotInSingleton")<{}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return "not running inside a stateful singleton or fenced cron job"
  }
}

/**
 * The handler context, or `NotInSingleton` outside a singleton.
 *
 * @since 0.1.0
 * @category accessors
 */
export const current: Effect.Effect<Service, NotInSingleton> = Effect.flatMap(
  Effect.serviceOption(SingletonContext),
  Option.match({
    onNone: () => Effect.fail(new NotInSingleton()),
    onSome: Effect.succeed
  })
)

/**
 * Whether the calling singleton still leads (see {@link Service.isLeader}).
 *
 * @since 0.1.0
 * @category accessors
 */
export const isLeader: Effect.Effect<boolean, NotInSingleton> = Effect.flatMap(current, (context) => context.isLeader)

/**
 * The address this runner announces, as the runtime reports it in the handler context and
 * records as the holder of the state it claims. Provide it with {@link layerRunnerAddress} when
 * the cluster's `ShardingConfig` is not visible to your singletons (`NodeClusterSocket.layer`,
 * `SingleRunner.layer` and `TestRunner.layer` provide it privately).
 *
 * @since 0.1.0
 * @category tags
 */
export class RunnerAddress extends Context.Tag("@durable-singleton/core/RunnerAddress")<RunnerAddress, string>() {}

/**
 * @since 0.1.0
 * @category layers
 */
export const layerRunnerAddress = (
  address: string | ClusterRunnerAddress.RunnerAddress
): Layer.Layer<RunnerAddress> =>
  Layer.succeed(
    RunnerAddress,
    typeof address === "string" ? address : `${address.host}:${address.port}`
  )

/**
 * This runner's address: the {@link RunnerAddress} service if provided, else the
 * `runnerAddress` of a `ShardingConfig` in context, else none.
 *
 * @since 0.1.0
 * @category accessors
 */
export const runnerAddress: Effect.Effect<Option.Option<string>> = Effect.flatMap(
  Effect.serviceOption(RunnerAddress),
  Option.match({
    onSome: (address) => Effect.succeedSome(address),
    onNone: () =>
      Effect.map(
        Effect.serviceOption(ShardingConfig.ShardingConfig),
        (config) =>
          Option.map(
            Option.flatMap(config, (config) => config.runnerAddress),
            (address) => `${address.host}:${address.port}`
          )
      )
  })
)
