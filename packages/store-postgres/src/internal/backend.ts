/**
 * The store backend over one table: plain statements for reads and blind writes, and a hybrid
 * atomic read-modify-write.
 *
 * `modifyOrInit(key, f)` tries, in order:
 *
 * 1. **The remembered version** (one round trip): if this store read or wrote the key last, it
 *    knows the value and the version it had, runs `f` on that value and writes with
 *    `UPDATE … WHERE version = $v`. A version is drawn at random for every write (64 bits, see
 *    `Sql.newVersion`), so a matching version means `f` saw the current value: the write is exact,
 *    and a wrong guess (another client wrote since) only costs the failed `UPDATE`. A decision
 *    to write nothing is not trusted to the memory: it goes on to step 2, which reads.
 * 2. **Compare-and-set** (two round trips): read value and version, run `f`, write with
 *    `UPDATE … WHERE version = $v`, or `INSERT … ON CONFLICT DO NOTHING` for a missing key. No
 *    lock is held between the two: the fastest way when keys are not contended.
 * 3. **The row lock**, after a conflict in step 2 (`BEGIN; SELECT … FOR UPDATE; UPDATE; COMMIT`):
 *    it cannot conflict (an insert loses only to an insert that commits, and then the loop reads
 *    that row), so `f` runs at most three times plus once per lost insert race (bounded), and a
 *    hot key shared with other clients costs one queue on the row lock instead of a retry storm.
 *    A key that conflicted recently goes straight to the row lock for a while.
 *
 * Within one store, operations on the same key also queue locally before they take a connection:
 * in the database they would only conflict with each other, and the queue keeps the remembered
 * version of a key consistent.
 *
 * Statements outside the row-lock transaction run in the session's implicit transactions, at
 * its default isolation. Where that is REPEATABLE READ or SERIALIZABLE (a server, database or
 * role setting, or the application's own on a shared pool), a statement that meets a concurrent
 * write fails with 40001 (serialization_failure) instead of waiting and re-checking, and has
 * written nothing: in steps 1 and 2 that is a conflict (the update goes to the row lock); any
 * other operation runs once more inside `BEGIN ISOLATION LEVEL READ COMMITTED`, where it cannot.
 *
 * @internal
 */
import { Store } from "@durable-singleton/core"
import type * as PlatformError from "@effect/platform/Error"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { DatabaseError } from "pg"
import { type Connector, Defect, KeyQueue, type Lease, run, transaction } from "./connection.js"
import * as Errors from "./errors.js"
import * as Sql from "./sql.js"

export interface Options {
  readonly connector: Connector
  readonly statements: Sql.Statements
  readonly namespace: string
  /** {@link Sql.begin}, possibly with `SET LOCAL`s, for the row-lock path's transaction. */
  readonly begin: string
}

type Decide<A> = (current: Option.Option<Store.Value>) => Store.Decision<A>

const utf8 = new TextEncoder()

// How long a key that just had a compare-and-set conflict takes the row-lock path directly.
const contendedMillis = 200
const maxContendedKeys = 4096
// Under the row lock an insert loses only to a concurrent insert of the same key that commits;
// losing that many times in a row means another client creates and removes the key in a loop.
const maxInsertRaces = 16

