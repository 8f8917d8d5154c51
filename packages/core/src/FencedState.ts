/**
 * Typed, fenced state over any {@link Store.Store}: the core of a stateful singleton.
 *
 * A leader *claims* the state in one atomic step (create it with `initial` if absent, or take it
 * over under a new epoch) and gets a {@link Lease}: a typed handle whose every write commits only
 * while the lease is still the current one. When another leader has claimed the state since,
 * the write fails with `SingletonError` reason `LeaderHandoffFailed`, writes nothing, and the
 * lease refuses every later write without touching the store.
 *
 * Guarantees (checked by the tests of this package and by the conformance suite's handoff family):
 *
 * - a write acknowledged before a claim is seen by the claimer;
 * - a lease whose claim was superseded never writes again (not even after the store is cleared:
 *   fencing compares a random token drawn at each claim, see {@link StateEnvelope});
 * - epochs grow by one at each claim (and restart at 1 once the state is removed, e.g. by the
 *   store's `clear()`: the token, never the epoch, identifies a claim for good);
 * - state that cannot be decoded (corrupt JSON, wrong shape, a schema version newer than the
 *   code) fails with `SchemaDecodeFailed` and is left exactly as it was: it is never reset;
 * - no acknowledged update is lost or applied twice;
 * - a write whose outcome is unknown (the connection dropped, the acknowledgement was lost) fails
 *   with `StatePersistFailed` (or `HeartbeatFailed`); before its next read or write the lease
 *   learns from the store whether it landed. What it cannot know is that a caller retrying
 *   `update(f)` after that error means the same logical update: if the first attempt landed, the
 *   retry applies `f` again. Read `get` first (it resolves the doubt) before re-running a
 *   non-idempotent update, or make updates idempotent (e.g. keyed by an id kept in the state).
 *
 * @example
 * ```ts
 * import { FencedState, MemoryStore } from "@durable-singleton/core"
 * import { Effect, Schema } from "effect"
 *
 * const counter = FencedState.make({ name: "counter", schema: Schema.Number, initial: 0 })
 *
 * const program = Effect.gen(function*() {
 *   const lease = yield* counter.claim()
 *   yield* lease.update((n) => n + 1)
 *   return yield* lease.get // 1
 * })
 *
 * Effect.runPromise(Effect.provide(program, MemoryStore.layer))
 * ```
 *
 * @since 0.1.0
 */
import type * as PlatformError from "@effect/platform/Error"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import type * as Schema from "effect/Schema"
import { SingletonError } from "./SingletonError.js"
import * as StateEnvelope from "./StateEnvelope.js"
import * as Store from "./Store.js"

/**
 * Migrations of the encoded state, keyed by the version they migrate *from*: `migrations[1]`
 * turns the encoded state of version 1 into the encoded state of version 2. They run on the
 * JSON form, synchronously, when a leader claims state written by an older version (the
 * migrated state is written back under the new epoch) and when state is read.
 *
 * @since 0.1.0
 * @category models
 */
export type Migrations = { readonly [fromVersion: number]: (encoded: unknown) => unknown }

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<A, I> {
  /** The singleton's name: used in errors and, by default, in the key. */
  readonly name: string
  /** The state's schema. It must decode and encode synchronously (no services, no async). */
  readonly schema: Schema.Schema<A, I>
  /** The state of a singleton that has never run. */
  readonly initial: A
  /** The version of `schema`; an integer ≥ 1, default 1. */
  readonly version?: number | undefined
  readonly migrations?: Migrations | undefined
  /** The store key; defaults to {@link keyFor}`(name)`. */
  readonly key?: string | undefined
}

/**
 * The default store key of a singleton's state.
 *
 * @since 0.1.0
 * @category constructors
 */
export const keyFor = (name: string): string => `singleton/${name}`

/**
 * The bookkeeping fields of stored state.
 *
 * @since 0.1.0
 * @category models
 */
export interface Metadata {
  readonly epoch: number
  readonly seq: number
  /** The schema version the state was stored with. */
  readonly schemaVersion: number
  /** Milliseconds since the Unix epoch. */
  readonly updatedAt: number
  /** The last persisted heartbeat, in milliseconds since the Unix epoch. */
  readonly lastSuccessAt: Option.Option<number>
  /** Who claimed the state last, as they described themselves. */
  readonly holder: Option.Option<string>
}

/**
 * What a read sees: the bookkeeping fields and the decoded state (migrated to the current
 * schema version).
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot<A> extends Metadata {
  readonly state: A
}

/**
 * A claimed tenure over the state, bound to the store it was claimed from. Writes are
 * serialised and fenced.
 *
 * @since 0.1.0
 * @category models
 */
