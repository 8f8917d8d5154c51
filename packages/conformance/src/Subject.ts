/**
 * A subject describes a store under test: how to get fresh, isolated storage for one test, and
 * how to open several independent clients on it.
 *
 * @example
 * ```ts
 * import { Subject } from "@durable-singleton/conformance"
 * import { MemoryStore } from "@durable-singleton/core"
 * import { Effect } from "effect"
 *
 * export default Subject.make({
 *   name: "memory",
 *   acquire: Effect.sync(MemoryStore.makeStorage),
 *   client: (storage, { namespace }) => MemoryStore.make({ storage, namespace })
 * })
 * ```
 *
 * @since 0.1.0
 */
import type * as Store from "@durable-singleton/core/Store"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@durable-singleton/conformance/Subject")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * What a subject declares beyond the contract every store must meet. A capability that is not
 * claimed is reported as "not claimed" in the results, never silently skipped.
 *
 * @since 0.1.0
 * @category models
 */
export interface Capabilities {
  /**
   * Several namespaces can share one storage, isolated from each other (default `true`).
   * A store that serves a single namespace per storage declares `false`.
   */
  readonly namespaces?: boolean
  /**
   * Clients opened before a disruption ({@link Subject.disrupt}) work again once it is over,
   * without being reopened: they reconnect (default `true` for a subject with `disrupt`).
   */
  readonly recovery?: boolean
}

/**
 * A capability checks can require: a declared one, or `"disruption"`, claimed by a subject
 * with {@link Subject.disrupt}.
 *
 * @since 0.1.0
 * @category models
 */
export type Capability = keyof Capabilities | "disruption"

/**
 * @since 0.1.0
 * @category models
 */
export interface ClientOptions {
  /** The namespace the client works in. Any string: tests use hostile ones. */
  readonly namespace: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Subject<S = unknown> {
  readonly [TypeId]: TypeId
  /** Shown in results and replay commands. */
  readonly name: string
  /**
   * Fresh, empty, isolated storage for one test (a unique table, key prefix, file, …), removed
   * when the scope closes. Called once per test (and per property run), so it should be quick.
   */
  readonly acquire: Effect.Effect<S, unknown, Scope.Scope>
  /**
   * Opens an independent client on `storage`: its own connection(s) and caches, as a separate
   * process would have. Closing the scope closes the client; afterwards its operations must
   * fail with a `PlatformError` (never a defect, never a hang).
   */
  readonly client: (storage: S, options: ClientOptions) => Effect.Effect<Store.Store, unknown, Scope.Scope>
  /**
   * Makes the backend fail for every client of `storage` until the scope closes, as an
   * unreachable server does: cuts their connections and refuses new ones (e.g. through a
   * `TcpProxy`). While it lasts, every operation of those clients must fail with a
   * `PlatformError` (never succeed from a cache, never hang); once it is over, clients opened
   * since work, and, with the `recovery` capability, so do the ones opened before.
   */
  readonly disrupt?: (storage: S) => Effect.Effect<void, unknown, Scope.Scope>
  readonly capabilities: { readonly [K in Capability]: boolean }
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = <S>(options: {
  readonly name: string
  readonly acquire: Effect.Effect<S, unknown, Scope.Scope>
  readonly client: (storage: S, options: ClientOptions) => Effect.Effect<Store.Store, unknown, Scope.Scope>
  readonly disrupt?: (storage: S) => Effect.Effect<void, unknown, Scope.Scope>
  readonly capabilities?: Capabilities
}): Subject<S> => ({
  [TypeId]: TypeId,
  name: options.name,
  acquire: options.acquire,
  client: options.client,
  ...(options.disrupt === undefined ? {} : { disrupt: options.disrupt }),
  capabilities: {
    namespaces: options.capabilities?.namespaces ?? true,
    disruption: options.disrupt !== undefined,
    recovery: options.disrupt !== undefined && (options.capabilities?.recovery ?? true)
  }
})

/**
 * @since 0.1.0
 * @category refinements
 */
export const isSubject = (u: unknown): u is Subject<unknown> =>
  typeof u === "object" && u !== null && TypeId in u
