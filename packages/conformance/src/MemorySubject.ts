/**
 * The reference subject: core's `MemoryStore`, on storage with a fault switch so that the suite
 * can disrupt it (while it is down, every operation of every client on it fails with a
 * `PlatformError`, as with an unreachable server). It passes every check, and the broken stores
 * are built on it.
 *
 * @example
 * ```ts
 * import { Conformance, MemorySubject } from "@durable-singleton/conformance"
 * import { Effect } from "effect"
 *
 * const report = await Effect.runPromise(Conformance.run(MemorySubject.subject))
 * Conformance.passed(report) // true
 * ```
 *
 * @since 0.1.0
 */
import * as MemoryStore from "@durable-singleton/core/MemoryStore"
import * as Store from "@durable-singleton/core/Store"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Subject from "./Subject.js"

/**
 * In-memory storage with a fault switch.
 *
 * @since 0.1.0
 * @category models
 */
export interface Storage {
  readonly memory: MemoryStore.Storage
  /** While `true`, every operation of every client on this storage fails. */
  down: boolean
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeStorage = (): Storage => ({ memory: MemoryStore.makeStorage(), down: false })

/**
 * A `MemoryStore` backend on `storage` whose operations fail with a `SystemError` while the
 * storage is down (and, like every `MemoryStore` client, with `BadResource` once its scope has
 * closed).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeBackend = (storage: Storage, namespace: string): Effect.Effect<Store.Backend, never, Scope.Scope> =>
  Effect.map(MemoryStore.makeBackend({ storage: storage.memory, namespace }), (backend) =>
    Store.mapBackend(backend, (method, effect) =>
      Effect.suspend(() =>
        storage.down
          ? Effect.fail(Store.systemError(method, undefined, { description: "the storage is down (disrupted by the conformance suite)" }))
          : effect
      )))

/**
 * Takes `storage` down until the scope closes.
 *
 * @since 0.1.0
 * @category disruption
 */
export const disrupt = (storage: Storage): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      storage.down = true
    }),
    () =>
      Effect.sync(() => {
        storage.down = false
      })
  )

/**
 * The subject: fresh storage per run, a `MemoryStore` client per client, and {@link disrupt}.
 *
 * @since 0.1.0
 * @category subjects
 */
export const subject: Subject.Subject<Storage> = Subject.make({
  name: "memory",
  acquire: Effect.sync(makeStorage),
  client: (storage, { namespace }) => Effect.map(makeBackend(storage, namespace), Store.make),
  disrupt
})
