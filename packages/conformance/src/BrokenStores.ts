/**
 * Deliberately broken stores, each with one realistic flaw, built on core's `MemoryStore`: the
 * suite's proof of power. Each names the family that must reject it; the package's own tests
 * assert that it does (and that `MemoryStore` passes everything).
 *
 * Where a flaw needs concurrency to show (a read and a write that are not atomic), the store
 * waits for a timer tick between the two, as a network round trip would.
 *
 * @example
 * ```ts
 * import { BrokenStores, Conformance } from "@durable-singleton/conformance"
 * import { Effect } from "effect"
 *
 * const report = await Effect.runPromise(
 *   Conformance.run(BrokenStores.getThenSetModify.subject, { only: "atomicity" })
 * )
 * Conformance.passed(report) // false
 * ```
 *
 * @since 0.1.0
 */
import * as Store from "@durable-singleton/core/Store"
import type * as PlatformError from "@effect/platform/Error"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Conformance from "./Conformance.js"
import * as MemorySubject from "./MemorySubject.js"
import * as Subject from "./Subject.js"

/**
 * Storage shared by the clients of a broken store: the reference subject's (which the suite
 * can disrupt), and what the flaws keep beside it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Storage extends MemorySubject.Storage {
  /** Every namespace a client was opened on (for the flaws that ignore namespaces). */
  readonly namespaces: Set<string>
  /** Keys removed but still counted, per namespace (for the soft-delete flaw). */
  readonly tombstones: Map<string, Set<string>>
  /** The namespace that wrote each stored key of a flat key space (for the joined-namespace flaw). */
  readonly owners: Map<string, string>
  /** Keys counted per namespace, kept beside the data (for the size-counter flaw). */
  readonly counts: Map<string, number>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface BrokenStore {
  readonly subject: Subject.Subject<Storage>
  /** What is wrong with it. */
  readonly flaw: string
  /** The family that must reject it. */
  readonly caughtBy: Conformance.FamilyId
}

const makeStorage = (): Storage => ({
  ...MemorySubject.makeStorage(),
  namespaces: new Set(),
  tombstones: new Map(),
  owners: new Map(),
  counts: new Map()
})

const backendOf = (storage: Storage, namespace: string): Effect.Effect<Store.Backend, never, Scope.Scope> => {
  storage.namespaces.add(namespace)
  return MemorySubject.makeBackend(storage, namespace)
}

// A network round trip: other fibers (and other callbacks) run between a read and a write.
const roundTrip = Effect.sleep(Duration.zero)

const broken = (
  name: string,
  caughtBy: Conformance.FamilyId,
  flaw: string,
  client: (storage: Storage, namespace: string) => Effect.Effect<Store.Store, never, Scope.Scope>
): BrokenStore => ({
  flaw,
  caughtBy,
  subject: Subject.make({
    name: `broken: ${name}`,
    acquire: Effect.sync(makeStorage),
    client: (storage, { namespace }) => client(storage, namespace),
    disrupt: MemorySubject.disrupt
  })
})

const fromBackend = (change: (backend: Store.Backend, storage: Storage, namespace: string) => Store.Backend) =>
(storage: Storage, namespace: string) =>
  Effect.map(backendOf(storage, namespace), (backend) => Store.make(change(backend, storage, namespace)))

// A correct store whose `modify` is replaced by one built on it.
const withModify = (modify: (store: Store.Store) => Store.Store["modify"]) => (storage: Storage, namespace: string) =>
  Effect.map(backendOf(storage, namespace), (backend) => {
    const store = Store.make(backend)
    return { ...store, modify: modify(store) }
  })

/**
 * `modify` as get, then set: concurrent increments lose updates (the original design's bug).
 *
 * @since 0.1.0
 * @category broken stores
 */