export interface Lease<A> {
  readonly name: string
  /** The epoch of this claim. */
  readonly epoch: number
  /** The fencing token of this claim. */
  readonly token: string
  /**
   * The state as last written by this lease. After a write whose outcome is unknown, reads the
   * store first to find out.
   */
  readonly get: Effect.Effect<A, SingletonError>
  /** The last persisted heartbeat, as known to this lease. */
  readonly lastSuccessAt: Effect.Effect<Option.Option<number>>
  /**
   * Applies `f` to the state and writes the result, fenced. After a `StatePersistFailed`, do not
   * simply run the same update again: if the failed attempt landed, `f` is applied twice (see
   * the module documentation).
   */
  readonly update: (f: (state: A) => A) => Effect.Effect<A, SingletonError>
  readonly modify: <B>(f: (state: A) => readonly [B, A]) => Effect.Effect<B, SingletonError>
  readonly set: (state: A) => Effect.Effect<void, SingletonError>
  /** Persists `lastSuccessAt` = now, fenced. Store failures are `HeartbeatFailed`. */
  readonly heartbeat: Effect.Effect<void, SingletonError>
  /**
   * Checks with the store that this lease is still the current one, without writing; fails with
   * `LeaderHandoffFailed` (and invalidates the lease) if it is not.
   */
  readonly verify: Effect.Effect<void, SingletonError>
  /** `false` once this lease learned that it was superseded. */
  readonly isCurrent: Effect.Effect<boolean>
}

/**
 * A state definition: claim it to lead, read it from anywhere.
 *
 * @since 0.1.0
 * @category models
 */
export interface FencedState<A> {
  readonly name: string
  readonly key: string
  readonly version: number
  /**
   * Claims leadership in one atomic step: creates the state with `initial` if absent, or takes
   * it over under epoch + 1 (migrating it if it was written by an older version). `holder`
   * describes the claimer (e.g. a runner address) for people reading the store.
   */
  readonly claim: (options?: { readonly holder?: string }) => Effect.Effect<Lease<A>, SingletonError, Store.Store>
  /** Reads the state without claiming it (e.g. for health checks on any node). */
  readonly read: Effect.Effect<Option.Option<Snapshot<A>>, SingletonError, Store.Store>
  /** Reads only the bookkeeping fields, without decoding the state. */
  readonly inspect: Effect.Effect<Option.Option<Metadata>, SingletonError, Store.Store>
}

