/**
 * The store contract: a platform `KeyValueStore` whose `modify` is atomic, plus one atomic
 * primitive that can also create a missing key (`modifyOrInit`).
 *
 * A backend (PostgreSQL, Redis, SQLite, memory, or your own) implements the small
 * {@link Backend} interface; {@link make} derives the whole {@link Store} service from it,
 * including the platform `KeyValueStore` (so code written against `@effect/platform` keeps
 * working) and an atomic typed view (`forSchema`). Everything that is the same for every backend
 * (key and value validation, the platform semantics of `get` / `getUint8Array`, typed access)
 * lives here, once.
 *
 * What every backend guarantees (checked by `@durable-singleton/conformance`):
 *
 * - **Keys**: any well-formed UTF-16 string of at most {@link maxKeyBytes} UTF-8 bytes: empty,
 *   any Unicode without normalisation, case-sensitive, NUL and `%_*?[:'"` and newlines included,
 *   round-trips exactly and never aliases another key. Lone surrogates are rejected with
 *   `BadArgument` (no backend could store them faithfully).
 * - **Values**: strings (well-formed, any length up to at least 1 MiB, NUL included) and
 *   `Uint8Array`s round-trip exactly, and a value remembers whether it was a string or bytes.
 *   Bytes are read back as plain `Uint8Array`s, never as a Node `Buffer` (whose `slice` is a
 *   view of the same memory, not a copy). `get` of a bytes value returns it base64-encoded and
 *   `getUint8Array` of a string value returns its UTF-8 bytes, as the platform's in-memory store
 *   does.
 * - **Atomicity**: `modifyOrInit(key, f)` runs `f` on the value current at the moment of the
 *   write and stores its result only for that value, across fibers, clients and processes. `f`
 *   may be called more than once (optimistic backends retry); it must be pure. An `f` that
 *   throws is a defect of its own call: that call writes nothing, and other calls go on. `modify`
 *   and `setIfAbsent` are built on it.
 * - **Namespaces**: a store works inside one namespace; `size`, `isEmpty` and `clear` see only
 *   it. Namespaces whose names are prefixes of each other or contain metacharacters never see
 *   each other's keys.
 * - **Errors**: failures are `PlatformError`s in the error channel with the backend's error as
 *   `cause`; a failed write changes nothing that a later read can see as half-written, and no
 *   operation reports success for a write that did not happen.
 *
 * @since 0.1.0
 */
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as PlatformError from "@effect/platform/Error"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Encoding from "effect/Encoding"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@durable-singleton/core/Store")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * A stored value: a string or bytes. Backends keep the distinction.
 *
 * @since 0.1.0
 * @category models
 */
export type Value = string | Uint8Array

/**
 * What `f` of {@link Backend.modifyOrInit} decides: the result to return, and the value to
 * store (`Option.none()` writes nothing).
 *
 * @since 0.1.0
 * @category models
 */
export type Decision<A> = readonly [result: A, next: Option.Option<Value>]

/**
 * What a backend implements. Keys and values reaching a backend have been validated by
 * {@link make}: keys are well-formed strings of at most {@link maxKeyBytes} UTF-8 bytes, values
 * are well-formed strings or `Uint8Array`s.
 *
 * @since 0.1.0
 * @category models
 */
export interface Backend {
  /** The namespace this store works in (for messages and diagnostics). */
  readonly namespace: string
  readonly get: (key: string) => Effect.Effect<Option.Option<Value>, PlatformError.PlatformError>
  readonly set: (key: string, value: Value) => Effect.Effect<void, PlatformError.PlatformError>
  readonly remove: (key: string) => Effect.Effect<void, PlatformError.PlatformError>
  /** Optional fast path; derived from `get` when absent. */
  readonly has?: (key: string) => Effect.Effect<boolean, PlatformError.PlatformError>
  /** The number of keys in this namespace only. */
  readonly size: Effect.Effect<number, PlatformError.PlatformError>
  /** Removes every key of this namespace, and nothing else. */
  readonly clear: Effect.Effect<void, PlatformError.PlatformError>
  /**
   * Atomically: read the current value (`Option.none()` when absent), call `f`, and store its
   * `next` value (if some) only if the key still holds the value `f` saw. May call `f` again
   * after a conflict; returns the result of the call whose decision took effect.
   */
  readonly modifyOrInit: <A>(
    key: string,
    f: (current: Option.Option<Value>) => Decision<A>
  ) => Effect.Effect<A, PlatformError.PlatformError>
}

