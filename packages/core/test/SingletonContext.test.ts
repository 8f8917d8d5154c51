import { SingletonContext, StatefulSingleton, TestKit } from "@durable-singleton/core"
import * as RunnerAddress from "@effect/cluster/RunnerAddress"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option, Schema } from "effect"
import { on } from "./helpers.js"

describe("SingletonContext", () => {
  it.effect("outside a singleton, current and isLeader fail with the typed NotInSingleton", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(SingletonContext.current)
      expect(error._tag).toBe("NotInSingleton")
      expect(error.message).toMatch(/not running inside a stateful singleton/)
      expect((yield* Effect.flip(SingletonContext.isLeader))._tag).toBe("NotInSingleton")
      // recoverable like any typed error
      expect(yield* Effect.catchTag(SingletonContext.isLeader, "NotInSingleton", () => Effect.succeed(false))).toBe(false)
    }))

  describe("runnerAddress", () => {
    const config = ShardingConfig.layer({ runnerAddress: Option.some(RunnerAddress.make("node-1", 8080)) })

    it.effect("is none without a RunnerAddress service or a ShardingConfig", () =>
      Effect.map(SingletonContext.runnerAddress, (address) => expect(address).toEqual(Option.none())))

    it.effect("comes from a visible ShardingConfig", () =>
      Effect.map(
        Effect.provide(SingletonContext.runnerAddress, config),
        (address) => expect(address).toEqual(Option.some("node-1:8080"))
      ))

    it.effect("the RunnerAddress service wins over the ShardingConfig", () =>
      Effect.map(
        Effect.provide(
          SingletonContext.runnerAddress,
          Layer.merge(config, SingletonContext.layerRunnerAddress(RunnerAddress.make("public.example", 443)))
        ),
        (address) => expect(address).toEqual(Option.some("public.example:443"))
      ))

    it.scoped("is what a singleton reports in its context and records as the holder of its state", () =>
      Effect.gen(function*() {
        const seen: Array<Option.Option<string>> = []
        const singleton = StatefulSingleton.make({
          name: "holder",
          schema: Schema.Number,
          initial: 0,
          run: () =>
            Effect.flatMap(SingletonContext.current, (context) =>
              Effect.zipRight(Effect.sync(() => seen.push(context.runnerAddress)), Effect.never))
        })
        const cluster = yield* TestKit.make({
          layer: singleton.pipe(Layer.provide(SingletonContext.layerRunnerAddress("pod-7:9000"))),
          runners: ["a"]
        })
        yield* cluster.advance("1 second")
        expect(seen).toEqual([Option.some("pod-7:9000")])
        const stored = Option.getOrThrow(yield* on(cluster.store, singleton.state.inspect))
        expect(stored.holder).toEqual(Option.some("pod-7:9000"))
      }))
  })
})
