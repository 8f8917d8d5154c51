/**
 * A durable-singleton store on SQLite: the store contract of `@durable-singleton/core` (and the
 * platform `KeyValueStore`) with a `modify` that is atomic across fibers, connections and
 * **processes** sharing one database file.
 *
 * Two variants, one table layout:
 *
 * - {@link make} / {@link layer} / {@link layerConfig} open a better-sqlite3 connection that the
 *   store owns. Every operation is one synchronous step, and `modify` is one `BEGIN IMMEDIATE`
 *   transaction (read, `f`, write, commit) inside it: the fast path (about the speed of raw
 *   better-sqlite3).
 * - {@link makeSqlClient} / {@link layerSqlClient} run on an existing `@effect/sql-sqlite-node`
 *   `SqliteClient`, for applications that want a single connection. Slower (each statement goes
 *   through the client), equally atomic.
 *
 * When another process holds the write lock, SQLite's own (blocking) busy handler waits at most
 * `busyTimeout`, then the store retries asynchronously with jittered delays of about 1 to 10 ms
 * for up to `retryBusyFor`; after that the operation fails with a `SystemError` of reason `Busy`
 * and has written nothing. A write is never lost or applied twice.
 *
 * @example
 * ```ts
 * import { SqliteStore } from "@durable-singleton/store-sqlite"
 * import { KeyValueStore } from "@effect/platform"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const kv = yield* KeyValueStore.KeyValueStore
 *   yield* kv.set("counter", "0")
 *   return yield* kv.modify("counter", (n) => String(Number(n) + 1)) // atomic across processes
 * })
 *
 * program.pipe(Effect.provide(SqliteStore.layer({ filename: "state.db" })), Effect.runPromise)
 * ```
 *
 * @since 0.1.0
 */
import * as Store from "@durable-singleton/core/Store"
import type * as PlatformError from "@effect/platform/Error"
import type * as KeyValueStore from "@effect/platform/KeyValueStore"
import type * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Database from "./internal/database.js"
import * as Schema from "./internal/schema.js"
import * as SqlClientBackend from "./internal/sqlClient.js"

/**
 * SQLite's `synchronous` setting: how often it waits for the disk.
 *
 * - `"NORMAL"` (the default): in WAL mode, commits are not synced one by one. A committed write
 *   survives a crash of the process, but the last commits can be lost in a power loss or an
 *   operating-system crash. The database is never corrupted.
 * - `"FULL"` / `"EXTRA"`: every commit is synced; survives a power loss. Several times slower
 *   (measured 1.7–3.6k commits/s against 35–45k).
 * - `"OFF"`: no syncs at all; a power loss can corrupt the database.
 *
 * @since 0.1.0
 * @category models
 */
export type Synchronous = "OFF" | "NORMAL" | "FULL" | "EXTRA"

