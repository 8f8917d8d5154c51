/**
 * A `BackingPersistence` for `@effect/experimental`'s `Persistence` (and so its
 * `ResultPersistence`, used by `PersistedCache` and request resolvers) on Redis, with the key
 * layout and error handling of {@link RedisStore}.
 *
 * Unlike `@effect/experimental`'s own bridges (read in 0.61.1's source: the `KeyValueStore`
 * bridge's `setMany` skips every entry that has no time-to-live, and its `clear` goes through
 * `KeyValueStore.prefix`, whose `clear` is not prefixed: it wipes the whole underlying store;
 * the Redis bridge's `clear` runs `KEYS`):
 *
 * - each `storeId` is an isolated namespace (`clear` deletes that store's keys only, found with
 *   an escaped `SCAN`, never `KEYS`), whatever the ids contain;
 * - `setMany` writes every entry, in one `MULTI` transaction, with or without time-to-live;
 * - time-to-live is Redis' own (`PX`): expired entries disappear on the server, no read needed;
 *   a time-to-live of zero or less removes the entry, an infinite one stores it without expiry.
 *
 * Values are stored as JSON text (the form `Persistence` hands over) in the store's tagged format.
 *
 * @example
 * ```ts
 * import { RedisPersistence } from "@durable-singleton/store-redis"
 * import * as Persistence from "@effect/experimental/Persistence"
 * import { Layer } from "effect"
 *
 * const ResultPersistenceLive = Persistence.layerResult.pipe(
 *   Layer.provide(RedisPersistence.layer({ url: "redis://localhost:6379" }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as Store from "@durable-singleton/core/Store"
import * as Persistence from "@effect/experimental/Persistence"
import * as PlatformError from "@effect/platform/Error"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { ChainableCommander, Redis, RedisOptions } from "ioredis"
import * as Connection from "./internal/connection.js"
import * as KeySpace from "./internal/keySpace.js"
import { decode, encode } from "./internal/modifier.js"
import * as Namespace from "./internal/namespace.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface PersistenceOptions {
  /**
   * Raw bytes every key starts with; each store id is a namespace under it, laid out as in
   * `RedisStore` (`prefix + byteLength(id) + ":" + id + ":" + key`). Default
   * `"durable-singleton:persistence:"`, which no `RedisStore` key under the default prefix can
   * start with. Under the same prefix as a `RedisStore`, a store id and a namespace of the same
   * name would share keys.
   */
  readonly prefix?: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options extends PersistenceOptions {
  readonly url?: string | Redacted.Redacted<string>
  /** ioredis options; as for `RedisStore.make`. */
  readonly redis?: RedisOptions
}

/**
 * @since 0.1.0
 * @category constants
 */
export const defaultPrefix = "durable-singleton:persistence:"

