/**
 * A PostgreSQL {@link Store.Store}: the store contract of `@durable-singleton/core` (and the
 * platform `KeyValueStore`) over one table, with an atomic `modify` / `modifyOrInit` that holds
 * across connections and processes.
 *
 * Keys and values are stored as `bytea` (PostgreSQL `text` cannot hold NUL), so every string and
 * `Uint8Array` round-trips exactly. Each store works in one namespace of its table.
 *
 * @example
 * ```ts
 * import { PgStore } from "@durable-singleton/store-postgres"
 * import { Store } from "@durable-singleton/core"
 * import { Config, Effect } from "effect"
 *
 * const StoreLive = PgStore.layerConfig({
 *   url: Config.redacted("DATABASE_URL"),
 *   namespace: Config.succeed("billing")
 * })
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* Store.Store
 *   yield* store.setIfAbsent("counter", "0")
 *   return yield* store.modify("counter", (n) => String(Number(n) + 1))
 * })
 *
 * Effect.runPromise(Effect.provide(program, StoreLive))
 * ```
 *
 * @since 0.1.0
 */
import { Store } from "@durable-singleton/core"
import type * as KeyValueStore from "@effect/platform/KeyValueStore"
import type * as PlatformError from "@effect/platform/Error"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { ConnectionOptions as TlsOptions } from "node:tls"
import * as Pg from "pg"
import * as Backend from "./internal/backend.js"
import * as Connection from "./internal/connection.js"
import * as Migration from "./internal/migration.js"
import * as Validate from "./internal/options.js"
import * as Sql from "./internal/sql.js"

/**
 * Where the store keeps its data.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreOptions {
  /**
   * The namespace this store works in: any well-formed string of at most 1024 UTF-8 bytes.
   * Stores in different namespaces of one table never see each other's keys. Default
   * `"default"`.
   */
  readonly namespace?: string | undefined
  /** Schema of the table, created if missing. Letters, digits and `_`. Default `"public"`. */
  readonly schema?: string | undefined
  /** The table, created if missing. Letters, digits and `_`. Default `"durable_singleton_store"`. */
  readonly table?: string | undefined
  /**
   * Create the schema and table when they are missing (default `true`). With `false` the table
   * must exist (see the README for its definition); either way an existing table is checked.
   */
  readonly migrate?: boolean | undefined
  /**
   * How long the row-lock path's transaction may sit idle, e.g. because its process was frozen
   * while holding the row lock, before the server aborts it and releases the lock (nothing is
   * written). Default 10 seconds; `0` or `Duration.infinity`: never (the transaction sets
   * `idle_in_transaction_session_timeout = 0`). Like every duration option: at most 2³¹−1 ms,
   * anything invalid or negative fails with `BadArgument`.
   */
  readonly lockIdleTimeout?: Duration.DurationInput | undefined
  /**
   * A statement that gets no answer within this time fails with `TimedOut` on the client side
   * and its connection is closed (the server then rolls back whatever it was doing). Guards
   * against a frozen server or a silent network partition, which `statementTimeout` (enforced
   * by the server) cannot. Default (and `0` or `Duration.infinity`): none.
   */
  readonly queryTimeout?: Duration.DurationInput | undefined
}

/**
 * How to connect, for a store that owns its pool. Names follow `@effect/sql-pg`'s
 * `PgClientConfig`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectionOptions {
  /** A connection URL, `postgres://user:password@host:port/database`. */
  readonly url?: string | Redacted.Redacted | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly database?: string | undefined
  readonly username?: string | undefined
  readonly password?: string | Redacted.Redacted | undefined
  readonly ssl?: boolean | TlsOptions | undefined
  /** Pool size, at least 1. Default 10. */
  readonly maxConnections?: number | undefined
  /** Connections kept open even when idle, from 0 (the default) to `maxConnections`. */
  readonly minConnections?: number | undefined
  /**
   * Limit on opening a connection, and on waiting for a free one in the pool. Default 5 seconds;
   * `0` or `Duration.infinity`: none.
   */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /**
   * Idle connections above `minConnections` are closed after this long. Default 10 seconds; `0`
   * or `Duration.infinity`: never.
   */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** Connections are replaced after this long. Default (and `0` or `Duration.infinity`): never. */
  readonly connectionTTL?: Duration.DurationInput | undefined
  /** Default `"@durable-singleton/store-postgres"`. */
  readonly applicationName?: string | undefined
  /**
   * The server cancels any statement of the store that runs longer. Default: the server's; `0`
   * or `Duration.infinity`: none, whatever the server's setting.
   */
  readonly statementTimeout?: Duration.DurationInput | undefined
  /**
   * `synchronous_commit` for the store's sessions. Default: the server's (normally `on`). `"off"`
   * is several times faster on slow disks, but a server crash can lose the last few hundred
   * milliseconds of acknowledged writes (never corrupt them): for fenced state that means a
   * successor may not see the last writes of its predecessor.
   */
  readonly synchronousCommit?: "on" | "off" | "local" | "remote_write" | "remote_apply" | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options extends StoreOptions, ConnectionOptions {}

