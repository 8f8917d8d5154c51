/**
 * SQL text for one store table: identifiers, the table definition and the statements of the
 * data path, each with a stable prepared-statement name.
 *
 * @internal
 */
import { createHash } from "node:crypto"

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

// The version of a row is the id of the transaction that wrote it: unique across the key's whole
// life, so a key that is removed and created again never returns to an old version (no ABA for
// the compare-and-set). Every write to a row is the only write to it in its transaction.
const writeVersion = "txid_current()"

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
    set: named(
      `INSERT INTO ${t} (namespace, key, value, version, updated_at) VALUES ($1, $2, $3, ${writeVersion}, now()) ` +
        `ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at ` +
        `RETURNING version`
    ),
    remove: named(`DELETE FROM ${t} WHERE ${where}`),
    size: named(`SELECT count(*) FROM ${t} WHERE namespace = $1`),
    clear: named(`DELETE FROM ${t} WHERE namespace = $1`),
    read: named(`SELECT value, version FROM ${t} WHERE ${where}`),
    compareAndSet: named(
      `UPDATE ${t} SET value = $3, version = ${writeVersion}, updated_at = now() WHERE ${where} AND version = $4 ` +
        `RETURNING version`
    ),
    insertIfAbsent: named(
      `INSERT INTO ${t} (namespace, key, value, version, updated_at) VALUES ($1, $2, $3, ${writeVersion}, now()) ` +
        `ON CONFLICT (namespace, key) DO NOTHING RETURNING version`
    ),
    readForUpdate: named(`SELECT value FROM ${t} WHERE ${where} FOR UPDATE`),
    update: named(
      `UPDATE ${t} SET value = $3, version = ${writeVersion}, updated_at = now() WHERE ${where} RETURNING version`
    )
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