export const getThenSetModify: BrokenStore = broken(
  "get-then-set modify",
  "atomicity",
  "modify reads the value, then sets f(value): not atomic, so concurrent updates are lost",
  withModify((store) => (key, f) =>
    Effect.gen(function*() {
      const current = yield* store.get(key)
      if (Option.isNone(current)) return Option.none()
      yield* roundTrip
      const next = f(current.value)
      yield* store.set(key, next)
      return Option.some(next)
    })
  )
)

/**
 * `modify` of a missing key stores `f("")` instead of writing nothing.
 *
 * @since 0.1.0
 * @category broken stores
 */
export const modifyInsertsMissingKey: BrokenStore = broken(
  "modify inserts a missing key",
  "atomicity",
  "modify of a missing key stores f(\"\") instead of returning None and writing nothing",
  withModify((store) => (key, f) =>
    store.modifyOrInit(key, (current) => {
      const next = f(Option.isNone(current) ? "" : Store.asString(current.value))
      return [Option.some(next), Option.some(next)]
    })
  )
)

/**
 * Each client caches what it read or wrote and serves reads from that cache: other clients'
 * writes are invisible to it.
 *
 * @since 0.1.0
 * @category broken stores
 */
export const perClientCache: BrokenStore = broken(
  "per-client cache",
  "linearizability",
  "each client caches values it read or wrote and serves get/has from the cache, so it misses other clients' writes",
  fromBackend((backend) => {
    const cache = new Map<string, Option.Option<Store.Value>>()
    const get = (key: string) => {
      const cached = cache.get(key)
      return cached !== undefined ? Effect.succeed(cached) : Effect.tap(backend.get(key), (value) => cache.set(key, value))
    }
    return {
      ...backend,
      get,
      has: (key) => Effect.map(get(key), Option.isSome),
      set: (key, value) => Effect.tap(backend.set(key, value), () => cache.set(key, Option.some(value))),
      remove: (key) => Effect.tap(backend.remove(key), () => cache.set(key, Option.none())),
      clear: Effect.tap(backend.clear, () => cache.clear()),
      modifyOrInit: (key, f) =>
        backend.modifyOrInit(key, (current) => {
          const decision = f(current)
          cache.set(key, Option.isSome(decision[1]) ? decision[1] : current)
          return decision
        })
    }
  })
)

/**
 * `clear` and `size` act on every namespace of the storage (a `DELETE` / `COUNT` without the
 * namespace condition).
 *
 * @since 0.1.0
 * @category broken stores
 */
export const namespaceBlindClearAndSize: BrokenStore = broken(
  "clear and size ignore the namespace",
  "namespaces",
  "clear and size act on every namespace of the storage, not only the client's",
  fromBackend((backend, storage) => {
    const everyNamespace = <A>(f: (backend: Store.Backend) => Effect.Effect<A, PlatformError.PlatformError>) =>
      Effect.forEach(storage.namespaces, (namespace) =>
        Effect.scoped(Effect.flatMap(MemorySubject.makeBackend(storage, namespace), f)))
    return {
      ...backend,
      size: Effect.flatMap(backend.size, () =>
        Effect.map(everyNamespace((other) => other.size), (sizes) => sizes.reduce((a, b) => a + b, 0))),
      clear: Effect.flatMap(backend.clear, () => Effect.asVoid(everyNamespace((other) => other.clear)))
    }
  })
)