export const make = (options: Options): Effect.Effect<Store.Backend, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(Effect.sync(() => ({ closed: false })), (state) =>
      Effect.sync(() => {
        state.closed = true
      })),
    (state): Store.Backend => {
      const { begin, connector, namespace, statements: s } = options
      const ns = utf8.encode(namespace)
      const keyQueue = new KeyQueue()
      const contended = new Map<string, number>()
      const versions = new Versions()

      const op = <A>(
        method: string,
        operation: (lease: Lease) => Promise<A>,
        key?: string
      ): Effect.Effect<A, PlatformError.PlatformError> =>
        Effect.suspend(() =>
          state.closed ? Effect.fail(Errors.closed(method)) : run(
            connector,
            operation,
            (cause) => Errors.toPlatformError(method, cause),
            key === undefined ? undefined : keyQueue,
            key
          )
        )

      // An operation of plain statements, run again at READ COMMITTED if the session's stricter
      // default isolation failed it (see the module comment).
      const plain = <A>(method: string, operation: (lease: Lease) => Promise<A>, key?: string) =>
        op(method, (lease) =>
          operation(lease).catch((error) => {
            if (!isSerializationFailure(error) || !lease.idle()) throw error
            return transaction(lease, Sql.begin, () => operation(lease))
          }), key)

      const decode = (bytes: Uint8Array): Store.Value => {
        const value = Store.decodeTagged(bytes)
        if (value === undefined) throw Errors.corruptValue(s.qualifiedName)
        return value
      }

      // Runs f and encodes what it decided to write (undefined: write nothing).
      const decideAndEncode = <A>(f: Decide<A>, current: Option.Option<Store.Value>) => {
        const decision = decide(f, current)
        return [decision, decision[1]._tag === "Some" ? Store.encodeTagged(decision[1].value) : undefined] as const
      }

      const modify = async <A>(lease: Lease, key: string, k: Uint8Array, f: Decide<A>): Promise<A> => {
        if (!isContended(key)) {
          let result: Written<A> | undefined
          try {
            result = await remembered(lease, key, k, f) ?? await optimistic(lease, key, k, f)
          } catch (error) {
            if (!isSerializationFailure(error) || !lease.idle()) throw error
          }
          if (result !== undefined) return result.a
          if (contended.size >= maxContendedKeys) contended.clear()
          contended.set(key, performance.now() + contendedMillis)
        }
        return locked(lease, key, k, f)
      }

      // Step 1; undefined when there is nothing remembered, or the row changed since.
      const remembered = async <A>(lease: Lease, key: string, k: Uint8Array, f: Decide<A>) => {
        const known = versions.take(key)
        if (known === undefined) return undefined
        const [[a, next], encoded] = decideAndEncode(f, Option.some(copy(known.value)))
        if (encoded === undefined) return undefined
        const version = Sql.newVersion()
        const row = (await lease.execute(s.compareAndSet, [ns, k, encoded, known.version, version])).rows[0]
        if (row === undefined) return undefined
        versions.remember(key, (next as Option.Some<Store.Value>).value, encoded.length, version)
        return { a }
      }

      // Step 2; undefined on a conflict.
      const optimistic = async <A>(lease: Lease, key: string, k: Uint8Array, f: Decide<A>) => {
        const read = (await lease.execute(s.read, [ns, k])).rows[0]
        let current: Option.Option<Store.Value> = Option.none()
        if (read !== undefined) {
          const value = decode(read[0])
          versions.remember(key, value, read[0].length, read[1])
          current = Option.some(value)
        }
        const [[a, next], encoded] = decideAndEncode(f, current)
        if (encoded === undefined) return { a }
        const version = Sql.newVersion()
        const written = read === undefined
          ? (await lease.execute(s.insertIfAbsent, [ns, k, encoded, version])).rows[0]
          : (await lease.execute(s.compareAndSet, [ns, k, encoded, read[1], version])).rows[0]
        if (written === undefined) return undefined
        versions.remember(key, (next as Option.Some<Store.Value>).value, encoded.length, version)
        return { a }
      }

      const locked = async <A>(lease: Lease, key: string, k: Uint8Array, f: Decide<A>): Promise<A> => {
        let written: { readonly value: Store.Value; readonly size: number; readonly version: string } | undefined
        const a = await transaction(lease, begin, async () => {
          for (let races = 0;; races++) {
            const read = (await lease.execute(s.readForUpdate, [ns, k])).rows[0]
            const [[a, next], encoded] = decideAndEncode(
              f,
              read === undefined ? Option.none() : Option.some(decode(read[0]))
            )
            if (encoded === undefined) return a
            const version = Sql.newVersion()
            const row = read === undefined
              ? (await lease.execute(s.insertIfAbsent, [ns, k, encoded, version])).rows[0]
              : (await lease.execute(s.update, [ns, k, encoded, version])).rows[0]
            if (row !== undefined) {
              written = { value: (next as Option.Some<Store.Value>).value, size: encoded.length, version }
              return a
            }
            if (races >= maxInsertRaces) {
              throw new Errors.StoreFailure(
                `the key was created and removed concurrently ${races + 1} times in a row; giving up`,
                "Busy"
              )
            }
          }
        })
        // remembered only once the transaction has committed
        if (written !== undefined) versions.remember(key, written.value, written.size, written.version)
        return a
      }

      const isContended = (key: string): boolean => {
        const until = contended.get(key)
        if (until === undefined) return false
        if (until > performance.now()) return true
        contended.delete(key)
        return false
      }

      return {
        namespace,
        get: (key) =>
          plain("get", async (lease) => {
            const row = (await lease.execute(s.get, [ns, utf8.encode(key)])).rows[0]
            return row === undefined ? Option.none() : Option.some(decode(row[0]))
          }),
        set: (key, value) =>
          plain("set", async (lease) => {
            versions.forget(key)
            const encoded = Store.encodeTagged(value)
            const version = Sql.newVersion()
            await lease.execute(s.set, [ns, utf8.encode(key), encoded, version])
            versions.remember(key, value, encoded.length, version)
          }, key),
        remove: (key) =>
          plain("remove", async (lease) => {
            versions.forget(key)
            await lease.execute(s.remove, [ns, utf8.encode(key)])
          }, key),
        has: (key) => plain("has", async (lease) => (await lease.execute(s.has, [ns, utf8.encode(key)])).rows.length > 0),
        size: plain("size", async (lease) => Number((await lease.execute(s.size, [ns])).rows[0]![0])),
        clear: plain("clear", async (lease) => {
          versions.forgetAll()
          await lease.execute(s.clear, [ns])
        }),
        modifyOrInit: (key, f) => op("modifyOrInit", (lease) => modify(lease, key, utf8.encode(key), f), key)
      }
    }
  )