/**
 * The store service: the platform `KeyValueStore` (atomic `modify`), plus `modifyOrInit` and
 * `setIfAbsent`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Store extends KeyValueStore.KeyValueStore {
  readonly [TypeId]: TypeId
  readonly namespace: string
  /**
   * Atomically reads the value (absent or present), decides, and writes (or not). See
   * {@link Backend.modifyOrInit}. A `next` value that is not a well-formed string or a
   * `Uint8Array` fails with `BadArgument` and writes nothing.
   */
  readonly modifyOrInit: <A>(
    key: string,
    f: (current: Option.Option<Value>) => Decision<A>
  ) => Effect.Effect<A, PlatformError.PlatformError>
  /** Creates the key with `value` if it is absent; `true` if this call created it. */
  readonly setIfAbsent: (key: string, value: Value) => Effect.Effect<boolean, PlatformError.PlatformError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export const Store: Context.Tag<Store, Store> = Context.GenericTag<Store>("@durable-singleton/core/Store")

/**
 * The longest key, in UTF-8 bytes, that every store accepts. Longer keys fail with
 * `BadArgument`.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxKeyBytes = 1024

/**
 * @since 0.1.0
 * @category refinements
 */
export const isStore = (u: unknown): u is Store => Predicate.hasProperty(u, TypeId)

/**
 * Builds the full store service from a backend.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (backend: Backend): Store => {
  const modifyOrInit = <A>(
    key: string,
    f: (current: Option.Option<Value>) => Decision<A>
  ): Effect.Effect<A, PlatformError.PlatformError> => {
    const invalidKey = checkKey("modifyOrInit", key)
    if (invalidKey) return invalidKey
    let rejected: PlatformError.PlatformError | undefined
    return Effect.flatMap(
      backend.modifyOrInit(key, (current): Decision<A | typeof Rejected> => {
        const decision = f(current)
        if (Option.isSome(decision[1])) {
          rejected = valueProblem("modifyOrInit", decision[1].value)
          if (rejected) return [Rejected, Option.none()]
        }
        return decision
      }),
      (result) => result === Rejected ? Effect.fail(rejected!) : Effect.succeed(result)
    )
  }

  const modifyAs = <V extends Value>(method: string, read: (value: Value) => V) =>
  (key: string, f: (value: V) => V): Effect.Effect<Option.Option<V>, PlatformError.PlatformError> => {
    const invalidKey = checkKey(method, key)
    if (invalidKey) return invalidKey
    let rejected: PlatformError.PlatformError | undefined
    return Effect.flatMap(
      backend.modifyOrInit(key, (current): Decision<Option.Option<V> | typeof Rejected> => {
        if (current._tag === "None") return noChange
        const next = f(read(current.value))
        rejected = valueProblem(method, next)
        if (rejected) return [Rejected, Option.none()]
        const some = Option.some(next)
        return [some, some]
      }),
      (result) => result === Rejected ? Effect.fail(rejected!) : Effect.succeed(result)
    )
  }

  const store: Store = {
    [TypeId]: TypeId,
    [KeyValueStore.TypeId]: KeyValueStore.TypeId,
    namespace: backend.namespace,
    get: (key) => checkKey("get", key) ?? Effect.map(backend.get(key), Option.map(asString)),
    getUint8Array: (key) => checkKey("getUint8Array", key) ?? Effect.map(backend.get(key), Option.map(asBytes)),
    set: (key, value) => checkKey("set", key) ?? checkValue("set", value) ?? backend.set(key, value),
    remove: (key) => checkKey("remove", key) ?? backend.remove(key),
    has: (key) =>
      checkKey("has", key) ?? (backend.has ? backend.has(key) : Effect.map(backend.get(key), Option.isSome)),
    size: backend.size,
    isEmpty: Effect.map(backend.size, (size) => size === 0),
    clear: backend.clear,
    modify: modifyAs("modify", asString),
    modifyUint8Array: modifyAs("modifyUint8Array", asBytes),
    modifyOrInit,
    setIfAbsent: (key, value) =>
      checkValue("setIfAbsent", value) ??
        modifyOrInit(key, (current) => current._tag === "None" ? [true, Option.some(value)] : [false, Option.none()]),
    forSchema: (schema) => makeSchemaStore(store, schema)
  }
  return store
}

/**
 * A layer providing both the {@link Store} tag and the platform `KeyValueStore` tag (the same
 * service) from a backend.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E, R>(
  backend: Effect.Effect<Backend, E, R>
): Layer.Layer<Store | KeyValueStore.KeyValueStore, E, Exclude<R, Scope.Scope>> =>
  Layer.scopedContext(Effect.map(backend, (backend) => {
    const store = make(backend)
    return Context.make(Store, store).pipe(Context.add(KeyValueStore.KeyValueStore, store))
  }))

/**
 * The platform `KeyValueStore` tag, provided by the {@link Store} in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerKeyValueStore: Layer.Layer<KeyValueStore.KeyValueStore, never, Store> = Layer.effect(
  KeyValueStore.KeyValueStore,
  Store
)

/**
 * `backend` with every operation passed through `change`, told the operation's name: for
 * backends built on other backends (fault injection, gating, deliberately broken stores).
 *
 * @since 0.1.0
 * @category combinators
 */
