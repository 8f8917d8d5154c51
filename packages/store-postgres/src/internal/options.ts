/**
 * Validation of the store's numeric options: each is checked before anything is sent, and a bad
 * one fails with `BadArgument` (never a defect, never a silently different setting).
 *
 * @internal
 */
import { Store } from "@durable-singleton/core"
import type * as PlatformError from "@effect/platform/Error"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

/**
 * The longest timeout, in milliseconds, that both PostgreSQL's settings (an int32 of
 * milliseconds) and Node's timers (which turn anything longer into 1 ms) accept: about 24.8 days.
 */
export const maxTimeoutMillis = 2_147_483_647

/**
 * A timeout option in whole milliseconds, `0` meaning none, as PostgreSQL's settings and `pg`'s
 * timers read it: `Duration.infinity` and zero are `0`, and a positive duration rounds up (half a
 * millisecond must not become "none"). Anything that is not a duration, negative (which Effect's
 * `Duration` would silently turn into zero) or longer than {@link maxTimeoutMillis} is refused.
 */
export const timeoutMillis = (
  name: string,
  input: Duration.DurationInput
): number | PlatformError.PlatformError => {
  const bad = (why: string) => Store.badArgument("make", `${name} ${why}, got ${show(input)}`)
  if (isNegative(input)) return bad("must not be negative")
  const decoded = Duration.decodeUnknown(input)
  if (Option.isNone(decoded)) return bad("is not a duration")
  const millis = Duration.toMillis(decoded.value)
  if (millis === Infinity) return 0
  if (millis > maxTimeoutMillis) {
    return bad(`must be at most ${maxTimeoutMillis} ms (about 24.8 days), or Duration.infinity for none`)
  }
  return Math.ceil(millis)
}

const isNegative = (input: unknown): boolean =>
  (typeof input === "number" && !(input >= 0)) || // NaN too
  (typeof input === "bigint" && input < 0n) ||
  (Array.isArray(input) && input.some((part) => typeof part === "number" && !(part >= 0))) ||
  (typeof input === "string" && input.trimStart().startsWith("-"))

const show = (input: unknown): string =>
  Duration.isDuration(input) ? Duration.format(input) : typeof input === "bigint" ? `${input}n` : String(input)

/** An integer option within `[min, max]`. */
export const integer = (
  name: string,
  value: unknown,
  min: number,
  max = Number.MAX_SAFE_INTEGER
): number | PlatformError.PlatformError =>
  Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= max
    ? value as number
    : Store.badArgument("make", `${name} must be an integer from ${min} to ${max}, got ${String(value)}`)