/**
 * Every namespace in one flat key space, each key stored at `namespace + separator + key`
 * (`size` and `clear` are exact: an index records which namespace wrote each stored key).
 * Without escaping, namespaces `a` and `a/b` share keys: `a`'s `b/k` is `a/b`'s `k`. Doubling
 * the separators inside the namespace does not help: `a`'s `//k` is `a/`'s `k`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const namespaceJoinedWith = (
  separator: string,
  options?: { readonly doubleSeparatorsInNamespace?: boolean }
): BrokenStore => {
  const escape = options?.doubleSeparatorsInNamespace === true && separator !== ""
  const prefix = (namespace: string) => (escape ? namespace.replaceAll(separator, separator + separator) : namespace) + separator
  const how = `namespace${escape ? ` (with ${JSON.stringify(separator)} doubled)` : ""} + ${JSON.stringify(separator)} + key`
  return broken(
    `keys stored at ${how}`,
    "namespaces",
    `keys of every namespace are stored at ${how} in one key space, so two namespaces can map different keys to one stored key`,
    (storage, namespace) =>
      Effect.map(backendOf(storage, ""), (flat): Store.Store => {
        const stored = (key: string) => prefix(namespace) + key
        const own = (key: string) => () => storage.owners.set(stored(key), namespace)
        const owned = () => [...storage.owners].flatMap(([key, owner]) => owner === namespace ? [key] : [])
        return Store.make({
          namespace,
          get: (key) => flat.get(stored(key)),
          has: (key) => flat.has!(stored(key)),
          set: (key, value) => Effect.tap(flat.set(stored(key), value), own(key)),
          remove: (key) => Effect.tap(flat.remove(stored(key)), () => storage.owners.delete(stored(key))),
          size: Effect.map(flat.size, () => owned().length),
          clear: Effect.flatMap(flat.size, () =>
            Effect.forEach(owned(), (key) => Effect.tap(flat.remove(key), () => storage.owners.delete(key)), { discard: true })),
          modifyOrInit: (key, f) =>
            flat.modifyOrInit(stored(key), (current) => {
              const decision = f(current)
              if (Option.isSome(decision[1])) own(key)()
              return decision
            })
        })
      })
  )
}

/**
 * {@link namespaceJoinedWith} `"/"`.
 *
 * @since 0.1.0
 * @category broken stores
 */
export const namespaceJoinedWithSlash: BrokenStore = namespaceJoinedWith("/")

/**
 * Namespaces cut to 32 characters, as a `VARCHAR(32)` column of a lax database stores them.
 *
 * @since 0.1.0
 * @category broken stores
 */
export const truncatesNamespaces: BrokenStore = broken(
  "namespaces truncated to 32 characters",
  "namespaces",
  "namespaces are cut to their first 32 characters, so long namespaces that differ only after that share keys",
  (storage, namespace) => Effect.map(backendOf(storage, namespace.slice(0, 32)), Store.make)
)

/**
 * `modifyOrInit` reads, decides, then writes unconditionally: a fenced write checks the lease
 * against what it read, but the save is not conditional on it, so a superseded leader's write
 * (or a second claim) lands anyway.
 *
 * @since 0.1.0
 * @category broken stores
 */
export const unfencedSave: BrokenStore = broken(
  "unfenced save",
  "handoff",
  "modifyOrInit reads, decides and then saves unconditionally: the save is not fenced by what was read, so a stale leader's write lands",
  fromBackend((backend) => ({
    ...backend,
    modifyOrInit: (key, f) =>
      Effect.gen(function*() {
        const current = yield* backend.get(key)
        yield* roundTrip
        const [result, next] = f(current)
        if (Option.isSome(next)) yield* backend.set(key, next.value)
        return result
      })
  }))
)

/**
 * Acknowledges writes of the empty string without storing them.
 *
 * @since 0.1.0
 * @category broken stores
 */
export const dropsEmptyStrings: BrokenStore = broken(
  "drops empty strings",
  "fidelity",
  "writes of the empty string are acknowledged but not stored (treated as no value)",
  fromBackend((backend) => ({
    ...backend,
    set: (key, value) => value === "" ? Effect.void : backend.set(key, value),
    modifyOrInit: (key, f) =>
      backend.modifyOrInit(key, (current) => {
        const [result, next] = f(current)
        return [result, Option.isSome(next) && next.value === "" ? Option.none() : next]
      })
  }))
)

/**
 * Reads return bytes as Node `Buffer`s, the type database drivers hand out: a `Buffer`'s `slice`
 * is a view of the same memory, where a `Uint8Array`'s is a copy.
 *
 * @since 0.1.0
 * @category broken stores
 */
