/**
 * The one error type of stateful singletons and fenced cron jobs.
 *
 * Every failure of loading, persisting, decoding or fencing singleton state is a
 * `SingletonError` in the error channel, with a `reason` that says what went wrong
 * and whether trying again can help (`isRetryable`).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Predicate from "effect/Predicate"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@durable-singleton/core/SingletonError")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * Every reason, in a stable order.
 *
 * @since 0.1.0
 * @category models
 */
export const reasons = [
  "StateLoadFailed",
  "StatePersistFailed",
  "SchemaDecodeFailed",
  "HeartbeatFailed",
  "LeaderHandoffFailed"
] as const

/**
 * - `StateLoadFailed`: the store could not be read, or what it returned is behind what this
 *   lease already saw acknowledged (the store lost acknowledged writes) (retryable).
 * - `StatePersistFailed`: the store could not be written, or it is unknown whether the write
 *   landed (retryable). The lease learns whether it landed before its next read or write, so no
 *   acknowledged update is lost or applied twice; but re-running a non-idempotent update after
 *   this error applies it again if the first attempt landed: read `get` first, or make updates
 *   idempotent.
 * - `SchemaDecodeFailed`: the stored state is corrupt, has the wrong shape, or was written by
 *   a newer schema version; the stored bytes are left untouched (not retryable). Also a state
 *   produced by the code that does not encode with the schema (`details.direction` =
 *   `"encode"`): nothing was written and nothing stored is wrong.
 * - `HeartbeatFailed`: the heartbeat could not be persisted (retryable).
 * - `LeaderHandoffFailed`: another leader holds the state now (its epoch superseded ours), or
 *   the state was removed; this leader must stop (not retryable).
 *
 * @since 0.1.0
 * @category models
 */
export type Reason = typeof reasons[number]

/**
 * Whether an operation that failed for `reason` may succeed when tried again.
 *
 * @since 0.1.0
 * @category models
 */
export const retryable: { readonly [R in Reason]: boolean } = {
  StateLoadFailed: true,
  StatePersistFailed: true,
  SchemaDecodeFailed: false,
  HeartbeatFailed: true,
  LeaderHandoffFailed: false
}

/**
 * Optional facts that explain the failure.
 *
 * @since 0.1.0
 * @category models
 */
export interface Details {
  /** Human readable detail. */
  readonly description?: string
  /** The epoch the writer holds. */
  readonly expectedEpoch?: number
  /** The epoch found in the store (absent when the state itself is gone). */
  readonly actualEpoch?: number
  /** The schema version found in the store. */
  readonly storedVersion?: number
  /** The newest schema version this code understands. */
  readonly supportedVersion?: number
  /**
   * For `SchemaDecodeFailed`: `"decode"` when stored state cannot be decoded (a stateful
   * singleton parks), `"encode"` when a state the code produced does not encode (nothing was
   * written; the singleton retries its run like any other failure).
   */
  readonly direction?: "decode" | "encode"
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Args {
  readonly singletonName: string
  readonly cause?: unknown
  readonly details?: Details
}

/**
 * @since 0.1.0
 * @category errors
 */
export class SingletonError extends Data.TaggedError("SingletonError")<Args & { readonly reason: Reason }> {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * Whether trying again may succeed (see {@link retryable}).
   *
   * @since 0.1.0
   */
  get isRetryable(): boolean {
    return retryable[this.reason]
  }

  /**
   * @since 0.1.0
   */
  override get message(): string {
    const d = this.details
    const parts: Array<string> = []
    if (d?.description !== undefined) parts.push(d.description)
    if (d?.expectedEpoch !== undefined) {
      parts.push(`expected epoch ${d.expectedEpoch}, found ${d.actualEpoch ?? "no state"}`)
    }
    if (d?.storedVersion !== undefined) {
      parts.push(`stored schema version ${d.storedVersion}, supported up to ${d.supportedVersion ?? "?"}`)
    }
    const cause = this.cause === undefined ? undefined : describeCause(this.cause)
    if (cause !== undefined) parts.push(`cause: ${cause}`)
    return `${this.reason} (singleton "${this.singletonName}")${parts.length > 0 ? `: ${parts.join("; ")}` : ""}`
  }

  /**
   * @since 0.1.0
   * @category constructors
   */
  static StateLoadFailed(args: Args): SingletonError {
    return new SingletonError({ ...args, reason: "StateLoadFailed" })
  }

  /**
   * @since 0.1.0
   * @category constructors
   */
  static StatePersistFailed(args: Args): SingletonError {
    return new SingletonError({ ...args, reason: "StatePersistFailed" })
  }

  /**
   * @since 0.1.0
   * @category constructors
   */
  static SchemaDecodeFailed(args: Args): SingletonError {
    return new SingletonError({ ...args, reason: "SchemaDecodeFailed" })
  }

  /**
   * @since 0.1.0
   * @category constructors
   */
  static HeartbeatFailed(args: Args): SingletonError {
    return new SingletonError({ ...args, reason: "HeartbeatFailed" })
  }

  /**
   * @since 0.1.0
   * @category constructors
   */
  static LeaderHandoffFailed(args: Args): SingletonError {
    return new SingletonError({ ...args, reason: "LeaderHandoffFailed" })
  }
}

/**
 * @since 0.1.0
 * @category refinements
 */
export const isSingletonError = (u: unknown): u is SingletonError => Predicate.hasProperty(u, TypeId)

/**
 * Whether `u` is a `SingletonError` that may succeed when tried again.
 *
 * @since 0.1.0
 * @category refinements
 */
export const isRetryable = (u: unknown): u is SingletonError => isSingletonError(u) && u.isRetryable

const describeCause = (cause: unknown): string | undefined => {
  if (Predicate.hasProperty(cause, "message") && typeof cause.message === "string" && cause.message !== "") {
    return cause.message
  }
  if (typeof cause === "string") return cause
  return undefined
}