export const mapBackend = (
  backend: Backend,
  change: <A>(
    method: string,
    effect: Effect.Effect<A, PlatformError.PlatformError>
  ) => Effect.Effect<A, PlatformError.PlatformError>
): Backend => ({
  namespace: backend.namespace,
  get: (key) => change("get", backend.get(key)),
  set: (key, value) => change("set", backend.set(key, value)),
  remove: (key) => change("remove", backend.remove(key)),
  ...(backend.has === undefined ? {} : { has: (key: string) => change("has", backend.has!(key)) }),
  size: change("size", backend.size),
  clear: change("clear", backend.clear),
  modifyOrInit: (key, f) => change("modifyOrInit", backend.modifyOrInit(key, f))
})

/**
 * A backend failure as a `PlatformError` (`SystemError`, module `KeyValueStore`), keeping the
 * backend's error as `cause`. For backend authors.
 *
 * @since 0.1.0
 * @category errors
 */
export const systemError = (
  method: string,
  cause: unknown,
  options?: { readonly reason?: PlatformError.SystemErrorReason; readonly description?: string }
): PlatformError.PlatformError =>
  new PlatformError.SystemError({
    module: "KeyValueStore",
    method,
    reason: options?.reason ?? "Unknown",
    description: options?.description ?? describe(cause),
    cause
  })

/**
 * Input no store can accept, as a `PlatformError` (`BadArgument`, module `KeyValueStore`).
 *
 * @since 0.1.0
 * @category errors
 */
export const badArgument = (method: string, description: string): PlatformError.PlatformError =>
  new PlatformError.BadArgument({ module: "KeyValueStore", method, description })

/**
 * Checks the namespace a backend is opened on: a string, well-formed (lone surrogates cannot be
 * stored faithfully: two different ones would alias), and at most `maxBytes` UTF-8 bytes where
 * the backend has such a limit. Returns the `BadArgument` to fail with, or `undefined`. For
 * backend authors.
 *
 * @since 0.1.0
 * @category errors
 */
export const checkNamespace = (
  method: string,
  namespace: string,
  options?: { readonly maxBytes?: number }
): PlatformError.PlatformError | undefined => {
  if (typeof namespace !== "string") return badArgument(method, `namespace must be a string, got ${typeof namespace}`)
  if (!namespace.isWellFormed()) return badArgument(method, "namespace is not well-formed UTF-16 (lone surrogate)")
  if (options?.maxBytes !== undefined && keyBytes(namespace) > options.maxBytes) {
    return badArgument(method, `namespace is ${keyBytes(namespace)} UTF-8 bytes, more than ${options.maxBytes}`)
  }
  return undefined
}

/**
 * Why no store can hold `key` (not a string, not well-formed UTF-16, longer than
 * {@link maxKeyBytes} UTF-8 bytes), or `undefined` for a valid key. Every store operation fails
 * with `BadArgument` for such a key; definitions that build keys (`FencedState.make`) check them
 * up front.
 *
 * @since 0.1.0
 * @category utils
 */
export const keyProblem = (key: string): string | undefined => {
  if (typeof key !== "string") return `key must be a string, got ${typeof key}`
  if (!key.isWellFormed()) return "key is not well-formed UTF-16 (lone surrogate)"
  if (key.length > shortKeyUnits && keyBytes(key) > maxKeyBytes) {
    return `key is ${keyBytes(key)} UTF-8 bytes, more than ${maxKeyBytes}`
  }
  return undefined
}

/**
 * The length of `key` in UTF-8 bytes.
 *
 * @since 0.1.0
 * @category utils
 */
export const keyBytes = (key: string): number => utf8.encode(key).length

/**
 * A value as a string, the way `get` returns it: bytes are base64-encoded.
 *
 * @since 0.1.0
 * @category utils
 */
export const asString = (value: Value): string => typeof value === "string" ? value : Encoding.encodeBase64(value)

/**
 * A value as bytes, the way `getUint8Array` returns it: strings are UTF-8-encoded.
 *
 * @since 0.1.0
 * @category utils
 */
export const asBytes = (value: Value): Uint8Array => typeof value === "string" ? utf8.encode(value) : value

/**
 * Whether two values are equal, kind (string or bytes) included.
 *
 * @since 0.1.0
 * @category utils
 */
export const valueEquals = (a: Value, b: Value): boolean => {
  if (typeof a === "string" || typeof b === "string") return a === b
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return false
  }
  return true
}

