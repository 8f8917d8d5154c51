/**
 * Test your singletons and cron jobs in one process, with the real `@effect/cluster` machinery:
 * several runners (each its own `Sharding`, shard locks, message storage and store client) over
 * one shared lock-aware runner storage, one shared message storage and one shared in-memory
 * store, on a simulated clock.
 *
 * - `start` / `stop` a runner (graceful: its singletons stop, its locks are released, another
 *   runner takes over);
 * - `partition` a runner: its runner-storage calls hang (its shard locks expire, another runner
 *   takes over) and its store requests are held back, then delivered in order at `heal`, even
 *   those whose caller gave up: a stale leader's write really reaches the store late, as after
 *   a network delay or a paused process, and fencing must reject it;
 * - `advance` the clock. The kit installs a simulated clock for the rest of the scope that
 *   implements `TestClock`, so `TestClock.adjust` works too; it lets everything settle after
 *   each wake-up without waiting on wall-clock time, so a minute of two runners' cluster time
 *   takes about a tenth of a second (with `TestClock`'s own implementation, several seconds)
 *   and runs identically every time.
 *
 * Cluster timings are short by default (lock refresh 1 s, expiry 4 s): a handoff after a
 * partition takes about 5 seconds of simulated time, after a graceful stop about 1 second.
 *
 * @example
 * ```ts
 * import { StatefulSingleton, TestKit } from "@durable-singleton/core"
 * import { it } from "@effect/vitest"
 * import { Effect, Option, Schema } from "effect"
 *
 * const Counter = StatefulSingleton.make({
 *   name: "counter", schema: Schema.Number, initial: 0, every: "1 second",
 *   run: (state) => state.update((n) => n + 1)
 * })
 *
 * it.scoped("the count survives a handoff", () =>
 *   Effect.gen(function*() {
 *     const cluster = yield* TestKit.make({ layer: Counter, runners: ["a", "b"] })
 *     yield* cluster.advance("10 seconds")
 *     yield* cluster.stop(cluster.owners(Counter.name)[0]!) // graceful: another runner takes over
 *     yield* cluster.advance("10 seconds")
 *     const stored = Option.getOrThrow(yield* TestKit.stateOf(cluster, Counter))
 *     // stored.epoch === 2, stored.state: every increment acknowledged by either leader
 *   }))
 * ```
 *
 * @since 0.1.0
 */
import * as EntityId from "@effect/cluster/EntityId"
import * as MessageStorage from "@effect/cluster/MessageStorage"
import * as RunnerAddress from "@effect/cluster/RunnerAddress"
import * as RunnerHealth from "@effect/cluster/RunnerHealth"
import * as Runners from "@effect/cluster/Runners"
import * as RunnerStorage from "@effect/cluster/RunnerStorage"
import * as Sharding from "@effect/cluster/Sharding"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as Snowflake from "@effect/cluster/Snowflake"
import type * as PlatformError from "@effect/platform/Error"
import type * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import type * as FencedState from "./FencedState.js"
import * as lockingRunnerStorage from "./internal/runnerStorage.js"
import * as simulation from "./internal/simulation.js"
import * as MemoryStore from "./MemoryStore.js"
import type { SingletonError } from "./SingletonError.js"
import * as Store from "./Store.js"

/**
 * What each runner provides to the layer it runs. `ShardingConfig` is visible, so the runtime
 * learns the runner's address from it.
 *
 * @since 0.1.0
 * @category models
 */
