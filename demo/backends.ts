/**
 * The storage the demo runs on, set up for one run and cleaned up after it: the
 * durable-singleton store and the cluster's runner storage.
 *
 * - `sqlite` (default): two SQLite files in a fresh temporary directory; no server.
 * - `postgres`: `DATABASE_URL`, or the project's throwaway server. Store and runner storage both
 *   live in a fresh schema of that database, dropped at the end.
 * - `redis`: `REDIS_URL`, or the project's throwaway server, for the store (a fresh namespace,
 *   cleared at the end); runner storage stays on SQLite.
 */
import { Store } from "@durable-singleton/core"
import { PgStore } from "@durable-singleton/store-postgres"
import { RedisStore } from "@durable-singleton/store-redis"
import { SqliteStore } from "@durable-singleton/store-sqlite"
import { Data, Effect, Layer, type Scope } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Pg from "pg"
import * as Servers from "../support/Servers.js"
import type { ClusterStorageConfig, StoreConfig } from "./protocol.js"

export type StoreKind = "sqlite" | "postgres" | "redis"

export const storeKinds: ReadonlyArray<StoreKind> = ["sqlite", "postgres", "redis"]

/**
 * @category errors
 */
export class SetupError extends Data.TaggedError("SetupError")<{ readonly message: string }> {}

export interface Backend {
  readonly kind: StoreKind
  /** One line for people: where the state and the runner storage live. */
  readonly description: string
  readonly store: StoreConfig
  readonly cluster: ClusterStorageConfig
  /** Where the runners' logs go. */
  readonly directory: string
  /** The demo's own store client (to read state and health), on the same data. */
  readonly client: Layer.Layer<Store.Store, SetupError>
  /** Keep the temporary directory (with the runners' logs) when the run fails. */
  readonly keepDirectory: () => void
}

/** Sets up the backend for one run, in the scope; everything it created goes away with it. */
export const make = (kind: StoreKind): Effect.Effect<Backend, SetupError, Scope.Scope> =>
  Effect.gen(function*() {
    let keep = false
    const directory = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "durable-singleton-demo-"))),
      (directory) => Effect.sync(() => keep || fs.rmSync(directory, { recursive: true, force: true }))
    )
    const keepDirectory = () => {
      keep = true
    }
    const runId = randomBytes(4).toString("hex")
    const sqliteCluster: ClusterStorageConfig = { kind: "sqlite", filename: path.join(directory, "cluster.db") }

    if (kind === "sqlite") {
      const filename = path.join(directory, "store.db")
      return {
        kind,
        description: `SQLite file ${filename}; runner storage: SQLite file ${sqliteCluster.filename}`,
        store: { kind, filename },
        cluster: sqliteCluster,
        directory,
        client: clientLayer(SqliteStore.layer({ filename })),
        keepDirectory
      }
    }

    const url = yield* Effect.mapError(Servers.serverUrl(kind), (error) => new SetupError({ message: error.message }))
    if (kind === "postgres") {
      // A schema of our own: the runs never see each other's tables, messages or state.
      const schema = `durable_singleton_demo_${runId}`
      yield* Effect.acquireRelease(
        pgQuery(url, `CREATE SCHEMA ${schema}`),
        () => Effect.ignore(pgQuery(url, `DROP SCHEMA ${schema} CASCADE`))
      )
      const clusterUrl = new URL(url)
      clusterUrl.searchParams.set("options", `-c search_path=${schema}`)
      return {
        kind,
        description: `PostgreSQL ${redact(url)}, schema ${schema} (store and runner storage)`,
        store: { kind, url, schema },
        cluster: { kind, url: clusterUrl.toString() },
        directory,
        client: clientLayer(PgStore.layer({ url, schema, maxConnections: 2 })),
        keepDirectory
      }
    }

    const namespace = `demo-${runId}`
    const client = clientLayer(RedisStore.layer({ url, namespace }))
    // Clear the namespace at the end, through a client of its own (the demo's is closed by then).
    yield* Effect.addFinalizer(() => Effect.ignore(Effect.provide(Effect.flatMap(Store.Store, (store) => store.clear), client)))
    return {
      kind,
      description: `Redis ${redact(url)}, namespace ${namespace}; runner storage: SQLite file ${sqliteCluster.filename}`,
      store: { kind, url, namespace },
      cluster: sqliteCluster,
      directory,
      client,
      keepDirectory
    }
  })

const clientLayer = <E>(layer: Layer.Layer<Store.Store, E>): Layer.Layer<Store.Store, SetupError> =>
  Layer.mapError(layer, (error) => new SetupError({ message: `cannot open the store: ${describe(error)}` }))

const describe = (error: unknown) => error instanceof Error ? error.message : String(error)

const redact = (url: string) => url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@")

const pgQuery = (url: string, sql: string) =>
  Effect.tryPromise({
    try: async () => {
      const client = new Pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
      await client.connect()
      try {
        await client.query(sql)
      } finally {
        await client.end()
      }
    },
    catch: (error) => new SetupError({ message: `PostgreSQL at ${redact(url)}: ${describe(error)}` })
  })
