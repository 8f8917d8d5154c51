/**
 * One execution of user code under a lease, as a stateful singleton's `run` and a fenced cron
 * tick's `execute` both need it: the handler context, metrics, supersession, heartbeat.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as DateTime from "effect/DateTime"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as FencedState from "../FencedState.js"
import * as SingletonContext from "../SingletonContext.js"
import type { SingletonError } from "../SingletonError.js"
import * as SingletonMetrics from "../SingletonMetrics.js"
import * as instrument from "./instrument.js"

/** Where and as what the code runs (the handler context, less what the lease tells). @internal */
export interface Placement {
  readonly kind: SingletonContext.Service["kind"]
  readonly runnerAddress: Option.Option<string>
  readonly shardId: Option.Option<string>
  readonly ownsShard: Effect.Effect<boolean>
  readonly tick: Option.Option<DateTime.Utc>
}

/** How an execution ended; each outcome has been counted in `executions_total`. @internal */
export type Outcome =
  | { readonly _tag: "Succeeded" }
  | { readonly _tag: "Failed"; readonly cause: Cause.Cause<unknown> }
  | { readonly _tag: "Superseded"; readonly error: Option.Option<SingletonError> }

/**
 * Runs `body` with the instrumented lease and the handler context, then persists the heartbeat
 * if it succeeded. As soon as any operation of the lease learns that another claim superseded
 * it, `body` is interrupted, even if it swallowed that error and carried on.
 *
 * @internal
 */
export const run = <A, E, R>(
  lease: FencedState.Lease<A>,
  placement: Placement,
  body: (state: FencedState.Lease<A>) => Effect.Effect<void, E, R>
): Effect.Effect<Outcome, never, Exclude<R, Scope.Scope | SingletonContext.SingletonContext>> =>
  Effect.gen(function*() {
    const name = lease.name
    const superseded = yield* Deferred.make<SingletonError>()
    const handle = instrument.lease(lease, (error) => Deferred.succeed(superseded, error))
    const context = SingletonContext.SingletonContext.of({
      name,
      kind: placement.kind,
      epoch: lease.epoch,
      token: lease.token,
      isLeader: Effect.zipWith(placement.ownsShard, lease.isCurrent, (owns, current) => owns && current),
      runnerAddress: placement.runnerAddress,
      shardId: placement.shardId,
      tick: placement.tick
    })
    const count = (outcome: SingletonMetrics.ExecutionOutcome) => Metric.increment(SingletonMetrics.executionsOf(name, outcome))
    const supersededBy = (error: Option.Option<SingletonError>) =>
      Effect.as(count("superseded"), { _tag: "Superseded", error } as const)
    const failed = (cause: Cause.Cause<unknown>) => Effect.as(count("failure"), { _tag: "Failed", cause } as const)

    const started = yield* Clock.currentTimeMillis
    const exit = yield* Effect.raceFirst(
      Effect.exit(
        Effect.scoped(body(handle)).pipe(Effect.provideService(SingletonContext.SingletonContext, context))
      ),
      Effect.as(Deferred.await(superseded), "superseded" as const)
    )
    const finished = yield* Clock.currentTimeMillis
    yield* Metric.update(SingletonMetrics.executionDurationOf(name), (finished - started) / 1000)

    if (exit === "superseded" || !(yield* lease.isCurrent)) {
      const error = yield* Deferred.poll(superseded)
      return yield* supersededBy(Option.isSome(error) ? Option.some(yield* error.value) : Option.none())
    }
    if (Exit.isFailure(exit)) return yield* failed(exit.cause)
    const beat = yield* Effect.either(handle.heartbeat)
    if (beat._tag === "Left") {
      return yield* (yield* lease.isCurrent) ? failed(Cause.fail(beat.left)) : supersededBy(Option.some(beat.left))
    }
    yield* count("success")
    yield* instrument.seedGauge(name, lease)
    return { _tag: "Succeeded" } as const
  }) as Effect.Effect<Outcome, never, Exclude<R, Scope.Scope | SingletonContext.SingletonContext>>
