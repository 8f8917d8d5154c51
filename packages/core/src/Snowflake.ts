/**
 * Snowflake ids (`@effect/cluster`'s 64-bit, time-ordered ids) that do not collide across
 * runners: each generator needs a machine id of its own, in 0..1023.
 *
 * Two ways to get one:
 *
 * - **Derived** ({@link next}): the runner's own `Sharding` generator, whose machine id the
 *   cluster's runner storage assigned when the runner registered (unique among registered
 *   runners while fewer than 1024 registrations have happened: the SQL storage numbers them
 *   from a sequence and the id wraps modulo 1024). This is the only generator in a cluster with
 *   a registered id: the ones `@effect/cluster` builds for its storages pick a random machine id.
 * - **Configured** ({@link layerGenerator}, {@link layerGeneratorConfig}): a machine id you
 *   assign (e.g. a pod ordinal), validated: an id outside 0..1023 fails with
 *   {@link InvalidMachineId} instead of wrapping silently into someone else's.
 *
 * Measured limit of the cluster's own generator (used by {@link next}): drawing more than 8192
 * ids within one millisecond on one runner repeats ids (its sequence wraps once it runs ahead of
 * the clock). The configured generator here does not have that flaw.
 *
 * @example
 * ```ts
 * import { Snowflake } from "@durable-singleton/core"
 * import { Config, Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const id = yield* Snowflake.generate // bigint-branded Snowflake
 * }).pipe(Effect.provide(Snowflake.layerGeneratorConfig(Config.integer("MACHINE_ID"))))
 * ```
 *
 * @since 0.1.0
 */
import * as MachineId from "@effect/cluster/MachineId"
import * as Sharding from "@effect/cluster/Sharding"
import * as ClusterSnowflake from "@effect/cluster/Snowflake"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/**
 * The largest machine id a Snowflake can carry (10 bits).
 *
 * @since 0.1.0
 * @category constants
 */
export const maxMachineId = 1023

/**
 * A machine id that is not an integer in 0..{@link maxMachineId}.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidMachineId extends Data.TaggedError("InvalidMachineId")<{ readonly machineId: number }> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `machine id must be an integer from 0 to ${maxMachineId}, got ${this.machineId}`
  }
}

/**
 * Validates a machine id.
 *
 * @since 0.1.0
 * @category constructors
 */
export const machineId = (id: number): Effect.Effect<MachineId.MachineId, InvalidMachineId> =>
  Number.isSafeInteger(id) && id >= 0 && id <= maxMachineId
    ? Effect.succeed(MachineId.make(id))
    : Effect.fail(new InvalidMachineId({ machineId: id }))

/**
 * The next id from this runner's `Sharding` (machine id assigned by the runner storage).
 *
 * @since 0.1.0
 * @category generating
 */
export const next: Effect.Effect<ClusterSnowflake.Snowflake, never, Sharding.Sharding> = Effect.flatMap(
  Sharding.Sharding,
  (sharding) => sharding.getSnowflake
)

/**
 * A generator with the given machine id (clock: the Effect `Clock`), implementing
 * `@effect/cluster`'s `Snowflake.Generator`. Unlike the cluster's own generator (0.60.2), it
 * never repeats an id when more than 8192 are drawn within one millisecond: once ahead of the
 * clock it still moves to the next millisecond when the 4096 sequence numbers of the current one
 * are used up. If the clock goes back, ids keep growing from where they were.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeGenerator = (id: number): Effect.Effect<ClusterSnowflake.Snowflake.Generator, InvalidMachineId> =>
  Effect.flatMap(machineId(id), (validated) =>
    Effect.map(Effect.clock, (clock): ClusterSnowflake.Snowflake.Generator => {
      let current = validated
      let sequence = 0
      let millis = Math.floor(clock.unsafeCurrentTimeMillis())
      return {
        setMachineId: (next) =>
          Number.isSafeInteger(next) && next >= 0 && next <= maxMachineId
            ? Effect.sync(() => {
              current = next
            })
            : Effect.logWarning(new InvalidMachineId({ machineId: next }).message + ": machine id left unchanged"),
        unsafeNext: () => {
          const now = Math.floor(clock.unsafeCurrentTimeMillis())
          if (now > millis) {
            millis = now
            sequence = 0
          } else if (sequence >= sequencesPerMillisecond) {
            millis++
            sequence = 0
          }
          return ClusterSnowflake.make({ machineId: current, sequence: sequence++, timestamp: millis })
        }
      }
    }))

const sequencesPerMillisecond = 4096

/**
 * Provides `@effect/cluster`'s `Snowflake.Generator` with a configured machine id.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerGenerator = (options: {
  readonly machineId: number
}): Layer.Layer<ClusterSnowflake.Generator, InvalidMachineId> =>
  Layer.effect(ClusterSnowflake.Generator, makeGenerator(options.machineId))

/**
 * Like {@link layerGenerator}, with the machine id read from `Config`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerGeneratorConfig = (
  config: Config.Config<number>
): Layer.Layer<ClusterSnowflake.Generator, InvalidMachineId | ConfigError.ConfigError> =>
  Layer.effect(ClusterSnowflake.Generator, Effect.flatMap(config, makeGenerator))

/**
 * The next id from the `Snowflake.Generator` in context.
 *
 * @since 0.1.0
 * @category generating
 */
export const generate: Effect.Effect<ClusterSnowflake.Snowflake, never, ClusterSnowflake.Generator> = Effect.map(
  ClusterSnowflake.Generator,
  (generator) => generator.unsafeNext()
)