/**
 * A backing persistence with its own connection (connected before it returns, quit when the
 * scope closes).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<Persistence.BackingPersistence, PlatformError.PlatformError, Scope.Scope> =>
  Effect.flatMap(Connection.acquire(options), (client) => fromClient(client, options))

/**
 * A backing persistence on a client you already have; it never quits the client. When the scope
 * closes, its stores' operations fail with `PersistenceBackingError`.
 *
 * As for `RedisStore.fromClient`, the client must be created with
 * `autoResendUnfulfilledCommands: false` (otherwise this fails with `BadArgument`): with it on,
 * ioredis resends after a reconnect a write already reported failed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromClient = (
  client: Redis,
  options: PersistenceOptions = {}
): Effect.Effect<Persistence.BackingPersistence, PlatformError.PlatformError, Scope.Scope> =>
  Effect.suspend(() => {
    const prefix = options.prefix ?? defaultPrefix
    const invalid = Connection.checkPrefix("make", prefix) ?? Connection.checkClient("make", client)
    if (invalid) return Effect.fail(invalid)
    return Effect.map(
      Connection.attach(client),
      (attachment) =>
        Persistence.BackingPersistence.of({
          [Persistence.BackingPersistenceTypeId]: Persistence.BackingPersistenceTypeId,
          make: (storeId) =>
            Effect.sync(() =>
              makeStore(
                attachment,
                KeySpace.make({ prefix, namespace: storeId, clientKeyPrefix: client.options.keyPrefix ?? "" })
              )
            )
        })
    )
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Persistence.BackingPersistence, PlatformError.PlatformError> =>
  Layer.scoped(Persistence.BackingPersistence, make(options))

/**
 * `ResultPersistence` (for `PersistedCache`, persisted request resolvers) on Redis.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerResult = (
  options: Options = {}
): Layer.Layer<Persistence.ResultPersistence, PlatformError.PlatformError> =>
  Persistence.layerResult.pipe(Layer.provide(layer(options)))

// internal

const makeStore = (
  attachment: Connection.Attachment,
  keySpace: KeySpace.KeySpace
): Persistence.BackingPersistenceStore => {
  const { connection } = attachment
  const client = connection.client
  const redisKey = (key: string) => keySpace.keyPrefix + key

  // The cause is a PlatformError, as `RedisStore` reports it.
  const failure = (method: string, cause: unknown) =>
    Persistence.PersistenceBackingError.make(
      method,
      PlatformError.isPlatformError(cause) ? cause : Connection.toPlatformError(method, cause)
    )

  const run = <A>(method: string, commands: () => Promise<A>): Effect.Effect<A, Persistence.PersistenceError> =>
    Effect.async((resume) => {
      if (attachment.closed) {
        const closed = Store.systemError(method, undefined, { reason: "BadResource", description: "the persistence is closed" })
        return resume(Effect.fail(failure(method, closed)))
      }
      commands().then(
        (value) => resume(Effect.succeed(value)),
        (error) => resume(Effect.fail(failure(method, error)))
      )
    })

  const parse = (method: string, bytes: Buffer | null): Option.Option<unknown> => {
    if (bytes === null) return Option.none()
    const text = decode(method, bytes)
    if (typeof text !== "string") {
      throw typeof text === "object" && PlatformError.isPlatformError(text) ? text : invalidJson(method)
    }
    try {
      return Option.some(JSON.parse(text))
    } catch {
      throw invalidJson(method)
    }
  }

  // Queues the write of one entry on a pipeline or transaction.
  const write = (commands: ChainableCommander, key: string, value: unknown, ttl: Option.Option<Duration.Duration>) => {
    const ms = ttl._tag === "None" ? Infinity : Duration.toMillis(ttl.value)
    if (ms <= 0) return commands.del(redisKey(key)) // already expired
    const bytes = encode(JSON.stringify(value))
    return Number.isFinite(ms) ? commands.set(redisKey(key), bytes, "PX", Math.ceil(ms)) : commands.set(redisKey(key), bytes)
  }

  // Sends the queued commands; fails if any of them failed.
  const exec = async (commands: ChainableCommander) => {
    const results = await connection.call(() => commands.exec())
    for (const [error] of results ?? []) if (error) throw error
  }

  return {
    get: (key) => run("get", async () => parse("get", await connection.call(() => client.getBuffer(redisKey(key))))),
    getMany: (keys) =>
      run("getMany", async () => {
        if (keys.length === 0) return []
        const values = await connection.call(() => client.mgetBuffer(...keys.map(redisKey)))
        return values.map((bytes) => parse("getMany", bytes))
      }),
    set: (key, value, ttl) => run("set", () => exec(write(client.pipeline(), key, value, ttl))),
    setMany: (entries) =>
      run("setMany", async () => {
        if (entries.length === 0) return
        const transaction = client.multi()
        for (const [key, value, ttl] of entries) write(transaction, key, value, ttl)
        await exec(transaction)
      }),
    remove: (key) => run("remove", () => connection.call(() => client.del(redisKey(key)))).pipe(Effect.asVoid),
    clear: run("clear", () => Namespace.clear(connection, keySpace))
  }
}

const invalidJson = (method: string) =>
  Store.systemError(method, undefined, { reason: "InvalidData", description: "the key holds a value that is not JSON" })
