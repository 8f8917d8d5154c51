// Small helpers shared by the runtime tests.
import { FencedState, SingletonError, SingletonMetrics, Store } from "@durable-singleton/core"
import { Cause, Effect, Exit, Metric, Option } from "effect"

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

