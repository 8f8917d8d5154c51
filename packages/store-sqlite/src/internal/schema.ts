/**
 * The table both store variants share: its name rules, its DDL and the statements run on it, and
 * how a stored column value becomes a `Store.Value`.
 *
 * @internal
 */
import * as Store from "@durable-singleton/core/Store"
import type * as PlatformError from "@effect/platform/Error"

/** @internal */
export const defaultTable = "durable_singleton_kv"

/** @internal */
export const defaultNamespace = "default"

// A plain identifier: nothing to escape, and no name SQLite reserves for itself.
const tableName = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/

/** @internal */
export const checkTable = (method: string, table: string): PlatformError.PlatformError | undefined => {
  if (typeof table !== "string" || !tableName.test(table)) {
    return Store.badArgument(
      method,
      `table name ${JSON.stringify(table)} is not a plain identifier (letters, digits and _, not starting with a digit, at most 128 characters)`
    )
  }
  if (table.toLowerCase().startsWith("sqlite_")) {
    return Store.badArgument(method, `table name ${JSON.stringify(table)} is reserved by SQLite (sqlite_ prefix)`)
  }
  return undefined
}

/**
 * The SQL of one table. The name has passed {@link checkTable} and is quoted anyway; namespaces,
 * keys and values are always bound parameters.
 *
 * `value` is declared `BLOB`, which gives it no type affinity: SQLite keeps the storage class
 * each value was written with, TEXT for strings and BLOB for bytes, so the kind of a value needs
 * no encoding (text keeps NUL characters: better-sqlite3 binds and reads text with its length).
 * `WITHOUT ROWID` makes the primary key the table itself: one B-tree search per lookup.
 *
 * @internal
 */
export const statements = (table: string) => {
  const t = `"${table}"`
  return {
    createTable: `CREATE TABLE IF NOT EXISTS ${t} (
  namespace TEXT NOT NULL,
  key TEXT NOT NULL,
  value BLOB NOT NULL,
  version INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (namespace, key)
) WITHOUT ROWID`,
    /** (namespace, key) → value */
    select: `SELECT value FROM ${t} WHERE namespace = ? AND key = ?`,
    /** (namespace, key) → 1 */
    exists: `SELECT 1 FROM ${t} WHERE namespace = ? AND key = ?`,
    /** (namespace) → n */
    count: `SELECT count(*) AS n FROM ${t} WHERE namespace = ?`,
    /** (namespace, key, value, updated_at) */
    insert: `INSERT INTO ${t} (namespace, key, value, version, updated_at) VALUES (?, ?, ?, 1, ?)`,
    /** (value, updated_at, namespace, key) */
    update: `UPDATE ${t} SET value = ?, version = version + 1, updated_at = ? WHERE namespace = ? AND key = ?`,
    /** (namespace, key, value, updated_at) */
    upsert: `INSERT INTO ${t} (namespace, key, value, version, updated_at) VALUES (?, ?, ?, 1, ?)
ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = version + 1, updated_at = excluded.updated_at`,
    /** (namespace, key) */
    remove: `DELETE FROM ${t} WHERE namespace = ? AND key = ?`,
    /** (namespace) */
    clear: `DELETE FROM ${t} WHERE namespace = ?`
  } as const
}

/**
 * A value column that neither variant wrote (a number, or a NULL from a hand-made table).
 *
 * @internal
 */
export class InvalidStoredValue extends Error {
  constructor(readonly stored: unknown) {
    super(`stored value is ${stored === null ? "NULL" : `a ${typeof stored}`}, not TEXT or BLOB: not written by this store`)
  }
}

/**
 * A `value` column as a `Store.Value`. better-sqlite3 returns BLOBs as `Buffer`s; users get a plain
 * `Uint8Array` view of the same (unshared, freshly allocated) memory.
 *
 * @internal
 */
export const fromColumn = (stored: unknown): Store.Value => {
  if (typeof stored === "string") return stored
  if (stored instanceof Uint8Array) return new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength)
  throw new InvalidStoredValue(stored)
}
