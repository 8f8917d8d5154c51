/**
 * Opening one of our stores by kind on a given location (plain JSON), so that a child process
 * of a benchmark or a test reaches the same data as its parent.
 */
import type { Store } from "@durable-singleton/core"
import { PgStore } from "@durable-singleton/store-postgres"
import { RedisStore } from "@durable-singleton/store-redis"
import { SqliteStore } from "@durable-singleton/store-sqlite"
import * as Reactivity from "@effect/experimental/Reactivity"
import type { PlatformError } from "@effect/platform/Error"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Effect, type Scope } from "effect"

export type Location =
  | { readonly kind: "sqlite"; readonly filename: string; readonly namespace: string }
  // The variant on an application's SqliteClient (one connection of its own per process).
  | { readonly kind: "sqlite-client"; readonly filename: string; readonly namespace: string }
  | { readonly kind: "postgres"; readonly url: string; readonly table: string; readonly namespace: string }
  | { readonly kind: "redis"; readonly url: string; readonly prefix?: string; readonly namespace: string }

export const open = (location: Location): Effect.Effect<Store.Store, PlatformError, Scope.Scope> => {
  switch (location.kind) {
    case "sqlite":
      return SqliteStore.make({ filename: location.filename, namespace: location.namespace })
    case "sqlite-client":
      return Effect.flatMap(
        Effect.provide(SqliteClient.make({ filename: location.filename }), Reactivity.layer),
        (sql) =>
          Effect.provideService(
            SqliteStore.makeSqlClient({ namespace: location.namespace, busyTimeout: 2 }),
            SqliteClient.SqliteClient,
            sql
          )
      )
    case "postgres":
      return PgStore.make({ url: location.url, table: location.table, namespace: location.namespace, maxConnections: 4 })
    case "redis":
      return RedisStore.make({
        url: location.url,
        namespace: location.namespace,
        ...(location.prefix === undefined ? {} : { prefix: location.prefix })
      })
  }
}
