/**
 * Opening one of our stores by kind on a given location (plain JSON), so that a child process
 * of a benchmark or a test reaches the same data as its parent.
 */
import type { Store } from "@durable-singleton/core"
import { PgStore } from "@durable-singleton/store-postgres"
import { RedisStore } from "@durable-singleton/store-redis"
import { SqliteStore } from "@durable-singleton/store-sqlite"
import type { PlatformError } from "@effect/platform/Error"
import type { Effect, Scope } from "effect"

export type Location =
  | { readonly kind: "sqlite"; readonly filename: string; readonly namespace: string }
  | { readonly kind: "postgres"; readonly url: string; readonly table: string; readonly namespace: string }
  | { readonly kind: "redis"; readonly url: string; readonly prefix?: string; readonly namespace: string }

export const open = (location: Location): Effect.Effect<Store.Store, PlatformError, Scope.Scope> => {
  switch (location.kind) {
    case "sqlite":
      return SqliteStore.make({ filename: location.filename, namespace: location.namespace })
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
