/**
 * Creates the store table if it is missing (idempotent, safe when many clients start at once)
 * and checks that an existing table has the store's columns.
 *
 * @internal
 */
import type * as PlatformError from "@effect/platform/Error"
import type * as Effect from "effect/Effect"
import { type Connector, type Lease, run, transaction } from "./connection.js"
import { StoreFailure, toPlatformError } from "./errors.js"
import * as Sql from "./sql.js"

export const migrate = (
  connector: Connector,
  statements: Sql.Statements,
  schema: string,
  create: boolean
): Effect.Effect<void, PlatformError.PlatformError> =>
  run(
    connector,
    async (lease) => {
      const existing = await columns(lease, statements)
      if (existing.size > 0) return check(statements, existing)
      if (!create) {
        throw new StoreFailure(`table ${statements.qualifiedName} does not exist and migration is off`, "NotFound")
      }
      // Concurrent CREATE … IF NOT EXISTS of the same object can still fail with a unique
      // violation in the catalog; the advisory lock (one per schema, as the schema is one of
      // those objects) makes starting clients take turns.
      await transaction(lease, Sql.begin, async () => {
        await lease.execute(Sql.lockMigration, [statements.migrationLockKey])
        // CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when the schema exists.
        const schemas = await lease.execute(Sql.schemaExists, [schema])
        if (schemas.rows.length === 0) await lease.execute(Sql.createSchema(schema))
        await lease.execute(statements.createTable)
      })
      return check(statements, await columns(lease, statements))
    },
    (cause) => toPlatformError("make", cause)
  )

const columns = async (lease: Lease, statements: Sql.Statements) =>
  new Map(
    (await lease.execute(Sql.selectColumns, [statements.qualifiedName])).rows.map((
      [name, type]
    ) => [name as string, type as string])
  )

const check = (statements: Sql.Statements, found: ReadonlyMap<string, string>): void => {
  const wrong = Sql.expectedColumns.filter(([name, type]) => found.get(name) !== type)
  if (wrong.length === 0) return
  const expected = Sql.expectedColumns.map(([name, type]) => `${name} ${type}`).join(", ")
  const actual = [...found].map(([name, type]) => `${name} ${type}`).join(", ")
  throw new StoreFailure(
    `table ${statements.qualifiedName} exists but is not a store table: expected columns (${expected}), found (${actual})`,
    "InvalidData"
  )
}