/**
 * Encodes a value as bytes that remember its kind: one tag byte (`0` string, `1` bytes) then
 * the UTF-8 text or the raw bytes. For backends that can only store bytes.
 *
 * @since 0.1.0
 * @category codec
 */
export const encodeTagged = (value: Value): Uint8Array => {
  const payload = typeof value === "string" ? utf8.encode(value) : value
  const out = new Uint8Array(1 + payload.length)
  out[0] = typeof value === "string" ? 0 : 1
  out.set(payload, 1)
  return out
}

/**
 * Decodes what {@link encodeTagged} produced; `undefined` for bytes that are not such an
 * encoding (an unknown tag, or text that is not valid UTF-8).
 *
 * @since 0.1.0
 * @category codec
 */
export const decodeTagged = (bytes: Uint8Array): Value | undefined => {
  switch (bytes[0]) {
    case 0:
      try {
        return strictUtf8.decode(bytes.subarray(1))
      } catch {
        return undefined
      }
    case 1:
      // A plain copy, also when given a Node Buffer (whose `slice` is a view of the input).
      return new Uint8Array(bytes.subarray(1))
    default:
      return undefined
  }
}

// internal

const utf8 = new TextEncoder()
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

const Rejected: unique symbol = Symbol.for("@durable-singleton/core/Store/Rejected")
const noChange: Decision<Option.Option<never>> = [Option.none(), Option.none()]

// Three UTF-16 units never take more than 9 UTF-8 bytes: short keys need no encoding to measure.
const shortKeyUnits = Math.floor(maxKeyBytes / 3)

const checkKey = (method: string, key: string): Effect.Effect<never, PlatformError.PlatformError> | undefined => {
  const problem = keyProblem(key)
  return problem === undefined ? undefined : Effect.fail(badArgument(method, problem))
}

const valueProblem = (method: string, value: unknown): PlatformError.PlatformError | undefined => {
  if (typeof value === "string") {
    return value.isWellFormed() ? undefined : badArgument(method, "value is not well-formed UTF-16 (lone surrogate)")
  }
  if (value instanceof Uint8Array) return undefined
  return badArgument(method, `value must be a string or a Uint8Array, got ${typeof value}`)
}

const checkValue = (method: string, value: unknown): Effect.Effect<never, PlatformError.PlatformError> | undefined => {
  const problem = valueProblem(method, value)
  return problem && Effect.fail(problem)
}

const describe = (cause: unknown): string | undefined =>
  Predicate.hasProperty(cause, "message") && typeof cause.message === "string" ? cause.message : undefined

// An atomic typed view: `modify` decodes, applies `f` and encodes inside the store's own atomic
// `modifyOrInit` (the platform's `forSchema(...).modify` is get-then-set). Decoding there is
// synchronous, so schemas that need services or async work fail with a `ParseError`.
const makeSchemaStore = <A, I, R>(
  store: Store,
  schema: Schema.Schema<A, I, R>
): KeyValueStore.SchemaStore<A, R> => {
  const json = Schema.parseJson(schema)
  const decode = Schema.decodeUnknown(json)
  const encode = Schema.encode(json)
  const decodeSync = ParseResult.decodeUnknownEither(json as unknown as Schema.Schema<A, string>)
  const encodeSync = ParseResult.encodeEither(json as unknown as Schema.Schema<A, string>)
  const get = (key: string) =>
    Effect.flatMap(store.get(key), (o) => o._tag === "None" ? Effect.succeedNone : Effect.asSome(decode(o.value)))
  return {
    [KeyValueStore.SchemaStoreTypeId]: KeyValueStore.SchemaStoreTypeId,
    get,
    set: (key, value) => Effect.flatMap(encode(value), (encoded) => store.set(key, encoded)),
    modify: (key, f) =>
      Effect.flatMap(
        store.modifyOrInit(
          key,
          (current): Decision<Either.Either<Option.Option<A>, ParseResult.ParseError>> => {
            if (current._tag === "None") return [Either.right(Option.none()), Option.none()]
            const decoded = decodeSync(asString(current.value))
            if (decoded._tag === "Left") return [Either.left(new ParseResult.ParseError({ issue: decoded.left })), Option.none()]
            const next = f(decoded.right)
            const encoded = encodeSync(next)
            if (encoded._tag === "Left") return [Either.left(new ParseResult.ParseError({ issue: encoded.left })), Option.none()]
            return [Either.right(Option.some(next)), Option.some(encoded.right)]
          }
        ),
        (result) => result
      ),
    remove: store.remove,
    clear: store.clear,
    size: store.size,
    has: store.has,
    isEmpty: store.isEmpty
  }
}