/**
 * A store with its own connection pool, closed with the scope. Creates (or checks) its table
 * before it returns, so an unreachable server fails here.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Store.Store, PlatformError.PlatformError, Scope.Scope> =>
  Effect.map(makeBackend(options), Store.make)

/**
 * A store on the application's `@effect/sql-pg` client, sharing its pool: each operation
 * reserves one of its connections. Operations run outside any transaction the caller has open.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromClient = (
  options: StoreOptions = {}
): Effect.Effect<Store.Store, PlatformError.PlatformError, Scope.Scope | PgClient.PgClient> =>
  Effect.map(makeBackendFromClient(options), Store.make)

/**
 * Provides `Store.Store` and the platform `KeyValueStore` (the same service), with a pool of
 * its own.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<Store.Store | KeyValueStore.KeyValueStore, PlatformError.PlatformError> =>
  Store.layer(makeBackend(options))

/**
 * {@link layer} with options read from `Config`. By default: `DATABASE_URL` (required),
 * `PG_STORE_NAMESPACE`, `PG_STORE_SCHEMA` and `PG_STORE_TABLE` (optional).
 *
 * @example
 * ```ts
 * import { PgStore } from "@durable-singleton/store-postgres"
 * import { Config } from "effect"
 *
 * const fromEnv = PgStore.layerConfig()
 *
 * const custom = PgStore.layerConfig({
 *   url: Config.redacted("BILLING_DATABASE_URL"),
 *   namespace: Config.succeed("billing"),
 *   maxConnections: Config.integer("BILLING_POOL_SIZE").pipe(Config.withDefault(4))
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<Options> = defaultConfig
): Layer.Layer<Store.Store | KeyValueStore.KeyValueStore, ConfigError.ConfigError | PlatformError.PlatformError> =>
  Store.layer(Effect.flatMap(Config.unwrap(config), makeBackend))

const optionalString = (name: string) => Config.string(name).pipe(Config.withDefault(undefined))

const defaultConfig: Config.Config.Wrap<Options> = {
  url: Config.redacted("DATABASE_URL"),
  namespace: optionalString("PG_STORE_NAMESPACE"),
  schema: optionalString("PG_STORE_SCHEMA"),
  table: optionalString("PG_STORE_TABLE")
}

/**
 * Provides `Store.Store` and the platform `KeyValueStore` on the application's `PgClient`
 * (e.g. from `PgClient.layer`), sharing its pool.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromClient = (
  options: StoreOptions = {}
): Layer.Layer<Store.Store | KeyValueStore.KeyValueStore, PlatformError.PlatformError, PgClient.PgClient> =>
  Store.layer(makeBackendFromClient(options))

// internal

interface Resolved {
  readonly namespace: string
  readonly schema: string
  readonly statements: Sql.Statements
  readonly migrate: boolean
  readonly begin: string
  readonly queryTimeout: number | undefined
}

const resolve = (options: StoreOptions): Effect.Effect<Resolved, PlatformError.PlatformError> =>
  Effect.suspend(() => {
    const namespace = options.namespace ?? "default"
    const schema = options.schema ?? "public"
    const table = options.table ?? "durable_singleton_store"
    for (const [what, name] of [["schema", schema], ["table", table]] as const) {
      if (typeof name !== "string" || !Sql.isIdentifier(name)) {
        return Effect.fail(
          Store.badArgument(
            "make",
            `${what} name ${JSON.stringify(name)} is not allowed: use 1 to 63 letters, digits or _, not starting with a digit`
          )
        )
      }
    }
    // (namespace, key) is the primary key: both together must fit in one B-tree index entry.
    const invalidNamespace = Store.checkNamespace("make", namespace, { maxBytes: Store.maxKeyBytes })
    if (invalidNamespace) return Effect.fail(invalidNamespace)
    const lockIdleMillis = Validate.timeoutMillis("lockIdleTimeout", options.lockIdleTimeout ?? defaultLockIdleTimeout)
    if (typeof lockIdleMillis !== "number") return Effect.fail(lockIdleMillis)
    const queryTimeout = options.queryTimeout === undefined ? 0 : Validate.timeoutMillis("queryTimeout", options.queryTimeout)
    if (typeof queryTimeout !== "number") return Effect.fail(queryTimeout)
    return Effect.succeed({
      namespace,
      schema,
      statements: Sql.make(schema, table),
      migrate: options.migrate ?? true,
      queryTimeout: queryTimeout === 0 ? undefined : queryTimeout,
      begin: `${Sql.begin}; SET LOCAL idle_in_transaction_session_timeout = ${lockIdleMillis}`
    })
  })

const defaultLockIdleTimeout = Duration.seconds(10)

const build = (resolved: Resolved, connector: Connection.Connector) =>
  Effect.zipRight(
    Migration.migrate(connector, resolved.statements, resolved.schema, resolved.migrate),
    Backend.make({
      connector,
      statements: resolved.statements,
      namespace: resolved.namespace,
      begin: resolved.begin
    })
  )

const makeBackend = (options: Options): Effect.Effect<Store.Backend, PlatformError.PlatformError, Scope.Scope> =>
  Effect.flatMap(resolve(options), (resolved) => {
    const config = poolConfig(options)
    if (!isPoolConfig(config)) return Effect.fail(config)
    return Effect.flatMap(
      Effect.acquireRelease(
        Effect.sync(() => new Pg.Pool(config)),
        (pool) => Effect.timeoutOption(Effect.promise(() => pool.end()), closeTimeout)
      ),
      (pool) => build(resolved, Connection.owned(pool, resolved.queryTimeout))
    )
  })

const makeBackendFromClient = (
  options: StoreOptions
): Effect.Effect<Store.Backend, PlatformError.PlatformError, Scope.Scope | PgClient.PgClient> =>
  Effect.flatMap(resolve(options), (resolved) =>
    Effect.flatMap(
      Effect.zip(PgClient.PgClient, Effect.runtime<never>()),
      ([client, runtime]) => build(resolved, Connection.shared(client, runtime, resolved.queryTimeout))
    ))

// Closing waits this long for operations still running before it drops the pool.
const closeTimeout = Duration.seconds(5)

const reveal = (value: string | Redacted.Redacted | undefined): string | undefined =>
  Redacted.isRedacted(value) ? Redacted.value(value) as string : value

const synchronousCommitLevels: ReadonlyArray<unknown> = ["on", "off", "local", "remote_write", "remote_apply"]

const isPoolConfig = (u: Pg.PoolConfig | PlatformError.PlatformError): u is Pg.PoolConfig => !("_tag" in u)

// The pool's configuration, or the first option that is not valid. Timeouts of 0 mean none, as
// for `pg` (and `Duration.infinity` is 0).
const poolConfig = (options: ConnectionOptions): Pg.PoolConfig | PlatformError.PlatformError => {
  const max = Validate.integer("maxConnections", options.maxConnections ?? 10, 1)
  if (typeof max !== "number") return max
  const numbers = {
    min: Validate.integer("minConnections", options.minConnections ?? 0, 0, max),
    port: options.port === undefined ? undefined : Validate.integer("port", options.port, 1, 65535),
    connectionTimeoutMillis: Validate.timeoutMillis("connectTimeout", options.connectTimeout ?? Duration.seconds(5)),
    idleTimeoutMillis: options.idleTimeout === undefined
      ? undefined
      : Validate.timeoutMillis("idleTimeout", options.idleTimeout),
    connectionTTL: options.connectionTTL === undefined
      ? undefined
      : Validate.timeoutMillis("connectionTTL", options.connectionTTL),
    statementTimeout: options.statementTimeout === undefined
      ? undefined
      : Validate.timeoutMillis("statementTimeout", options.statementTimeout)
  }
  for (const value of Object.values(numbers)) if (typeof value === "object") return value
  const { connectionTimeoutMillis, connectionTTL, idleTimeoutMillis, min, port, statementTimeout } = numbers as {
    readonly [K in keyof typeof numbers]: Exclude<(typeof numbers)[K], PlatformError.PlatformError>
  }
  if (options.synchronousCommit !== undefined && !synchronousCommitLevels.includes(options.synchronousCommit)) {
    return Store.badArgument("make", `synchronousCommit must be one of ${synchronousCommitLevels.join(", ")}`)
  }
  // Session settings go in the startup packet's options, where 0 (none) is sent too: pg's own
  // statement_timeout field skips 0, leaving the server's setting in place.
  const settings = [
    statementTimeout === undefined ? undefined : `-c statement_timeout=${statementTimeout}`,
    options.synchronousCommit === undefined ? undefined : `-c synchronous_commit=${options.synchronousCommit}`
  ].filter((setting) => setting !== undefined)
  const config: Pg.PoolConfig = {
    max,
    min,
    connectionTimeoutMillis,
    application_name: options.applicationName ?? "@durable-singleton/store-postgres"
  }
  const set = <K extends keyof Pg.PoolConfig>(key: K, value: Pg.PoolConfig[K] | undefined) => {
    if (value !== undefined) config[key] = value
  }
  set("connectionString", reveal(options.url))
  set("host", options.host)
  set("port", port)
  set("database", options.database)
  set("user", options.username)
  set("password", reveal(options.password))
  set("ssl", options.ssl)
  set("idleTimeoutMillis", idleTimeoutMillis)
  set("maxLifetimeSeconds", connectionTTL === undefined ? undefined : connectionTTL / 1000)
  set("options", settings.length === 0 ? undefined : settings.join(" "))
  return config
}
