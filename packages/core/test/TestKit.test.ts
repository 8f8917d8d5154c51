import { SingletonContext, StatefulSingleton, Store, TestKit } from "@durable-singleton/core"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Clock, Effect, Fiber, Layer, Option, Schema, TestClock } from "effect"

interface Event {
  readonly at: number
  readonly what: string
}

// A singleton that logs when it starts and stops on which runner, and writes every second.
const tracked = (name: string) => {
  const events: Array<Event> = []
  const log = (what: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.sync(() => events.push({ at, what })))
  const singleton = StatefulSingleton.make({
    name,
    schema: Schema.Number,
    initial: 0,
    run: (state) =>
      Effect.gen(function*() {
        const context = yield* SingletonContext.SingletonContext
        const runner = Option.getOrThrow(context.runnerAddress).split(":")[0]!
        yield* log(`start ${runner} e${context.epoch}`)
        yield* Effect.addFinalizer(() => log(`stop ${runner}`))
        while (true) {
          yield* state.update((n) => n + 1)
          yield* Effect.sleep("1 second")
        }
      })
  })
  return { singleton, events }
}

describe("TestKit", () => {
  describe("the simulated clock", () => {
    it.scoped("wakes sleepers in deadline order at their deadlines, chained sleeps included, through TestClock", () =>
      Effect.gen(function*() {
        yield* TestKit.make({ layer: Layer.empty })
        const woke: Array<[string, number]> = []
        const sleeper = (label: string, millis: number) =>
          Effect.zipRight(
            Effect.sleep(millis),
            Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => woke.push([label, now])))
          )
        yield* Effect.fork(sleeper("c", 3000))
        yield* Effect.fork(sleeper("a", 1000))
        yield* Effect.fork(Effect.zipRight(sleeper("b1", 1500), sleeper("b2", 1000)))
        yield* Effect.fork(sleeper("late", 10_000))
        yield* TestClock.adjust(0)
        expect(Chunk.toReadonlyArray(yield* TestClock.sleeps()).slice().sort()).toEqual([1000, 10_000, 1500, 3000].sort())
        yield* TestClock.adjust("5 seconds")
        expect(woke).toEqual([["a", 1000], ["b1", 1500], ["b2", 2500], ["c", 3000]])
        expect(yield* Clock.currentTimeMillis).toBe(5000)
        yield* TestClock.setTime(10_000)
        expect(woke[woke.length - 1]).toEqual(["late", 10_000])
      }))

    it.effect("runs the same cluster scenario identically every time", () =>
      Effect.gen(function*() {
        const scenario = Effect.scoped(Effect.gen(function*() {
          const { events, singleton } = tracked("deterministic")
          const cluster = yield* TestKit.make({ layer: singleton, runners: ["a", "b", "c"] })
          yield* cluster.advance("5 seconds")
          yield* cluster.partition(cluster.owners(singleton.name)[0]!)
          yield* cluster.advance("10 seconds")
          for (const runner of ["a", "b", "c"]) yield* cluster.heal(runner)
          yield* cluster.advance("10 seconds")
          yield* cluster.stop(cluster.owners(singleton.name)[0]!)
          yield* cluster.advance("5 seconds")
          return events.map((event) => `${event.at} ${event.what}`)
        }))
        const first = yield* scenario
        expect(first.length).toBeGreaterThanOrEqual(6)
        expect(yield* scenario).toEqual(first)
      }))
  })

  it.scoped("a graceful stop hands over within about a second, the old leader stopped first", () =>
    Effect.gen(function*() {
      const { events, singleton } = tracked("graceful")
      const cluster = yield* TestKit.make({ layer: singleton, runners: ["a", "b"] })
      yield* cluster.advance("5 seconds")
      const leader = cluster.owners(singleton.name)[0]!
      const stoppedAt = yield* Clock.currentTimeMillis
      yield* cluster.stop(leader)
      yield* cluster.advance("5 seconds")
      const stop = events.find((event) => event.what === `stop ${leader}`)!
      const start = events.find((event) => event.what.startsWith("start") && !event.what.startsWith(`start ${leader}`))!
      expect(start.at).toBeGreaterThanOrEqual(stop.at)
      expect(start.at - stoppedAt).toBeLessThanOrEqual(2_000)
      expect(cluster.running()).toEqual([leader === "a" ? "b" : "a"])
    }))

  it.scoped("a partitioned leader stops, and another runner takes over only after its shard lock expired", () =>
    Effect.gen(function*() {
      const { events, singleton } = tracked("partitioned")
      const cluster = yield* TestKit.make({ layer: singleton, runners: ["a", "b"] })
      yield* cluster.advance("5 seconds")
      const leader = cluster.owners(singleton.name)[0]!
      const other = leader === "a" ? "b" : "a"
      const cutAt = yield* Clock.currentTimeMillis
      yield* cluster.partition(leader, { store: false })
      yield* cluster.advance("3 seconds")
      expect(cluster.owners(singleton.name)).toEqual([]) // the leader gave up, nobody else may lead yet
      expect(events.some((event) => event.what === `stop ${leader}`)).toBe(true)
      yield* cluster.advance("5 seconds")
      expect(cluster.owners(singleton.name)).toEqual([other])
      const takeover = events.find((event) => event.what.startsWith(`start ${other}`))!
      expect(takeover.at - cutAt).toBeGreaterThanOrEqual(4_000) // lock expiry
      expect(takeover.at - cutAt).toBeLessThanOrEqual(6_000)
    }))

  it.scoped("a partitioned runner's store requests are held back and delivered in order at heal, even abandoned ones", () =>
    Effect.gen(function*() {
      const stores: Array<Store.Store> = []
      const capture = Layer.effectDiscard(Effect.map(Store.Store, (store) => stores.push(store)))
      const cluster = yield* TestKit.make({ layer: capture, runners: ["a"] })
      const store = stores[0]! // runner a's own client
      yield* cluster.partition("a")
      const first = yield* Effect.fork(store.set("k", "1"))
      const abandoned = yield* Effect.fork(store.modify("k", (v) => `${v}+2`))
      yield* cluster.advance("1 minute")
      expect(yield* cluster.store.get("k")).toEqual(Option.none())
      yield* Fiber.interrupt(abandoned)
      yield* cluster.heal("a")
      yield* Fiber.join(first)
      expect(yield* cluster.store.get("k")).toEqual(Option.some("1+2"))
      // after heal, requests go straight through
      yield* store.set("k", "3")
      expect(yield* cluster.store.get("k")).toEqual(Option.some("3"))
    }))

  it.scoped("start and stop are idempotent; a stopped runner can start again", () =>
    Effect.gen(function*() {
      const { events, singleton } = tracked("restart")
      const cluster = yield* TestKit.make({ layer: singleton, runners: ["a"] })
      yield* cluster.start("a")
      yield* cluster.advance("2 seconds")
      yield* cluster.stop("a")
      yield* cluster.stop("a")
      expect(cluster.running()).toEqual([])
      yield* cluster.start("a")
      yield* cluster.advance("2 seconds")
      expect(events.map((event) => event.what)).toEqual(["start a e1", "stop a", "start a e2"])
    }))
})
