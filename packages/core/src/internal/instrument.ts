/**
 * Metrics and supersession detection around a lease: what the runtime hands to user code.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as FencedState from "../FencedState.js"
import type { SingletonError } from "../SingletonError.js"
import * as SingletonMetrics from "../SingletonMetrics.js"

/** @internal */
export const countOperation = (name: string, operation: SingletonMetrics.Operation) =>
  Metric.increment(SingletonMetrics.stateOperationsOf(name, operation))

/** @internal */
export const countError = (name: string, error: SingletonError) =>
  Metric.increment(SingletonMetrics.stateErrorsOf(name, error.reason))

/** Counts the operation and, when it fails, its error reason. @internal */
export const counted = <A, R>(
  name: string,
  operation: SingletonMetrics.Operation,
  effect: Effect.Effect<A, SingletonError, R>
): Effect.Effect<A, SingletonError, R> =>
  Effect.zipRight(countOperation(name, operation), Effect.tapError(effect, (error) => countError(name, error)))

/**
 * Wraps every operation of `lease` with the state metrics, and calls `onSuperseded` as soon as
 * any of them learns that another leader took over (even if user code swallows the error).
 *
 * @internal
 */
export const lease = <A>(
  lease: FencedState.Lease<A>,
  onSuperseded: (error: SingletonError) => Effect.Effect<unknown>
): FencedState.Lease<A> => {
  const op = <B>(operation: SingletonMetrics.Operation, effect: Effect.Effect<B, SingletonError>) =>
    counted(lease.name, operation, effect).pipe(
      Effect.tapError((error) => error.reason === "LeaderHandoffFailed" ? onSuperseded(error) : Effect.void)
    )
  return {
    name: lease.name,
    epoch: lease.epoch,
    token: lease.token,
    get: op("read", lease.get),
    lastSuccessAt: lease.lastSuccessAt,
    update: (f) => op("update", lease.update(f)),
    modify: (f) => op("update", lease.modify(f)),
    set: (state) => op("update", lease.set(state)),
    heartbeat: op("heartbeat", lease.heartbeat),
    verify: op("verify", lease.verify),
    isCurrent: lease.isCurrent
  }
}

/** Sets the last-success gauge from what the lease knows (the stored heartbeat). @internal */
export const seedGauge = <A>(name: string, lease: FencedState.Lease<A>): Effect.Effect<void> =>
  Effect.flatMap(lease.lastSuccessAt, (lastSuccessAt) =>
    Option.match(lastSuccessAt, {
      onNone: () => Effect.void,
      onSome: (millis) => Metric.set(SingletonMetrics.lastSuccessOf(name), millis / 1000)
    }))
