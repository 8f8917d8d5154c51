/**
 * Health of a singleton or cron job from its **persisted** heartbeat (the original design's
 * dead-man's switch): right after a restart, after a failover, and from any node, because it
 * reads the store rather than one process's memory.
 *
 * With `expectedInterval` the longest normal gap between two successful executions (for a
 * singleton running every `d`, `d` plus the time an execution takes):
 *
 * | health | when |
 * |---|---|
 * | `NeverRan` | the state exists without a heartbeat, or does not exist yet |
 * | `Healthy` | age of the last success ≤ 1 × `expectedInterval` |
 * | `Late` | 1 × < age ≤ 2 × `expectedInterval` |
 * | `Dead` | age > 2 × `expectedInterval` |
 * | `Unreadable` | the stored state cannot be decoded (corrupt, wrong shape, newer schema): the singleton is parked until someone fixes it |
 *
 * A store that cannot be read fails with `StateLoadFailed` in the error channel.
 *
 * @example
 * ```ts
 * import { FencedState, SingletonHealth } from "@durable-singleton/core"
 * import { Effect, Schema } from "effect"
 *
 * const Counter = FencedState.make({ name: "counter", schema: Schema.Number, initial: 0 })
 *
 * const status = SingletonHealth.check(Counter, { expectedInterval: "1 minute" }).pipe(
 *   Effect.map(SingletonHealth.Health.$match({
 *     NeverRan: () => "never ran",
 *     Healthy: ({ age }) => `ok (${age})`,
 *     Late: ({ age }) => `late (${age})`,
 *     Dead: ({ age }) => `dead (${age})`,
 *     Unreadable: ({ error }) => `unreadable: ${error.message}`
 *   }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as FencedState from "./FencedState.js"
import type { SingletonError } from "./SingletonError.js"
import type * as Store from "./Store.js"

/**
 * @since 0.1.0
 * @category models
 */
export type Health = Data.TaggedEnum<{
  NeverRan: {}
  Healthy: { readonly lastSuccessAt: DateTime.Utc; readonly age: Duration.Duration }
  Late: { readonly lastSuccessAt: DateTime.Utc; readonly age: Duration.Duration }
  Dead: { readonly lastSuccessAt: DateTime.Utc; readonly age: Duration.Duration }
  Unreadable: { readonly error: SingletonError; readonly lastSuccessAt: Option.Option<DateTime.Utc> }
}>

/**
 * Constructors, `$is` and `$match` for {@link Health}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const Health = Data.taggedEnum<Health>()

/**
 * Whatever has fenced state: a `FencedState` definition, a `StatefulSingleton` or a `FencedCron`.
 *
 * @since 0.1.0
 * @category models
 */
export type Target = FencedState.FencedState<any> | { readonly state: FencedState.FencedState<any> }

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The longest normal gap between two successful executions. */
  readonly expectedInterval: Duration.DurationInput
}

/**
 * Classifies a last-success time (milliseconds since the Unix epoch) at `now`. A heartbeat in
 * the future (clock skew between nodes) counts as age zero.
 *
 * @since 0.1.0
 * @category utils
 */
export const classify = (
  lastSuccessAt: Option.Option<number>,
  now: number,
  expectedInterval: Duration.DurationInput
): Health => {
  if (Option.isNone(lastSuccessAt)) return Health.NeverRan()
  const ageMillis = Math.max(0, now - lastSuccessAt.value)
  const interval = Duration.toMillis(Duration.decode(expectedInterval))
  const fields = { lastSuccessAt: DateTime.unsafeMake(lastSuccessAt.value), age: Duration.millis(ageMillis) }
  if (ageMillis <= interval) return Health.Healthy(fields)
  if (ageMillis <= 2 * interval) return Health.Late(fields)
  return Health.Dead(fields)
}

/**
 * Reads the persisted heartbeat (and decodes the state, so that corrupt state shows as
 * `Unreadable`) and classifies it at the current time.
 *
 * @since 0.1.0
 * @category health
 */
export const check = (target: Target, options: Options): Effect.Effect<Health, SingletonError, Store.Store> => {
  const state = "claim" in target ? target : target.state
  return Effect.gen(function*() {
    const read = yield* Effect.either(state.read)
    const now = yield* Clock.currentTimeMillis
    if (read._tag === "Right") {
      return Option.match(read.right, {
        onNone: () => Health.NeverRan(),
        onSome: (snapshot) => classify(snapshot.lastSuccessAt, now, options.expectedInterval)
      })
    }
    if (read.left.reason !== "SchemaDecodeFailed") return yield* read.left
    // The bookkeeping may still be readable when only the state is not.
    const metadata = yield* Effect.option(state.inspect)
    return Health.Unreadable({
      error: read.left,
      lastSuccessAt: Option.map(
        Option.flatMap(Option.flatten(metadata), (metadata) => metadata.lastSuccessAt),
        DateTime.unsafeMake
      )
    })
  })
}
