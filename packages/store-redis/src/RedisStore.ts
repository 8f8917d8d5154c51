/**
 * A {@link Store.Store} on Redis (through `ioredis`): the platform `KeyValueStore` with an atomic
 * `modify` and create-if-absent that hold across clients and processes.
 *
 * - **Atomic updates**: `modifyOrInit` (and `modify`, `setIfAbsent`, core's fenced state) read
 *   the value, run `f` here and write with a Lua compare-and-set that succeeds only if the key
 *   still holds the exact bytes `f` saw. Conflicts are retried with the current value the
 *   script returns; calls on one key from one store are combined into one compare-and-set.
 * - **Namespaces**: every key is `prefix + byteLength(namespace) + ":" + namespace + ":" + key`,
 *   so namespaces never see each other's keys whatever their names. `size` and `clear` walk the
 *   namespace with `SCAN` and an escaped `MATCH` pattern (never `KEYS`).
 * - **Values** keep their kind (string or bytes) in a one-byte tag; keys and values are binary
 *   safe.
 * - **Errors** are `PlatformError`s carrying the ioredis error as `cause`. A command whose
 *   connection drops before its reply (including one queued while the client was reconnecting
 *   and written on the new connection) fails at once with `UnexpectedEof` (its outcome is
 *   unknown) instead of being resent or left pending.
 *
 * @example
 * ```ts
 * import { RedisStore } from "@durable-singleton/store-redis"
 * import { Store } from "@durable-singleton/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* Store.Store
 *   yield* store.setIfAbsent("counter", "0")
 *   return yield* store.modify("counter", (n) => String(Number(n) + 1))
 * })
 *
 * program.pipe(
 *   Effect.provide(RedisStore.layer({ url: "redis://localhost:6379", namespace: "my-service" })),
 *   Effect.runPromise
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as Store from "@durable-singleton/core/Store"
import type * as PlatformError from "@effect/platform/Error"
import type * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { Redis, RedisOptions } from "ioredis"
import * as Connection from "./internal/connection.js"
import * as KeySpace from "./internal/keySpace.js"
import * as Namespace from "./internal/namespace.js"
import { decode, encode, Modifier } from "./internal/modifier.js"

/**
 * Options of a store on a client you already have: where its keys go, and how hard it retries.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreOptions {
  /**
   * The namespace the store works in: `size`, `clear` and every key are confined to it. Any
   * string; namespaces never see each other, even `a` and `a:b`. Default `"default"`.
   */
  readonly namespace?: string
  /**
   * Raw bytes every key of every namespace starts with (like ioredis' `keyPrefix`, and added
   * after it if the client has one). Default `"durable-singleton:"`. Namespaces are isolated
   * within one prefix; pick prefixes that are not prefixes of each other for unrelated data.
   */
  readonly prefix?: string
  /**
   * How many compare-and-set attempts an update makes while other clients keep changing the
   * key, before it fails with a `SystemError` (`Busy`). The first conflicts are retried at once,
   * later ones after a pause of 1–2 ms, so the default (1000) gives up after about a second or
   * more of uninterrupted contention. Measured with 4 processes incrementing one key as fast
   * as they can on a loaded 2-core machine, one update in tens of thousands needed more than 64.
   */
  readonly maxAttempts?: number
}

/**
 * A store with its own Redis connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends StoreOptions {
  /** A `redis://` or `rediss://` URL; combined with `redis` (whose fields win). */
  readonly url?: string | Redacted.Redacted<string>
  /**
   * ioredis options. The store connects eagerly (its `lazyConnect` is ignored) and always
   * turns off `autoResendUnfulfilledCommands`, so that a write in flight when the connection
   * drops is never run twice (see {@link fromClient}). Unless set here, it also turns off the
   * offline queue (a command issued while disconnected fails at once, having sent nothing, instead
   * of waiting through ioredis' reconnection attempts, 10–40 s by default) and reconnects at most
   * 0.5 s apart.
   */
  readonly redis?: RedisOptions
}

/**
 * @since 0.1.0
 * @category constants
 */
export const defaultNamespace = "default"

/**
 * @since 0.1.0
 * @category constants
 */
export const defaultPrefix = "durable-singleton:"