export type RunnerServices =
  | Sharding.Sharding
  | ShardingConfig.ShardingConfig
  | Store.Store
  | KeyValueStore.KeyValueStore

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<E> {
  /** What every runner runs: your singletons, cron jobs and entities. */
  readonly layer: Layer.Layer<never, E, RunnerServices>
  /** Runners started by `make`, in order (each name is the runner's host). Default none. */
  readonly runners?: ReadonlyArray<string>
  /** The shared store storage; a fresh one by default. */
  readonly storage?: MemoryStore.Storage
  /** The store namespace of every runner's client; default `"default"`. */
  readonly namespace?: string
  /**
   * Wraps each runner's store backend, e.g. to inject failures (see `MemoryStore.makeBackend`).
   * The partition gate is applied around the wrapped backend.
   */
  readonly backend?: (backend: Store.Backend, runner: string) => Store.Backend
  /** Default 8. */
  readonly shardsPerGroup?: number
  /** Default 1 second. */
  readonly shardLockRefreshInterval?: Duration.DurationInput
  /** Default 4 seconds. */
  readonly shardLockExpiration?: Duration.DurationInput
  /** Also the period of the shard acquisition loop. Default 500 ms. */
  readonly entityMessagePollInterval?: Duration.DurationInput
  /** Default 500 ms. */
  readonly refreshAssignmentsInterval?: Duration.DurationInput
  /** Default 2 seconds. */
  readonly entityTerminationTimeout?: Duration.DurationInput
}

/**
 * @since 0.1.0
 * @category models
 */
export interface TestCluster<E> {
  /** The store storage shared by every runner. */
  readonly storage: MemoryStore.Storage
  /** A store client of the test itself: never partitioned, for reading and tampering. */
  readonly store: Store.Store
  /** The cluster's shared message storage (cron ticks and other persisted messages). */
  readonly messages: MessageStorage.MemoryDriver
  /** Starts a runner (a new name, or one stopped before) and lets it settle. */
  readonly start: (runner: string) => Effect.Effect<void, E>
  /**
   * Stops a runner gracefully (advancing the clock until its finalizers are done). A
   * partitioned runner is healed first: its cluster finalizers need the runner storage.
   */
  readonly stop: (runner: string) => Effect.Effect<void>
  /**
   * Cuts a runner off: its runner-storage calls hang until `heal`, and (unless `store: false`)
   * its store requests are held back and delivered in order at `heal`.
   */
  readonly partition: (runner: string, options?: { readonly store?: boolean }) => Effect.Effect<void>
  /** Delivers the held-back store requests in order, then reconnects the runner. */
  readonly heal: (runner: string) => Effect.Effect<void>
  /** Advances the simulated clock, letting everything due run in order. */
  readonly advance: (duration: Duration.DurationInput) => Effect.Effect<void>
  /** The runners currently running. */
  readonly running: () => ReadonlyArray<string>
  /** The running runners that believe they own the shard of `name` (a singleton or entity id). */
  readonly owners: (name: string, shardGroup?: string) => ReadonlyArray<string>
  /** The `Sharding` of a running runner. */
  readonly sharding: (runner: string) => Option.Option<Sharding.Sharding["Type"]>
  /**
   * Forgets the replies of the processed persisted messages to an entity, as when a reply is
   * lost with its shard: the runner that owns the shard next delivers them again (the runner
   * that processed them remembers them and does not). For a cron tick: entity type
   * `ClusterCron/<name>`, entity id the ISO time of the tick. Returns how many messages.
   */
  readonly redeliver: (address: { readonly entityType: string; readonly entityId: string }) => Effect.Effect<number>
}

/**
 * The port of every runner's address (runners differ by host).
 *
 * @since 0.1.0
 * @category constants
 */
export const runnerPort = 34431

/**
 * The address a runner announces, as the runtime records it (`host:port`).
 *
 * @since 0.1.0
 * @category utils
 */
export const addressOf = (runner: string): string => `${runner}:${runnerPort}`

interface RunnerState {
  readonly name: string
  running: Option.Option<{ readonly scope: Scope.CloseableScope; readonly sharding: Sharding.Sharding["Type"] }>
  readonly storageGate: Effect.Latch
  storeCut: boolean
  heldBack: Array<Effect.Effect<void>>
}

