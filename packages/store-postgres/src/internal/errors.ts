/**
 * Failures of the store as `PlatformError`s, with the driver's error wrapped in a `SqlError` as
 * the cause.
 *
 * @internal
 */
import { Store } from "@durable-singleton/core"
import type * as PlatformError from "@effect/platform/Error"
import { SqlError } from "@effect/sql/SqlError"
import { DatabaseError } from "pg"

/** A failure the store itself detects, with the reason it reports. */
export class StoreFailure extends Error {
  constructor(message: string, readonly reason: PlatformError.SystemErrorReason) {
    super(message)
  }
}

/** A stored value that is not an encoding this store writes (the table was edited by hand). */
export const corruptValue = (table: string) =>
  new StoreFailure(`a value in ${table} is not a valid store encoding`, "InvalidData")

/** Raised by a store whose scope has closed. */
export const closed = (method: string): PlatformError.PlatformError =>
  Store.systemError(method, undefined, { reason: "BadResource", description: "the PostgreSQL store is closed" })

export const toPlatformError = (method: string, cause: unknown): PlatformError.PlatformError => {
  if (cause instanceof StoreFailure) return Store.systemError(method, cause, { reason: cause.reason })
  const driverError = cause instanceof SqlError ? cause.cause : cause
  const sqlError = cause instanceof SqlError ? cause : new SqlError({ cause, message: messageOf(cause) })
  return Store.systemError(method, sqlError, {
    reason: reasonOf(driverError),
    description: `PostgreSQL: ${describe(driverError)}`
  })
}

const messageOf = (cause: unknown): string =>
  cause instanceof Error ? cause.message : "PostgreSQL operation failed"

const describe = (cause: unknown): string => {
  if (!(cause instanceof Error)) return String(cause)
  const code = (cause as { readonly code?: unknown }).code
  const message = cause.message !== "" ? cause.message : cause.constructor.name
  // Node's AggregateError (every address of a host refused) has an empty message.
  const inner = cause instanceof AggregateError && cause.errors.length > 0 ? `: ${describe(cause.errors[0])}` : ""
  return typeof code === "string" && !message.includes(code) ? `${message} (${code})${inner}` : `${message}${inner}`
}

const reasonOf = (cause: unknown): PlatformError.SystemErrorReason => {
  if (cause instanceof DatabaseError) {
    // The server's SQLSTATE says what happened; its message may name anything (a setting
    // called …_timeout, a constraint, a table).
    const code = cause.code ?? ""
    // query_canceled (statement_timeout), lock_not_available (lock_timeout),
    // idle_in_transaction_session_timeout
    if (code === "57014" || code === "55P03" || code === "25P03") return "TimedOut"
    // insufficient_resources, e.g. too_many_connections
    if (code.startsWith("53")) return "Busy"
    // invalid authorization, insufficient_privilege
    if (code.startsWith("28") || code === "42501") return "PermissionDenied"
    // operator intervention: admin_shutdown, crash_shutdown, cannot_connect_now
    if (code.startsWith("57P")) return "UnexpectedEof"
    return "Unknown"
  }
  // The client's own failures: Node socket errors, and pg's messages for its timers and a
  // connection that ended.
  const code = typeof cause === "object" && cause !== null ? (cause as { readonly code?: unknown }).code : undefined
  if (code === "ETIMEDOUT") return "TimedOut"
  if (code === "ECONNRESET" || code === "EPIPE") return "UnexpectedEof"
  const message = cause instanceof Error ? cause.message : ""
  if (/timeout/i.test(message)) return "TimedOut"
  if (/Connection terminated|not queryable/.test(message)) return "UnexpectedEof"
  return "Unknown"
}
