import { Snowflake, TestKit } from "@durable-singleton/core"
import * as Sharding from "@effect/cluster/Sharding"
import * as ClusterSnowflake from "@effect/cluster/Snowflake"
import { describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Effect, FastCheck as fc, Layer, Option, TestClock } from "effect"

// Ids are milliseconds since 2025-01-01: run the clock after that.
const start = Date.UTC(2026, 0, 1)

describe("Snowflake", () => {
  it.effect.prop(
    "generators with distinct machine ids never collide, even thousands of ids in the same millisecond",
    [
      fc.uniqueArray(fc.integer({ min: 0, max: Snowflake.maxMachineId }), { minLength: 2, maxLength: 5 }),
      fc.integer({ min: 1, max: 10_000 })
    ],
    ([machineIds, perGenerator]) =>
      Effect.gen(function*() {
        yield* TestClock.setTime(start)
        const generators = yield* Effect.forEach(machineIds, Snowflake.makeGenerator)
        const seen = new Set<bigint>()
        let wrongMachine = 0
        // Interleave the generators while the clock stands still, then let it move once.
        for (let round = 0; round < perGenerator; round++) {
          for (const [index, generator] of generators.entries()) {
            const id = generator.unsafeNext()
            if (ClusterSnowflake.machineId(id) !== machineIds[index]) wrongMachine++
            seen.add(id)
          }
          if (round === Math.floor(perGenerator / 2)) yield* TestClock.adjust("1 millis")
        }
        expect(wrongMachine).toBe(0)
        expect(seen.size).toBe(machineIds.length * perGenerator)
      }),
    { fastCheck: { numRuns: 25 } }
  )

  it.effect("ids of one generator grow strictly past the 4096-per-millisecond limit, and when the clock goes back", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(start)
      const generator = yield* Snowflake.makeGenerator(1023)
      const ids = [generator.unsafeNext()]
      for (let i = 0; i < 20_000; i++) ids.push(generator.unsafeNext())
      yield* TestClock.setTime(start - 60_000)
      for (let i = 0; i < 100; i++) ids.push(generator.unsafeNext())
      const decreasing = ids.findIndex((id, i) => i > 0 && id <= ids[i - 1]!)
      expect(decreasing).toBe(-1)
      expect(ClusterSnowflake.machineId(ids[ids.length - 1]!)).toBe(1023)
    }))

  it.effect("@effect/cluster's own generator repeats ids past 8192 in one millisecond (why makeGenerator is ours)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(start)
      const generator = yield* ClusterSnowflake.makeGenerator
      const ids = new Set(Array.from({ length: 8193 }, () => generator.unsafeNext()))
      expect(ids.size).toBe(8192)
    }))

  it.effect("an invalid machine id is a typed InvalidMachineId, never a silent wrap", () =>
    Effect.gen(function*() {
      for (const id of [-1, 1024, 1.5, Number.NaN, 2 ** 53]) {
        const error = yield* Effect.flip(Snowflake.makeGenerator(id))
        expect(error._tag).toBe("InvalidMachineId")
        expect(error.message).toMatch(/from 0 to 1023/)
      }
      const layerError = yield* Effect.flip(Layer.build(Snowflake.layerGenerator({ machineId: 1024 })).pipe(Effect.scoped))
      expect(layerError._tag).toBe("InvalidMachineId")
    }))

  it.effect("layerGeneratorConfig reads and validates the machine id", () =>
    Effect.gen(function*() {
      const withEnv = (env: Record<string, string>) =>
        Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
      const layer = Snowflake.layerGeneratorConfig(Config.integer("MACHINE_ID"))
      yield* TestClock.setTime(start)
      const id = yield* Effect.provide(Snowflake.generate, layer.pipe(Layer.provide(withEnv({ MACHINE_ID: "7" }))))
      expect(ClusterSnowflake.machineId(id)).toBe(7)
      const tooLarge = yield* Effect.flip(Effect.provide(Snowflake.generate, layer.pipe(Layer.provide(withEnv({ MACHINE_ID: "4000" })))))
      expect(tooLarge._tag).toBe("InvalidMachineId")
      const missing = yield* Effect.flip(Effect.provide(Snowflake.generate, layer.pipe(Layer.provide(withEnv({})))))
      expect(missing._tag).not.toBe("InvalidMachineId")
    }))

  it.scoped("next uses each runner's registered machine id: runners of one cluster never collide", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(start)
      const cluster = yield* TestKit.make({ layer: Layer.empty, runners: ["a", "b", "c"] })
      yield* cluster.advance("2 seconds")
      const ids = new Set<bigint>()
      const machineIds = new Set<number>()
      for (const runner of ["a", "b", "c"]) {
        const sharding = Option.getOrThrow(cluster.sharding(runner))
        for (let i = 0; i < 1000; i++) {
          const id = yield* Effect.provideService(Snowflake.next, Sharding.Sharding, sharding)
          ids.add(id)
          machineIds.add(ClusterSnowflake.machineId(id))
        }
      }
      expect(ids.size).toBe(3000)
      expect(machineIds.size).toBe(3)
    }))
})