/**
 * Builds the simulated cluster (and installs the simulated clock) for the rest of the scope;
 * closing the scope stops every runner.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <E = never>(options: Options<E>): Effect.Effect<TestCluster<E>, E, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* simulation.install
    const storage = options.storage ?? MemoryStore.makeStorage()
    const namespace = options.namespace ?? "default"
    const shardLockExpiration = Duration.decode(options.shardLockExpiration ?? Duration.seconds(4))
    const shared = yield* Layer.build(Layer.mergeAll(
      Layer.effect(RunnerStorage.RunnerStorage, lockingRunnerStorage.make(Duration.toMillis(shardLockExpiration))),
      MessageStorage.MemoryDriver.Default
    ))
    const sharedRunnerStorage = Context.get(shared, RunnerStorage.RunnerStorage)
    const messages = Context.get(shared, MessageStorage.MemoryDriver)
    const store = yield* MemoryStore.make({ storage, namespace })
    const runners = new Map<string, RunnerState>()

    const stateOf = (name: string): RunnerState => {
      let runner = runners.get(name)
      if (runner === undefined) {
        runner = { name, running: Option.none(), storageGate: Effect.unsafeMakeLatch(true), storeCut: false, heldBack: [] }
        runners.set(name, runner)
      }
      return runner
    }

    const runnerLayer = (runner: RunnerState) => {
      const config = ShardingConfig.layer({
        runnerAddress: Option.some(RunnerAddress.make(runner.name, runnerPort)),
        shardsPerGroup: options.shardsPerGroup ?? 8,
        shardLockRefreshInterval: options.shardLockRefreshInterval ?? Duration.seconds(1),
        shardLockExpiration,
        entityMessagePollInterval: options.entityMessagePollInterval ?? Duration.millis(500),
        refreshAssignmentsInterval: options.refreshAssignmentsInterval ?? Duration.millis(500),
        entityTerminationTimeout: options.entityTerminationTimeout ?? Duration.seconds(2)
      })
      const messageStorage = Layer.effect(MessageStorage.MessageStorage, MessageStorage.makeEncoded(messages.encoded))
        .pipe(Layer.provide(Snowflake.layerGenerator))
      const sharding = Sharding.layer.pipe(
        Layer.provideMerge(Runners.layerNoop),
        Layer.provideMerge(messageStorage),
        Layer.provide(Layer.succeed(RunnerStorage.RunnerStorage, gateRunnerStorage(sharedRunnerStorage, runner.storageGate))),
        Layer.provide(RunnerHealth.layerNoop),
        Layer.provideMerge(config)
      )
      const wrap = options.backend ?? ((backend: Store.Backend) => backend)
      const runnerStore = Store.layer(Effect.map(MemoryStore.makeBackend({ storage, namespace }), (backend) =>
        gateBackend(wrap(backend, runner.name), runner)))
      return options.layer.pipe(Layer.provideMerge(Layer.merge(sharding, runnerStore)))
    }

    const settle = clock.adjust(Duration.zero)

    const start = (name: string) =>
      Effect.gen(function*() {
        const runner = stateOf(name)
        if (Option.isSome(runner.running)) return
        // Not a child of the kit's scope: closing that must go through `stop`, which keeps the
        // clock moving while the runner's finalizers run.
        const scope = yield* Scope.make()
        const context = yield* Effect.onError(
          Layer.buildWithScope(runnerLayer(runner), scope),
          (cause) => Scope.close(scope, Exit.failCause(cause))
        )
        runner.running = Option.some({ scope, sharding: Context.get(context, Sharding.Sharding) })
        yield* settle
      })

    const heal = (name: string) =>
      Effect.gen(function*() {
        const runner = stateOf(name)
        runner.storeCut = false
        while (runner.heldBack.length > 0) {
          yield* runner.heldBack.shift()!
        }
        yield* runner.storageGate.open
        yield* settle
      })

    const partition = (name: string, partitionOptions?: { readonly store?: boolean }) =>
      Effect.gen(function*() {
        const runner = stateOf(name)
        yield* runner.storageGate.close
        if (partitionOptions?.store !== false) runner.storeCut = true
        yield* settle
      })

    const stop = (name: string) =>
      Effect.gen(function*() {
        const runner = stateOf(name)
        if (Option.isNone(runner.running)) return
        yield* heal(name)
        const closing = yield* Effect.fork(Scope.close(runner.running.value.scope, Exit.void))
        // Finalizers may sleep (entity termination, singleton cleanup): keep time moving.
        for (let step = 0; step < maxStopSteps; step++) {
          if (Option.isSome(yield* Fiber.poll(closing))) break
          yield* clock.adjust(stopStep)
        }
        if (Option.isNone(yield* Fiber.poll(closing))) {
          return yield* Effect.dieMessage(
            `TestKit: runner "${name}" did not stop within ${Duration.format(Duration.times(stopStep, maxStopSteps))} ` +
              "of simulated time (an uninterruptible region that never ends?)"
          )
        }
        runner.running = Option.none()
      })

    const owners = (name: string, shardGroup = "default") =>
      Array.from(runners.values()).flatMap((runner) => {
        if (Option.isNone(runner.running)) return []
        const sharding = runner.running.value.sharding
        return sharding.hasShardId(sharding.getShardId(EntityId.make(name), shardGroup)) ? [runner.name] : []
      })

    yield* Effect.addFinalizer(() =>
      Effect.forEach(Array.from(runners.keys()), stop, { discard: true })
    )

    for (const name of options.runners ?? []) yield* start(name)

    return {
      storage,
      store,
      messages,
      start,
      stop,
      partition,
      heal,
      advance: (duration) => clock.adjust(duration),
      running: () => Array.from(runners.values()).filter((runner) => Option.isSome(runner.running)).map((r) => r.name),
      owners,
      sharding: (name) => Option.map(stateOf(name).running, (running) => running.sharding),
      redeliver: (address) =>
        Effect.gen(function*() {
          let count = 0
          for (const [requestId, entry] of messages.requests) {
            const target = entry.envelope.address
            if (target.entityType !== address.entityType || target.entityId !== address.entityId) continue
            if (entry.replies.length === 0) continue
            yield* Effect.orDie(messages.encoded.clearReplies(Snowflake.Snowflake(requestId)))
            count++
          }
          return count
        })
    } satisfies TestCluster<E>
  })

/**
 * Reads a singleton's or cron job's state through the test's own store client.
 *
 * @since 0.1.0
 * @category utils
 */