/**
 * Opens a store with its own connection, which it connects before returning (a server that
 * cannot be reached fails here with a `SystemError`) and quits when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Store.Store, PlatformError.PlatformError, Scope.Scope> =>
  Effect.flatMap(Connection.acquire(options), (client) => fromClient(client, options))

/**
 * Opens a store on a client you already have (it may be shared with other code). The store
 * never quits it; when the scope closes, the store's operations fail with a `SystemError`
 * (`BadResource`) and the client is left as it was.
 *
 * If the client has a `keyPrefix`, the store's keys go under it. The client must be created with
 * `autoResendUnfulfilledCommands: false`; otherwise this fails with `BadArgument`. With it on
 * (ioredis' default) ioredis sends a command again after a reconnect even though the store has
 * already reported it failed: a write whose reply was lost could apply twice, or overwrite a
 * later write.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromClient = (
  client: Redis,
  options: StoreOptions = {}
): Effect.Effect<Store.Store, PlatformError.PlatformError, Scope.Scope> =>
  Effect.suspend(() => {
    const namespace = options.namespace ?? defaultNamespace
    const prefix = options.prefix ?? defaultPrefix
    const maxAttempts = options.maxAttempts ?? 1000
    const invalidNamespace = Store.checkNamespace("make", namespace)
    if (invalidNamespace) return Effect.fail(invalidNamespace)
    const invalidPrefix = Connection.checkPrefix("make", prefix)
    if (invalidPrefix) return Effect.fail(invalidPrefix)
    if (!Number.isSafeInteger(maxAttempts) || maxAttempts < 1) {
      return Effect.fail(Store.badArgument("make", `maxAttempts must be a positive integer, got ${maxAttempts}`))
    }
    const unsafeClient = Connection.checkClient("make", client)
    if (unsafeClient) return Effect.fail(unsafeClient)
    const keySpace = KeySpace.make({ prefix, namespace, clientKeyPrefix: client.options.keyPrefix ?? "" })
    return Effect.map(
      Connection.attach(client),
      (attachment) => Store.make(makeBackend(namespace, keySpace, maxAttempts, attachment))
    )
  })

/**
 * A store with its own connection, providing both `Store.Store` and the platform
 * `KeyValueStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<Store.Store | KeyValueStore.KeyValueStore, PlatformError.PlatformError> => Store.layer(make(options))

/**
 * A store on a client you already have (see {@link fromClient}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromClient = (
  client: Redis,
  options?: StoreOptions
): Layer.Layer<Store.Store | KeyValueStore.KeyValueStore, PlatformError.PlatformError> =>
  Store.layer(fromClient(client, options))

/**
 * A store configured from `Config`, by default from the environment: `REDIS_URL` (required),
 * `REDIS_STORE_NAMESPACE` and `REDIS_STORE_PREFIX` (optional).
 *
 * @example
 * ```ts
 * import { RedisStore } from "@durable-singleton/store-redis"
 * import { Config } from "effect"
 *
 * // REDIS_URL, REDIS_STORE_NAMESPACE, REDIS_STORE_PREFIX
 * const fromEnv = RedisStore.layerConfig()
 *
 * const custom = RedisStore.layerConfig({
 *   url: Config.redacted("CACHE_REDIS_URL"),
 *   namespace: Config.succeed("billing")
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<Options> = defaultConfig
): Layer.Layer<Store.Store | KeyValueStore.KeyValueStore, ConfigError.ConfigError | PlatformError.PlatformError> =>
  Store.layer(Effect.flatMap(Config.unwrap(config), make))

const defaultConfig: Config.Config<Options> = Config.all({
  url: Config.redacted("REDIS_URL"),
  namespace: Config.option(Config.string("REDIS_STORE_NAMESPACE")),
  prefix: Config.option(Config.string("REDIS_STORE_PREFIX"))
}).pipe(Config.map(({ namespace, prefix, url }): Options => ({
  url,
  ...Option.match(namespace, { onNone: () => ({}), onSome: (namespace) => ({ namespace }) }),
  ...Option.match(prefix, { onNone: () => ({}), onSome: (prefix) => ({ prefix }) })
})))

// internal

const makeBackend = (
  namespace: string,
  keySpace: KeySpace.KeySpace,
  maxAttempts: number,
  attachment: Connection.Attachment
): Store.Backend => {
  const { connection } = attachment
  const client = connection.client
  const redisKey = (key: string) => keySpace.keyPrefix + key
  const closedError = (method: string) =>
    Store.systemError(method, undefined, { reason: "BadResource", description: "the store is closed" })
  // One command; `onReply` maps its reply to the result (or a failure).
  const command = <A, B>(
    method: string,
    run: () => Promise<A>,
    onReply: (reply: A) => Effect.Effect<B, PlatformError.PlatformError>
  ): Effect.Effect<B, PlatformError.PlatformError> =>
    Effect.async((resume) => {
      if (attachment.closed) return resume(Effect.fail(closedError(method)))
      connection.send(
        run,
        (reply) => resume(onReply(reply)),
        (error) => resume(Effect.fail(Connection.toPlatformError(method, error)))
      )
    })

  // Several commands, written as a promise.
  const commands = <A>(method: string, run: () => Promise<A>): Effect.Effect<A, PlatformError.PlatformError> =>
    Effect.async((resume) => {
      if (attachment.closed) return resume(Effect.fail(closedError(method)))
      run().then(
        (value) => resume(Effect.succeed(value)),
        (error) => resume(Effect.fail(Connection.toPlatformError(method, error)))
      )
    })

  const modifier = new Modifier({ connection, maxAttempts, isClosed: () => attachment.closed, closedError })

  return {
    namespace,
    get: (key) =>
      command("get", () => client.getBuffer(redisKey(key)), (bytes) => {
        if (bytes === null) return Effect.succeedNone
        const value = decode("get", bytes)
        return typeof value === "string" || value instanceof Uint8Array ? Effect.succeedSome(value) : Effect.fail(value)
      }),
    set: (key, value) => command("set", () => client.set(redisKey(key), encode(value)), () => Effect.void),
    remove: (key) => command("remove", () => client.del(redisKey(key)), () => Effect.void),
    has: (key) => command("has", () => client.exists(redisKey(key)), (n) => Effect.succeed(n > 0)),
    size: commands("size", () => Namespace.size(connection, keySpace)),
    clear: commands("clear", () => Namespace.clear(connection, keySpace)),
    modifyOrInit: (key, f) => modifier.modifyOrInit(redisKey(key), f)
  }
}
