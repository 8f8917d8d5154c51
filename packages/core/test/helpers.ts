// Small helpers shared by the runtime tests.
import { FencedState, MemoryStore, SingletonError, SingletonMetrics, Store } from "@durable-singleton/core"
import { Cause, Effect, Exit, FastCheck as fc, Metric, Option } from "effect"

export const count = (metric: SingletonMetrics.Counter) => Effect.map(Metric.value(metric), (state) => state.count)

export const gauge = (metric: SingletonMetrics.Gauge) => Effect.map(Metric.value(metric), (state) => state.value)

export const errorOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

export const reasonOf = <A>(exit: Exit.Exit<A, SingletonError.SingletonError>) => errorOf(exit)?.reason

/** Runs an effect that needs a store against the given client. */
export const on = <A, E>(store: Store.Store, effect: Effect.Effect<A, E, Store.Store>) =>
  Effect.provideService(effect, Store.Store, store)

/** The decoded state, if any, read through `store`. */
export const stateIn = <A>(store: Store.Store, state: FencedState.FencedState<A>) =>
  Effect.map(on(store, state.read), Option.map((snapshot) => snapshot.state))

/** What goes wrong with the `modifyOrInit` calls of a {@link faulty} backend; change it at any time. */
export interface Faults {
  /** The next this many writes fail without being applied (a lost request); `Infinity`: an outage. */
  lostRequests: number
  /** The next this many writes are applied, then fail (a lost acknowledgement). */
  lostAcks: number
  /** Every write waits this long (on the Effect clock) before it is sent. */
  delayMillis: number
}

export const noFaults = (): Faults => ({ lostRequests: 0, lostAcks: 0, delayMillis: 0 })

/** A backend whose writes to the keys `only` accepts (default all) suffer `faults`. */
export const faulty = (
  backend: Store.Backend,
  faults: Faults,
  only: (key: string) => boolean = () => true
): Store.Backend => ({
  ...backend,
  modifyOrInit: (key, f) =>
    Effect.suspend(() => {
      if (!only(key)) return backend.modifyOrInit(key, f)
      const write = faults.delayMillis > 0
        ? Effect.zipRight(Effect.sleep(faults.delayMillis), backend.modifyOrInit(key, f))
        : backend.modifyOrInit(key, f)
      if (faults.lostRequests > 0) {
        faults.lostRequests--
        return Effect.fail(Store.systemError("modifyOrInit", new Error("lost request")))
      }
      if (faults.lostAcks > 0) {
        faults.lostAcks--
        return Effect.zipRight(write, Effect.fail(Store.systemError("modifyOrInit", new Error("lost acknowledgement"))))
      }
      return write
    })
})

/** A client of `storage` (scoped) whose writes suffer `faults`. */
export const faultyClient = (storage: MemoryStore.Storage, faults: Faults, only?: (key: string) => boolean) =>
  Effect.map(MemoryStore.makeBackend({ storage }), (backend) => Store.make(faulty(backend, faults, only)))

/**
 * fast-check parameters for a property test: `numRuns`, the seed and path to replay from
 * `FC_SEED` / `FC_PATH`, and a failure report that says how to replay it:
 *   FC_SEED=<seed> FC_PATH=<path> pnpm test --project core <file> -t "<name>"
 */
export const replayable = <T>(file: string, name: string, numRuns: number): fc.Parameters<T> => {
  const seed = process.env.FC_SEED
  const path = process.env.FC_PATH
  return {
    numRuns,
    ...(seed === undefined || seed === "" ? {} : { seed: Number(seed) }),
    ...(path === undefined || path === "" ? {} : { path }),
    reporter: (details) => {
      if (!details.failed) return
      throw new Error(
        `${fc.defaultReportMessage(details)}\n` +
          `replay: FC_SEED=${details.seed} FC_PATH=${details.counterexamplePath} ` +
          `pnpm test --project core ${file} -t ${JSON.stringify(name)}`
      )
    }
  }
}
