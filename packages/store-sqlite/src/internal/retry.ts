/**
 * What to do when another connection holds the database's write lock.
 *
 * better-sqlite3 is synchronous: SQLite's own busy handler sleeps on the event loop's thread, so
 * it is kept short (`busyTimeout`, 2 ms by default) and the store retries asynchronously with
 * jittered, growing delays (about 1 ms, then up to 10 ms) until `retryBusyFor` has passed. Jitter
 * and the short handler keep several processes on one file fair: a long handler lets one process
 * win the lock again and again while the others sleep (measured: 0 / 45k / 2 / 0 ops/s).
 *
 * Delays are real time (`setTimeout`), not the Effect `Clock`: the store waits for another
 * connection, which a test clock does not move.
 *
 * @internal
 */
import * as Store from "@durable-singleton/core/Store"
import * as PlatformError from "@effect/platform/Error"
import * as Effect from "effect/Effect"

/** @internal */
export interface BusyPolicy {
  /** How long to keep retrying, in milliseconds, after the first busy failure. */
  readonly retryForMs: number
}

const firstDelayMs = 1
const maxDelayMs = 10

/** A delay in [cap/2, cap), cap doubling from 1 ms up to 10 ms. */
const delayMs = (attempt: number) => {
  const cap = Math.min(maxDelayMs, firstDelayMs * 2 ** attempt)
  return cap / 2 + Math.random() * cap / 2
}

const sleep = (ms: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), ms)
    return Effect.sync(() => clearTimeout(timer))
  })

/** @internal */
export const isBusy = (error: PlatformError.PlatformError): boolean =>
  error._tag === "SystemError" && error.reason === "Busy"

/**
 * Runs `attempt`, and again while it fails with a `Busy` `SystemError`, until the policy's time
 * is up; then fails with `Busy`, saying how long and how often it tried, the last SQLite error as
 * cause. `attempt` must have changed nothing when it fails (a busy SQLite statement or transaction
 * has not written).
 *
 * @internal
 */
export const retryWhileBusy = <A>(
  policy: BusyPolicy,
  attempt: Effect.Effect<A, PlatformError.PlatformError>
): Effect.Effect<A, PlatformError.PlatformError> =>
  Effect.catchIf(attempt, isBusy, (first) => retryAfterBusy(policy, attempt, first))

/**
 * The retries of {@link retryWhileBusy} after a first attempt failed with `first`: for callers
 * that run their first attempt themselves, so that the common, successful path costs nothing.
 *
 * @internal
 */
export const retryAfterBusy = <A>(
  policy: BusyPolicy,
  attempt: Effect.Effect<A, PlatformError.PlatformError>,
  first: PlatformError.PlatformError
): Effect.Effect<A, PlatformError.PlatformError> => {
  const started = performance.now()
  const deadline = started + policy.retryForMs
  const loop = (retries: number, last: PlatformError.PlatformError): Effect.Effect<A, PlatformError.PlatformError> => {
    const left = deadline - performance.now()
    if (left <= 0) return Effect.fail(exhausted(last, retries, performance.now() - started))
    return Effect.zipRight(
      sleep(Math.min(left, delayMs(retries))),
      Effect.catchIf(attempt, isBusy, (error) => loop(retries + 1, error))
    )
  }
  return loop(0, first)
}

const exhausted = (last: PlatformError.PlatformError, retries: number, elapsedMs: number) =>
  Store.systemError(last.method, last._tag === "SystemError" ? last.cause : last, {
    reason: "Busy",
    description: `the database stayed locked by another connection: ${retries + 1} attempts over ${
      Math.round(elapsedMs)
    } ms (${last.description ?? "SQLITE_BUSY"})`
  })
