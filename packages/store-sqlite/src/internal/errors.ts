/**
 * Every failure of SQLite, better-sqlite3 or `@effect/sql` as a `PlatformError`.
 *
 * @internal
 */
import * as Store from "@durable-singleton/core/Store"
import type * as PlatformError from "@effect/platform/Error"
import * as Predicate from "effect/Predicate"
import { InvalidStoredValue } from "./schema.js"

// better-sqlite3's `SqliteError.code` is SQLite's extended result code name ("SQLITE_BUSY_SNAPSHOT", …).
const reasons: ReadonlyArray<readonly [prefix: string, reason: PlatformError.SystemErrorReason]> = [
  ["SQLITE_BUSY", "Busy"],
  ["SQLITE_READONLY", "PermissionDenied"],
  ["SQLITE_PERM", "PermissionDenied"],
  ["SQLITE_AUTH", "PermissionDenied"],
  ["SQLITE_CANTOPEN", "NotFound"],
  ["SQLITE_CORRUPT", "InvalidData"],
  ["SQLITE_NOTADB", "InvalidData"],
  ["SQLITE_TOOBIG", "InvalidData"],
  ["SQLITE_FULL", "WriteZero"]
]

// `@effect/sql` wraps the driver's error in a `SqlError` whose own message says little.
const driverError = (cause: unknown): unknown =>
  Predicate.isTagged(cause, "SqlError") && Predicate.hasProperty(cause, "cause") ? cause.cause : cause

const codeOf = (cause: unknown): string | undefined => {
  const error = driverError(cause)
  return Predicate.hasProperty(error, "code") && typeof error.code === "string" ? error.code : undefined
}

// What better-sqlite3 throws (a TypeError, no code) when a closed connection is used.
const isClosedConnection = (cause: unknown): boolean => {
  const error = driverError(cause)
  return error instanceof TypeError && error.message === "The database connection is not open"
}

/** @internal */
export const closedError = (method: string, cause?: unknown): PlatformError.PlatformError =>
  Store.systemError(method, cause, { reason: "BadResource", description: "the SQLite store or its connection is closed" })

/** @internal */
export const toPlatformError = (method: string, cause: unknown): PlatformError.PlatformError => {
  if (isClosedConnection(cause)) return closedError(method, cause)
  if (cause instanceof InvalidStoredValue) {
    return Store.systemError(method, cause, { reason: "InvalidData", description: cause.message })
  }
  const code = codeOf(cause)
  const reason = code === undefined ? "Unknown" : reasons.find(([prefix]) => code.startsWith(prefix))?.[1] ?? "Unknown"
  const error = driverError(cause)
  const message = Predicate.hasProperty(error, "message") && typeof error.message === "string"
    ? error.message
    : String(error)
  return Store.systemError(method, cause, { reason, description: code === undefined ? message : `${code}: ${message}` })
}

/**
 * Thrown through a better-sqlite3 transaction (which rolls back) when the user's `f` throws, so
 * that it is told apart from database errors and surfaces as the defect it is.
 *
 * @internal
 */
export class FunctionThrew {
  constructor(readonly cause: unknown) {}
}