export const bytesAsBuffers: BrokenStore = broken(
  "bytes as Buffers",
  "fidelity",
  "bytes are read back as Node Buffers (the driver's type) instead of plain Uint8Arrays",
  fromBackend((backend) => {
    const asBuffer = (value: Store.Value): Store.Value => typeof value === "string" ? value : Buffer.from(value)
    return {
      ...backend,
      get: (key) => Effect.map(backend.get(key), Option.map(asBuffer)),
      modifyOrInit: (key, f) => backend.modifyOrInit(key, (current) => f(Option.map(current, asBuffer)))
    }
  })
)

/**
 * Soft delete: `remove` marks keys deleted, but `size` still counts them.
 *
 * @since 0.1.0
 * @category broken stores
 */
export const sizeCountsDeleted: BrokenStore = broken(
  "size counts deleted keys",
  "model",
  "remove soft-deletes keys, and size still counts them",
  fromBackend((backend, storage, namespace) => {
    const tombstones = storage.tombstones.get(namespace) ?? new Set<string>()
    storage.tombstones.set(namespace, tombstones)
    return {
      ...backend,
      set: (key, value) => Effect.tap(backend.set(key, value), () => tombstones.delete(key)),
      remove: (key) =>
        Effect.flatMap(backend.has!(key), (present) =>
          Effect.tap(backend.remove(key), () => {
            if (present) tombstones.add(key)
          })),
      size: Effect.map(backend.size, (size) => size + tombstones.size),
      clear: Effect.tap(backend.clear, () => tombstones.clear()),
      modifyOrInit: (key, f) =>
        backend.modifyOrInit(key, (current) => {
          const decision = f(current)
          if (Option.isSome(decision[1])) tombstones.delete(key)
          return decision
        })
    }
  })
)

/**
 * Backend failures become defects (`Effect.orDie`, or `Effect.promise` where `tryPromise` was
 * needed): a closed client's operations die instead of failing with a `PlatformError`.
 *
 * @since 0.1.0
 * @category broken stores
 */
export const errorsAsDefects: BrokenStore = broken(
  "errors as defects",
  "errors",
  "backend failures are defects (Effect.orDie / Effect.promise) instead of PlatformErrors in the error channel",
  fromBackend((backend) => Store.mapBackend(backend, (_, effect) => Effect.orDie(effect)))
)

/**
 * A closed client's operations never answer (a pool waiting forever for a connection).
 *
 * @since 0.1.0
 * @category broken stores
 */
export const hangsWhenClosed: BrokenStore = broken(
  "hangs when closed",
  "errors",
  "after the client is closed its operations wait forever instead of failing",
  fromBackend((backend) =>
    Store.mapBackend(backend, (_, effect) =>
      Effect.catchAll(effect, (error) =>
        error._tag === "SystemError" && error.reason === "BadResource" ? Effect.never : Effect.fail(error)))
  )
)

/**
 * An `f` that throws is reported as a store failure (a `PlatformError`, as a driver's
 * `tryPromise` around the whole transaction would) instead of a defect: a bug in the caller's
 * code looks like a retryable outage.
 *
 * @since 0.1.0
 * @category broken stores
 */
export const thrownAsFailures: BrokenStore = broken(
  "thrown as failures",
  "errors",
  "an f that throws is reported as a PlatformError (a store failure) instead of a defect",
  fromBackend((backend) => ({
    ...backend,
    modifyOrInit: (key, f) =>
      Effect.catchAllDefect(backend.modifyOrInit(key, f), (defect) => Effect.fail(Store.systemError("modifyOrInit", defect)))
  }))
)

/**
 * `size` is a counter kept beside the data: a write checks whether the key exists, then writes
 * and adjusts the counter, in separate steps. Concurrent writes of one key count it twice.
 *
 * @since 0.1.0
 * @category broken stores
 */