/** What an update returned, once its write (or its decision to write nothing) stands. */
interface Written<A> {
  readonly a: A
}

const isSerializationFailure = (error: unknown): boolean =>
  error instanceof DatabaseError && error.code === Sql.serializationFailure

const decide = <A>(f: Decide<A>, current: Option.Option<Store.Value>): Store.Decision<A> => {
  try {
    return f(current)
  } catch (error) {
    throw new Defect(error)
  }
}

// Callers may mutate the arrays they pass in or get back; remembered bytes must not change.
const copy = (value: Store.Value): Store.Value => typeof value === "string" ? value : value.slice()

/**
 * What this store last read or wrote for recently used keys: the value and the version it had.
 * Only a guess to try first (see the module comment): a stale entry costs a failed `UPDATE`,
 * never a wrong result. Bounded in entries and in the size of the values kept.
 */
class Versions {
  private readonly entries = new Map<string, { readonly value: Store.Value; readonly version: string }>()

  take(key: string): { readonly value: Store.Value; readonly version: string } | undefined {
    const entry = this.entries.get(key)
    if (entry !== undefined) this.entries.delete(key)
    return entry
  }

  remember(key: string, value: Store.Value, encodedSize: number, version: string): void {
    if (encodedSize > maxRememberedBytes) return
    this.entries.delete(key)
    if (this.entries.size >= maxRememberedKeys) this.entries.delete(this.entries.keys().next().value!)
    this.entries.set(key, { value: copy(value), version })
  }

  forget(key: string): void {
    this.entries.delete(key)
  }

  forgetAll(): void {
    this.entries.clear()
  }
}

const maxRememberedKeys = 4096
const maxRememberedBytes = 64 * 1024