export const stateOf = <A>(
  cluster: TestCluster<unknown>,
  target: FencedState.FencedState<A> | { readonly state: FencedState.FencedState<A> }
): Effect.Effect<Option.Option<FencedState.Snapshot<A>>, SingletonError> =>
  Effect.provideService(("claim" in target ? target : target.state).read, Store.Store, cluster.store)

const stopStep = Duration.millis(100)
const maxStopSteps = 6000

const gateRunnerStorage = (
  storage: RunnerStorage.RunnerStorage["Type"],
  gate: Effect.Latch
): RunnerStorage.RunnerStorage["Type"] => {
  const gated = <A, E>(effect: Effect.Effect<A, E>) => Effect.zipRight(gate.await, effect)
  return {
    register: (runner, healthy) => gated(storage.register(runner, healthy)),
    unregister: (address) => gated(storage.unregister(address)),
    getRunners: gated(storage.getRunners),
    setRunnerHealth: (address, healthy) => gated(storage.setRunnerHealth(address, healthy)),
    acquire: (address, shardIds) => gated(storage.acquire(address, shardIds)),
    refresh: (address, shardIds) => gated(storage.refresh(address, shardIds)),
    release: (address, shardId) => gated(storage.release(address, shardId)),
    releaseAll: (address) => gated(storage.releaseAll(address))
  }
}

// While the runner is cut off, a request waits in `heldBack` and is delivered at heal, whether
// or not its caller is still waiting for the answer.
const gateBackend = (backend: Store.Backend, runner: RunnerState): Store.Backend =>
  Store.mapBackend(backend, (_, request) => gated(runner, request))

const gated = <A>(runner: RunnerState, request: Effect.Effect<A, PlatformError.PlatformError>) =>
  Effect.suspend(() => {
    if (!runner.storeCut) return request
    return Effect.flatMap(Deferred.make<A, PlatformError.PlatformError>(), (answer) => {
      runner.heldBack.push(Effect.asVoid(Effect.intoDeferred(request, answer)))
      return Deferred.await(answer)
    })
  })
