/**
 * An atomic, namespaced, in-memory {@link Store.Store}: the reference implementation of the store
 * contract, for unit tests of singleton logic.
 *
 * Several clients can be opened on one shared {@link Storage} (each with its own namespace and
 * lifetime), which is how tests simulate several processes or a leader handoff in one process.
 *
 * @example
 * ```ts
 * import { MemoryStore, Store } from "@durable-singleton/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* Store.Store
 *   yield* store.set("counter", "0")
 *   return yield* store.modify("counter", (n) => String(Number(n) + 1))
 * })
 *
 * Effect.runPromise(Effect.provide(program, MemoryStore.layer)) // Option.some("1")
 * ```
 *
 * @since 0.1.0
 */
import type * as PlatformError from "@effect/platform/Error"
import type * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Store from "./Store.js"

/**
 * Shared in-memory storage: one map per namespace. Open clients on it with {@link make} or
 * {@link layerStorage}.
 *
 * @since 0.1.0
 * @category models
 */
export class Storage {
  /** @internal */
  readonly namespaces = new Map<string, Map<string, Store.Value>>()

  /** @internal */
  namespace(name: string): Map<string, Store.Value> {
    let entries = this.namespaces.get(name)
    if (entries === undefined) {
      entries = new Map()
      this.namespaces.set(name, entries)
    }
    return entries
  }
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeStorage = (): Storage => new Storage()

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The storage to open a client on; a fresh one when absent. */
  readonly storage?: Storage
  /** Defaults to `"default"`. Any string is a valid, isolated namespace. */
  readonly namespace?: string
}

/**
 * Opens a client. When its scope closes, the client's operations fail with a `SystemError`
 * (`BadResource`), as a closed connection would; the storage and other clients are unaffected.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: Options): Effect.Effect<Store.Store, never, Scope.Scope> =>
  Effect.map(makeBackend(options), Store.make)

/**
 * The backend under {@link make}: for building test doubles (a store that fails, loses
 * acknowledgements, or breaks the contract on purpose) on top of a correct one.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeBackend = (options?: Options): Effect.Effect<Store.Backend, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(Effect.sync(() => ({ closed: false })), (client) =>
      Effect.sync(() => {
        client.closed = true
      })),
    (client): Store.Backend => {
      const namespace = options?.namespace ?? "default"
      const entries = (options?.storage ?? makeStorage()).namespace(namespace)
      const op = <A>(method: string, f: () => A): Effect.Effect<A, PlatformError.PlatformError> =>
        Effect.suspend(() => client.closed ? Effect.fail(closedError(method)) : Effect.succeed(f()))
      return {
        namespace,
        get: (key) => op("get", () => Option.map(Option.fromNullable(entries.get(key)), copy)),
        set: (key, value) =>
          op("set", () => {
            entries.set(key, copy(value))
          }),
        remove: (key) =>
          op("remove", () => {
            entries.delete(key)
          }),
        has: (key) => op("has", () => entries.has(key)),
        size: op("size", () => entries.size),
        clear: op("clear", () => entries.clear()),
        modifyOrInit: (key, f) =>
          op("modifyOrInit", () => {
            const current = entries.get(key)
            const [result, next] = f(current === undefined ? Option.none() : Option.some(copy(current)))
            if (next._tag === "Some") entries.set(key, copy(next.value))
            return result
          })
      }
    }
  )

/**
 * A store on fresh storage, in namespace `"default"`, providing both `Store.Store` and the
 * platform `KeyValueStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Store.Store | KeyValueStore.KeyValueStore> = Store.layer(makeBackend())

/**
 * A client on shared storage.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerStorage = (
  storage: Storage,
  options?: { readonly namespace?: string }
): Layer.Layer<Store.Store | KeyValueStore.KeyValueStore> => Store.layer(makeBackend({ storage, ...options }))

// Bytes are copied in and out so that callers mutating their arrays cannot change stored values;
// as plain Uint8Arrays (a Node Buffer's `slice` would be a view of the caller's memory).
const copy = (value: Store.Value): Store.Value => typeof value === "string" ? value : new Uint8Array(value)

const closedError = (method: string) =>
  Store.systemError(method, undefined, { reason: "BadResource", description: "the store client is closed" })
