/**
 * SQL text for one store table: identifiers, the table definition and the statements of the
 * data path, each with a stable prepared-statement name.
 *
 * @internal
 */
import { createHash, randomFillSync } from "node:crypto"

/** Unquoted-looking identifiers only: letters, digits and `_`, at most 63 bytes (NAMEDATALEN). */
const identifierPattern = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

/** A named statement: PostgreSQL parses and plans it once per connection. */
export interface Statement {
  readonly name: string
  readonly text: string
}

export interface Statements {
  /** `"schema"."table"`, both parts validated and quoted. */
  readonly qualifiedName: string
  /**
   * A 64-bit advisory lock key (as decimal text) serialising the migrations of every store table
   * in this schema: creating the schema is part of them, and concurrent `CREATE SCHEMA IF NOT
   * EXISTS` of one schema collide in the catalog (23505) whichever tables they are for.
   */
  readonly migrationLockKey: string
  readonly createTable: string
  readonly get: Statement
  readonly has: Statement
  readonly set: Statement
  readonly remove: Statement
  readonly size: Statement
  readonly clear: Statement
  /** Optimistic path: read value and version, then write only if the version is unchanged. */
  readonly read: Statement
  readonly compareAndSet: Statement
  readonly insertIfAbsent: Statement
  /** Pessimistic path: lock the row (inside a transaction), then write. */
  readonly readForUpdate: Statement
  readonly update: Statement
}

export const isIdentifier = (name: string): boolean => identifierPattern.test(name)

const quote = (identifier: string): string => `"${identifier}"`

// Names are derived from the text, so two stores on different tables sharing a pool never reuse
// a name for a different statement (pg refuses that) and the same text always gets one name.
const named = (text: string): Statement => ({
  name: `durable_singleton_${createHash("sha256").update(text).digest("hex").slice(0, 24)}`,
  text
})

/**
 * A new version for a row being written: 64 random bits (as decimal text), drawn by the store for
 * every write. A key that is removed and created again, or rewritten with the same value, never
 * comes back to a version someone saw before (no ABA for the compare-and-set), except with
 * probability 2⁻⁶⁴ per comparison, whatever the server's history.
 *
 * Not the writing transaction's id (`txid_current()`, what this store used first): ids are reused
 * when a cluster goes back in time or is replaced (a point-in-time recovery, the promotion of an
 * asynchronous standby that missed the last transactions, a dump restored into another cluster,
 * whose counter is behind the restored rows' versions), and the pool reconnects through the same
 * address without the store noticing. A store that remembered a version from before could then
 * match a row written since, in a transaction that got the same id, and overwrite it with an
 * update computed from an older value: a lost update, and a way around core's fencing.
 */
export const newVersion = (): string => {
  if (nextRandom === randoms.length) {
    randomFillSync(randoms)
    nextRandom = 0
  }
  return randoms[nextRandom++]!.toString()
}

// Drawn in batches: one system call per 256 writes.
const randoms = new BigInt64Array(256)
let nextRandom = randoms.length

/** Statements for `schema.table`; both must satisfy {@link isIdentifier}. */
export const make = (schema: string, table: string): Statements => {
  const t = `${quote(schema)}.${quote(table)}`
  const where = "namespace = $1 AND key = $2"
  return {
    qualifiedName: t,
    migrationLockKey: createHash("sha256").update(`durable-singleton migration schema ${quote(schema)}`).digest()
      .readBigInt64BE(0).toString(),
    // fillfactor leaves room on each page so that rewriting a value can be a HOT update (no index
    // write); the store rewrites rows far more often than it creates them.
    createTable: `CREATE TABLE IF NOT EXISTS ${t} (
  namespace bytea NOT NULL,
  key bytea NOT NULL,
  value bytea NOT NULL,
  version bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (namespace, key)
) WITH (fillfactor = 80)`,
    get: named(`SELECT value FROM ${t} WHERE ${where}`),
    has: named(`SELECT 1 FROM ${t} WHERE ${where}`),
    // Versions (see newVersion): the one written is $4, except in compareAndSet ($4 expected, $5 written).
    set: named(
      `INSERT INTO ${t} (namespace, key, value, version, updated_at) VALUES ($1, $2, $3, $4, now()) ` +
        `ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at`
    ),
    remove: named(`DELETE FROM ${t} WHERE ${where}`),
    size: named(`SELECT count(*) FROM ${t} WHERE namespace = $1`),
    clear: named(`DELETE FROM ${t} WHERE namespace = $1`),
    read: named(`SELECT value, version FROM ${t} WHERE ${where}`),
    compareAndSet: named(
      `UPDATE ${t} SET value = $3, version = $5, updated_at = now() WHERE ${where} AND version = $4 RETURNING 1`
    ),
    insertIfAbsent: named(
      `INSERT INTO ${t} (namespace, key, value, version, updated_at) VALUES ($1, $2, $3, $4, now()) ` +
        `ON CONFLICT (namespace, key) DO NOTHING RETURNING 1`
    ),
    readForUpdate: named(`SELECT value FROM ${t} WHERE ${where} FOR UPDATE`),
    update: named(`UPDATE ${t} SET value = $3, version = $4, updated_at = now() WHERE ${where} RETURNING 1`)
  }
}

/** The columns a store table must have, as `format_type` prints their types. */
export const expectedColumns: ReadonlyArray<readonly [name: string, type: string]> = [
  ["namespace", "bytea"],
  ["key", "bytea"],
  ["value", "bytea"],
  ["version", "bigint"],
  ["updated_at", "timestamp with time zone"]
]

export const selectColumns = "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a " +
  "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped"

export const schemaExists = "SELECT 1 FROM pg_namespace WHERE nspname = $1"

export const createSchema = (schema: string): string => `CREATE SCHEMA IF NOT EXISTS ${quote(schema)}`

export const lockMigration = "SELECT pg_advisory_xact_lock($1::bigint)"

/**
 * Every transaction of the store runs at READ COMMITTED, whatever the session's default (a
 * server, database or role can make it REPEATABLE READ or SERIALIZABLE): there, `SELECT … FOR
 * UPDATE` of a row another transaction changed since the snapshot fails with 40001 instead of
 * waiting for the lock and returning the row's latest version, and a catalog check could miss
 * what a concurrent migration just created.
 */
export const begin = "BEGIN ISOLATION LEVEL READ COMMITTED"

/** SQLSTATE serialization_failure: the transaction was rolled back, nothing was written. */
export const serializationFailure = "40001"