/**
 * Options both variants share.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommonOptions {
  /**
   * The table, created if missing (default `"durable_singleton_kv"`). A plain identifier:
   * letters, digits and `_`, not starting with a digit; anything else fails with `BadArgument`.
   * Several namespaces share one table.
   */
  readonly table?: string | undefined
  /** The namespace this store works in (default `"default"`). Any well-formed string. */
  readonly namespace?: string | undefined
  /**
   * How long to keep retrying, asynchronously, while another connection holds the write lock
   * (default 5 seconds). Then the operation fails with `Busy`, having written nothing.
   */
  readonly retryBusyFor?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options extends CommonOptions {
  /** The database file, created if missing. Several processes may open the same file. */
  readonly filename: string
  /** Durability of commits (default `"NORMAL"`); see {@link Synchronous}. */
  readonly synchronous?: Synchronous | undefined
  /**
   * How long SQLite's own busy handler may wait for the write lock before the store's
   * asynchronous retry takes over (default 2 ms). It blocks the event loop while it waits, so
   * keep it short.
   */
  readonly busyTimeout?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface SqlClientOptions extends CommonOptions {
  /**
   * Sets the client connection's `busy_timeout` (by default it is left as it is:
   * better-sqlite3's 5 seconds, during which the event loop is blocked). Setting it short (e.g.
   * 2 ms) makes the store's asynchronous retry take over sooner, but also makes the application's
   * own statements on that connection fail with `SQLITE_BUSY` sooner.
   */
  readonly busyTimeout?: Duration.DurationInput | undefined
}

/**
 * Opens a store on `options.filename` with a connection of its own, creating the table if it
 * does not exist; the connection closes with the scope, after which every operation fails with a
 * `SystemError` of reason `BadResource`. Invalid options fail with `BadArgument`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Store.Store, PlatformError.PlatformError, Scope.Scope> =>
  Effect.map(backend(options), Store.make)

/**
 * A store with its own connection, provided as both `Store.Store` and the platform
 * `KeyValueStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<Store.Store | KeyValueStore.KeyValueStore, PlatformError.PlatformError> =>
  Store.layer(backend(options))

/**
 * {@link layer} with its options read from `Config`.
 *
 * @example
 * ```ts
 * import { SqliteStore } from "@durable-singleton/store-sqlite"
 * import { Config } from "effect"
 *
 * const StoreLive = SqliteStore.layerConfig({
 *   filename: Config.string("SQLITE_FILENAME"),
 *   namespace: Config.string("STORE_NAMESPACE").pipe(Config.withDefault("default"))
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<Options>
): Layer.Layer<Store.Store | KeyValueStore.KeyValueStore, ConfigError.ConfigError | PlatformError.PlatformError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))

/**
 * Opens a store on the `SqliteClient` in context, creating the table if it does not exist. Each
 * operation reserves the client's connection (other fibers' statements wait for it) and writes
 * inside `BEGIN IMMEDIATE … COMMIT`. Inside a `sql.withTransaction` of the same client, the
 * store's operations join that transaction and commit or roll back with it. After the scope
 * closes, operations fail with `BadResource`; the client itself stays open.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeSqlClient = (
  options?: SqlClientOptions
): Effect.Effect<Store.Store, PlatformError.PlatformError, SqliteClient.SqliteClient | Scope.Scope> =>
  Effect.map(sqlClientBackend(options ?? {}), Store.make)

/**
 * A store on the `SqliteClient` in context (see {@link makeSqlClient}), provided as both
 * `Store.Store` and the platform `KeyValueStore`.
 *
 * @example
 * ```ts
 * import { SqliteStore } from "@durable-singleton/store-sqlite"
 * import { SqliteClient } from "@effect/sql-sqlite-node"
 * import { Layer } from "effect"
 *
 * const StoreLive = SqliteStore.layerSqlClient({ namespace: "orders" }).pipe(
 *   Layer.provideMerge(SqliteClient.layer({ filename: "app.db" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSqlClient = (
  options?: SqlClientOptions
): Layer.Layer<Store.Store | KeyValueStore.KeyValueStore, PlatformError.PlatformError, SqliteClient.SqliteClient> =>
  Store.layer(sqlClientBackend(options ?? {}))

/**
 * The table used when none is given.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultTable: string = Schema.defaultTable

// internal

const synchronousValues: ReadonlyArray<string> = ["OFF", "NORMAL", "FULL", "EXTRA"] satisfies ReadonlyArray<
  Synchronous
>
const defaultBusyTimeout = Duration.millis(2)
const defaultRetryBusyFor = Duration.seconds(5)

const backend = (options: Options) =>
  Effect.suspend(() => {
    const method = "SqliteStore.make"
    if (typeof options.filename !== "string" || options.filename === "") {
      return Effect.fail(Store.badArgument(method, "filename must be a non-empty string"))
    }
    const synchronous = options.synchronous ?? "NORMAL"
    if (!synchronousValues.includes(synchronous)) {
      return Effect.fail(
        Store.badArgument(method, `synchronous must be one of ${synchronousValues.join(", ")}, got ${String(synchronous)}`)
      )
    }
    return Effect.flatMap(
      Effect.zip(common(method, options), milliseconds(method, "busyTimeout", options.busyTimeout ?? defaultBusyTimeout)),
      ([{ busy, namespace, table }, busyTimeoutMs]) =>
        Database.make({ filename: options.filename, table, namespace, synchronous, busyTimeoutMs, busy })
    )
  })

const sqlClientBackend = (options: SqlClientOptions) =>
  Effect.suspend(() => {
    const method = "SqliteStore.makeSqlClient"
    return Effect.flatMap(
      Effect.zip(
        common(method, options),
        options.busyTimeout === undefined
          ? Effect.succeed(undefined)
          : milliseconds(method, "busyTimeout", options.busyTimeout)
      ),
      ([{ busy, namespace, table }, busyTimeoutMs]) => SqlClientBackend.make({ table, namespace, busyTimeoutMs, busy })
    )
  })

const common = (method: string, options: CommonOptions) => {
  const table = options.table ?? Schema.defaultTable
  const namespace = options.namespace ?? Schema.defaultNamespace
  const invalid = Schema.checkTable(method, table) ?? Store.checkNamespace(method, namespace)
  if (invalid) return Effect.fail(invalid)
  return Effect.map(
    milliseconds(method, "retryBusyFor", options.retryBusyFor ?? defaultRetryBusyFor),
    (retryForMs) => ({ table, namespace, busy: { retryForMs } })
  )
}

// A whole, finite, non-negative number of milliseconds (what SQLite's busy_timeout takes).
const milliseconds = (method: string, name: string, input: Duration.DurationInput) =>
  Option.match(Option.map(Duration.decodeUnknown(input), Duration.toMillis), {
    onNone: () => Effect.fail(Store.badArgument(method, `${name} is not a duration: ${String(input)}`)),
    onSome: (ms) =>
      Number.isFinite(ms) && ms >= 0
        ? Effect.succeed(Math.ceil(ms))
        : Effect.fail(Store.badArgument(method, `${name} must be a finite, non-negative duration, got ${ms} ms`))
  })