/**
 * Defines fenced state. Throws a `TypeError` for a `version` that is not an integer ≥ 1 and for
 * a key no store can hold (not well-formed UTF-16, or longer than `Store.maxKeyBytes` UTF-8
 * bytes, e.g. from a very long `name`): programming errors, which no retry can fix.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <A, I>(options: Options<A, I>): FencedState<A> => {
  const name = options.name
  const key = options.key ?? keyFor(name)
  const version = options.version ?? 1
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new TypeError(`FencedState "${name}": version must be an integer >= 1, got ${version}`)
  }
  const keyProblem = Store.keyProblem(key)
  if (keyProblem !== undefined) throw new TypeError(`FencedState "${name}": ${keyProblem}`)
  const migrations = options.migrations ?? {}
  const decodeState = ParseResult.decodeUnknownEither(options.schema)
  const encodeState = ParseResult.encodeEither(options.schema)

  const decodeFailed = (description: string, cause?: unknown, details?: { storedVersion: number }) =>
    SingletonError.SchemaDecodeFailed({
      singletonName: name,
      cause,
      details: details
        ? { description, direction: "decode", ...details, supportedVersion: version }
        : { description, direction: "decode" }
    })

  const parseEnvelope = (raw: Store.Value): Either.Either<StateEnvelope.Envelope, SingletonError> => {
    if (typeof raw !== "string") return Either.left(decodeFailed("stored value is bytes, not an envelope"))
    return Either.mapLeft(StateEnvelope.parse(raw), (cause) => decodeFailed("stored value is not a valid envelope", cause))
  }

  // Brings the encoded state of an older version up to `version`, then decodes it.
  const decodeStored = (envelope: StateEnvelope.Envelope): Either.Either<A, SingletonError> => {
    const stored = envelope.schemaVersion
    if (stored > version) {
      return Either.left(decodeFailed("stored state was written by a newer schema version", undefined, { storedVersion: stored }))
    }
    let encoded = envelope.state
    for (let from = stored; from < version; from++) {
      const migrate = migrations[from]
      if (migrate === undefined) {
        return Either.left(decodeFailed(`no migration from schema version ${from}`, undefined, { storedVersion: stored }))
      }
      try {
        encoded = migrate(encoded)
      } catch (cause) {
        return Either.left(decodeFailed(`migration from schema version ${from} failed`, cause, { storedVersion: stored }))
      }
    }
    return Either.mapLeft(
      decodeState(encoded),
      (issue) => decodeFailed("stored state does not match the schema", new ParseResult.ParseError({ issue }))
    )
  }

  // A state that does not encode is a bug of the code that produced it, not of what is stored.
  const encode = (state: A, what: string): Either.Either<unknown, SingletonError> =>
    Either.mapLeft(
      encodeState(state),
      (issue) =>
        SingletonError.SchemaDecodeFailed({
          singletonName: name,
          cause: new ParseResult.ParseError({ issue }),
          details: {
            description: `${what} does not encode with the schema: nothing was written (the stored state is unchanged)`,
            direction: "encode"
          }
        })
    )

  const metadata = (envelope: StateEnvelope.Envelope): Metadata => ({
    epoch: envelope.epoch,
    seq: envelope.seq,
    schemaVersion: envelope.schemaVersion,
    updatedAt: envelope.updatedAt,
    lastSuccessAt: Option.fromNullable(envelope.lastSuccessAt),
    holder: Option.fromNullable(envelope.holder)
  })

  const loadFailed = (cause: PlatformError.PlatformError) => SingletonError.StateLoadFailed({ singletonName: name, cause })

  const readEnvelope = Effect.flatMap(
    Effect.mapError(Effect.flatMap(Store.Store, (store) => store.get(key)), loadFailed),
    Option.match({
      onNone: () => Effect.succeedNone,
      onSome: (raw) => Effect.asSome(parseEnvelope(raw))
    })
  )

  const read = Effect.flatMap(readEnvelope, (envelope) =>
    Option.match(envelope, {
      onNone: () => Effect.succeedNone,
      onSome: (envelope) => Effect.asSome(Effect.map(decodeStored(envelope), (state) => ({ ...metadata(envelope), state })))
    }))

  const inspect = Effect.map(readEnvelope, Option.map(metadata))

  const claim = (claimOptions?: { readonly holder?: string }) =>
    Effect.gen(function*() {
      const store = yield* Store.Store
      const now = yield* Clock.currentTimeMillis
      const token = newToken()
      const holder = claimOptions?.holder ?? null
      const claimed = yield* Effect.mapError(
        store.modifyOrInit(
          key,
          (current): Store.Decision<Either.Either<{ envelope: StateEnvelope.Envelope; state: A }, SingletonError>> => {
            if (current._tag === "None") {
              const encoded = encode(options.initial, "the initial state")
              if (encoded._tag === "Left") return [Either.left(encoded.left), Option.none()]
              const envelope: StateEnvelope.Envelope = {
                format: StateEnvelope.format,
                schemaVersion: version,
                epoch: 1,
                token,
                seq: 0,
                updatedAt: now,
                lastSuccessAt: null,
                holder,
                state: encoded.right
              }
              return [Either.right({ envelope, state: options.initial }), Option.some(StateEnvelope.stringify(envelope))]
            }
            const stored = parseEnvelope(current.value)
            if (stored._tag === "Left") return [Either.left(stored.left), Option.none()]
            const decoded = decodeStored(stored.right)
            if (decoded._tag === "Left") return [Either.left(decoded.left), Option.none()]
            let encodedState = stored.right.state
            if (stored.right.schemaVersion !== version) {
              const encoded = encode(decoded.right, "the migrated state")
              if (encoded._tag === "Left") return [Either.left(encoded.left), Option.none()]
              encodedState = encoded.right
            }
            const envelope: StateEnvelope.Envelope = {
              ...stored.right,
              schemaVersion: version,
              epoch: stored.right.epoch + 1,
              token,
              seq: stored.right.seq + 1,
              updatedAt: now,
              holder,
              state: encodedState
            }
            return [Either.right({ envelope, state: decoded.right }), Option.some(StateEnvelope.stringify(envelope))]
          }
        ),
        loadFailed
      )
      const { envelope, state } = yield* claimed
      return makeLease(store, envelope, state)
    })

  const makeLease = (store: Store.Store, claimed: StateEnvelope.Envelope, initialState: A): Lease<A> => {
    const epoch = claimed.epoch
    const token = claimed.token
    // Mutated only while holding `permit`.
    let known = { seq: claimed.seq, state: initialState, lastSuccessAt: claimed.lastSuccessAt }
    // A write was attempted whose outcome is unknown: the store may hold a higher seq.
    let inDoubt = false
    let superseded: SingletonError | undefined
    const permit = Effect.unsafeMakeSemaphore(1)

    const handoff = (found: StateEnvelope.Envelope | undefined) =>
      SingletonError.LeaderHandoffFailed({
        singletonName: name,
        details: found === undefined
          ? { description: "the state was removed", expectedEpoch: epoch }
          : { description: "another leader claimed the state", expectedEpoch: epoch, actualEpoch: found.epoch }
      })

    // Our own token with an older seq: nobody else claimed, but writes this lease saw acknowledged
    // are gone from the store. Not a handoff: stepping down and claiming again would silently
    // build on the older state. Retryable: a store that fails over to a lagging replica may catch
    // up; if it never does, the runtime keeps retrying with backoff and logging this, without
    // writing.
    const rolledBack = (found: StateEnvelope.Envelope) =>
      SingletonError.StateLoadFailed({
        singletonName: name,
        details: {
          description: `the store holds seq ${found.seq} under this lease's token, older than its last ` +
            `acknowledged write (seq ${known.seq}): the store lost acknowledged writes (restored from ` +
            `a backup, or failed over to a replica that missed them); not writing over that`
        }
      })

    // The state this lease last wrote, as found in the store, or why it cannot go on.
    const baseOf = (
      current: Option.Option<Store.Value>
    ): Either.Either<{ envelope: StateEnvelope.Envelope; state: A }, SingletonError> => {
      if (current._tag === "None") return Either.left(handoff(undefined))
      const stored = parseEnvelope(current.value)
      if (stored._tag === "Left") return Either.left(stored.left)
      const envelope = stored.right
      if (envelope.token !== token) return Either.left(handoff(envelope))
      if (envelope.seq === known.seq) return Either.right({ envelope, state: known.state })
      if (envelope.seq > known.seq) {
        // Only this lease writes under its token, one write at a time: a higher seq means writes
        // of ours whose outcome we did not learn (one or several in a row) landed.
        return Either.map(decodeStored(envelope), (state) => ({ envelope, state }))
      }
      return Either.left(rolledBack(envelope))
    }

    const adopt = (envelope: StateEnvelope.Envelope, state: A) => {
      known = { seq: envelope.seq, state, lastSuccessAt: envelope.lastSuccessAt }
      inDoubt = false
    }

    const settle = <B>(outcome: Either.Either<B, SingletonError>): Effect.Effect<B, SingletonError> => {
      if (outcome._tag === "Left" && outcome.left.reason === "LeaderHandoffFailed") superseded = outcome.left
      return outcome
    }

    const guarded = <B>(effect: Effect.Effect<B, SingletonError>): Effect.Effect<B, SingletonError> =>
      permit.withPermits(1)(Effect.suspend(() => superseded ? Effect.fail(superseded) : effect))

    const write = <B>(
      f: (state: A) => readonly [B, A],
      options: { readonly heartbeat: boolean }
    ): Effect.Effect<B, SingletonError> =>
      guarded(Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const wasInDoubt = inDoubt
        inDoubt = true
        const outcome = yield* Effect.mapError(
          store.modifyOrInit(
            key,
            (current): Store.Decision<Either.Either<{ result: B; envelope: StateEnvelope.Envelope; state: A }, SingletonError>> => {
              const base = baseOf(current)
              if (base._tag === "Left") return [Either.left(base.left), Option.none()]
              const [result, state] = f(base.right.state)
              const encoded = encode(state, "the new state")
              if (encoded._tag === "Left") return [Either.left(encoded.left), Option.none()]
              const envelope: StateEnvelope.Envelope = {
                ...base.right.envelope,
                seq: base.right.envelope.seq + 1,
                updatedAt: now,
                lastSuccessAt: options.heartbeat ? now : base.right.envelope.lastSuccessAt,
                state: encoded.right
              }
              return [Either.right({ result, envelope, state }), Option.some(StateEnvelope.stringify(envelope))]
            }
          ),
          (cause) =>
            options.heartbeat
              ? SingletonError.HeartbeatFailed({ singletonName: name, cause })
              : SingletonError.StatePersistFailed({ singletonName: name, cause })
        )
        // A decision not to write is definite: nothing landed.
        if (outcome._tag === "Right") adopt(outcome.right.envelope, outcome.right.state)
        else inDoubt = wasInDoubt
        return yield* settle(Either.map(outcome, ({ result }) => result))
      }))

    const resolve = guarded(Effect.gen(function*() {
      const current = yield* Effect.mapError(store.get(key), loadFailed)
      const base = yield* settle(baseOf(current))
      adopt(base.envelope, base.state)
    }))

    return {
      name,
      epoch,
      token,
      get: Effect.suspend(() => inDoubt ? Effect.map(resolve, () => known.state) : Effect.succeed(known.state)),
      lastSuccessAt: Effect.sync(() => Option.fromNullable(known.lastSuccessAt)),
      update: (f) => write((state) => { const next = f(state); return [next, next] }, noHeartbeat),
      modify: (f) => write(f, noHeartbeat),
      set: (state) => write(() => [undefined, state], noHeartbeat),
      heartbeat: write((state) => [undefined, state], { heartbeat: true }),
      verify: resolve,
      isCurrent: Effect.sync(() => superseded === undefined)
    }
  }

  return { name, key, version, claim, read, inspect }
}

const noHeartbeat = { heartbeat: false } as const

const newToken = (): string => crypto.randomUUID()