export const sizeCounter: BrokenStore = broken(
  "size from a counter",
  "linearizability",
  "size is a counter beside the data, adjusted by set and remove after a separate existence check, so concurrent writes make it drift",
  fromBackend((backend, storage, namespace) => {
    const count = (delta: number) => storage.counts.set(namespace, (storage.counts.get(namespace) ?? 0) + delta)
    const adjusting = (write: Effect.Effect<void, PlatformError.PlatformError>, key: string, delta: (existed: boolean) => number) =>
      Effect.flatMap(backend.has!(key), (existed) => Effect.zipRight(roundTrip, Effect.tap(write, () => count(delta(existed)))))
    return {
      ...backend,
      set: (key, value) => adjusting(backend.set(key, value), key, (existed) => existed ? 0 : 1),
      remove: (key) => adjusting(backend.remove(key), key, (existed) => existed ? -1 : 0),
      size: Effect.map(backend.size, () => storage.counts.get(namespace) ?? 0),
      clear: Effect.tap(backend.clear, () => storage.counts.set(namespace, 0)),
      modifyOrInit: (key, f) =>
        backend.modifyOrInit(key, (current) => {
          const decision = f(current)
          if (Option.isNone(current) && Option.isSome(decision[1])) count(1)
          return decision
        })
    }
  })
)

/**
 * When the backend fails, reads are answered from the values the client last read or wrote
 * (a "resilient" fallback): while the server is unreachable, the client serves stale data as if
 * it were current.
 *
 * @since 0.1.0
 * @category broken stores
 */
export const cachedReadsWhenDown: BrokenStore = broken(
  "cached reads when down",
  "errors",
  "when the backend fails, get answers with the last value the client read or wrote instead of failing",
  fromBackend((backend) => {
    const seen = new Map<string, Option.Option<Store.Value>>()
    return {
      ...backend,
      get: (key) =>
        Effect.tap(
          Effect.catchAll(backend.get(key), (error) => {
            const last = seen.get(key)
            return last === undefined || (error._tag === "SystemError" && error.reason === "BadResource")
              ? Effect.fail(error)
              : Effect.succeed(last)
          }),
          (value) => seen.set(key, value)
        ),
      set: (key, value) => Effect.tap(backend.set(key, value), () => seen.set(key, Option.some(value)))
    }
  })
)

const firstHalf = (value: Store.Value): Store.Value => value.slice(0, Math.floor(value.length / 2))

/**
 * Writes values in two steps (the first half, then the whole): an interrupted write leaves
 * half a value.
 *
 * @since 0.1.0
 * @category broken stores
 */
export const tornWrites: BrokenStore = broken(
  "torn writes",
  "errors",
  "values are written in two steps (first half, then all), so an interrupted write leaves a partial value",
  fromBackend((backend) => {
    const inTwoSteps = (key: string, value: Store.Value) =>
      Effect.zipRight(backend.set(key, firstHalf(value)), Effect.zipRight(roundTrip, backend.set(key, value)))
    return {
      ...backend,
      set: inTwoSteps,
      modifyOrInit: <A>(key: string, f: (current: Option.Option<Store.Value>) => Store.Decision<A>) =>
        Effect.gen(function*() {
          let decision: Store.Decision<A> | undefined
          yield* backend.modifyOrInit(key, (current) => {
            decision = f(current)
            return [undefined, Option.map(decision[1], firstHalf)]
          })
          const [result, next] = decision!
          if (Option.isSome(next)) yield* Effect.zipRight(roundTrip, backend.set(key, next.value))
          return result
        })
    }
  })
)

/**
 * Every broken store, each with the family that must reject it.
 *
 * @since 0.1.0
 * @category broken stores
 */
export const all: ReadonlyArray<BrokenStore> = [
  getThenSetModify,
  modifyInsertsMissingKey,
  perClientCache,
  namespaceBlindClearAndSize,
  namespaceJoinedWithSlash,
  truncatesNamespaces,
  unfencedSave,
  dropsEmptyStrings,
  bytesAsBuffers,
  sizeCountsDeleted,
  errorsAsDefects,
  hangsWhenClosed,
  thrownAsFailures,
  tornWrites,
  sizeCounter,
  cachedReadsWhenDown
]
