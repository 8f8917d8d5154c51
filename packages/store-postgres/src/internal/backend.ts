/**
 * The store backend over one table: plain statements for reads and blind writes, and a hybrid
 * atomic read-modify-write.
 *
 * `modifyOrInit` first tries the optimistic path (read value and version; write with
 * `UPDATE … WHERE version = $v`, or `INSERT … ON CONFLICT DO NOTHING` for a missing key): two
 * round trips, no lock held across them, the fastest way when keys are not contended. After a
 * conflict it falls back to the row lock (`BEGIN; SELECT … FOR UPDATE; UPDATE; COMMIT`), which
 * cannot conflict, so an operation calls `f` at most twice plus once per lost insert race (a
 * bounded number) and a hot key costs one queue on the row lock instead of a retry storm. A key
 * that conflicted recently goes straight to the row lock for a while.
 *
 * Within one store client, operations on the same key also queue locally before they take a
 * connection: in the database they would only conflict with each other.
 *
 * Each operation is one effect around a plain promise chain on one connection: the per-step cost
 * of composing effects is of the order of the work itself at these latencies.
 *
 * @internal
 */
import { Store } from "@durable-singleton/core"
import type * as PlatformError from "@effect/platform/Error"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { type Connector, Defect, KeyQueue, type Lease, run, transaction } from "./connection.js"
import * as Errors from "./errors.js"
import type { Statements } from "./sql.js"

export interface Options {
  readonly connector: Connector
  readonly statements: Statements
  readonly namespace: string
  /** `BEGIN`, possibly with `SET LOCAL`s, for the row-lock path's transaction. */
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

      const decode = (bytes: Uint8Array): Store.Value => {
        const value = Store.decodeTagged(bytes)
        if (value === undefined) throw Errors.corruptValue(s.qualifiedName)
        return value
      }

      const optimistic = async <A>(lease: Lease, key: string, k: Uint8Array, f: Decide<A>): Promise<A> => {
        const row = (await lease.execute(s.read, [ns, k])).rows[0]
        const [a, next] = decide(f, row === undefined ? Option.none() : Option.some(decode(row[0])))
        if (next._tag === "None") return a
        const written = row === undefined
          ? await lease.execute(s.insertIfAbsent, [ns, k, Store.encodeTagged(next.value)])
          : await lease.execute(s.compareAndSet, [ns, k, Store.encodeTagged(next.value), row[1]])
        if (written.rowCount === 1) return a
        if (contended.size >= maxContendedKeys) contended.clear()
        contended.set(key, performance.now() + contendedMillis)
        return locked(lease, k, f)
      }

      const locked = <A>(lease: Lease, k: Uint8Array, f: Decide<A>): Promise<A> =>
        transaction(lease, begin, async () => {
          for (let races = 0;; races++) {
            const row = (await lease.execute(s.readForUpdate, [ns, k])).rows[0]
            const [a, next] = decide(f, row === undefined ? Option.none() : Option.some(decode(row[0])))
            if (next._tag === "None") return a
            if (row !== undefined) {
              await lease.execute(s.update, [ns, k, Store.encodeTagged(next.value)])
              return a
            }
            const inserted = await lease.execute(s.insertIfAbsent, [ns, k, Store.encodeTagged(next.value)])
            if (inserted.rowCount === 1) return a
            if (races >= maxInsertRaces) {
              throw new Errors.StoreFailure(
                `the key was created and removed concurrently ${races + 1} times in a row; giving up`,
                "Busy"
              )
            }
          }
        })

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
          op("get", async (lease) => {
            const row = (await lease.execute(s.get, [ns, utf8.encode(key)])).rows[0]
            return row === undefined ? Option.none() : Option.some(decode(row[0]))
          }),
        set: (key, value) =>
          op("set", async (lease) => {
            await lease.execute(s.set, [ns, utf8.encode(key), Store.encodeTagged(value)])
          }),
        remove: (key) =>
          op("remove", async (lease) => {
            await lease.execute(s.remove, [ns, utf8.encode(key)])
          }),
        has: (key) => op("has", async (lease) => (await lease.execute(s.has, [ns, utf8.encode(key)])).rows.length > 0),
        size: op("size", async (lease) => Number((await lease.execute(s.size, [ns])).rows[0]![0])),
        clear: op("clear", async (lease) => {
          await lease.execute(s.clear, [ns])
        }),
        modifyOrInit: (key, f) =>
          op("modifyOrInit", (lease) => {
            const k = utf8.encode(key)
            return isContended(key) ? locked(lease, k, f) : optimistic(lease, key, k, f)
          }, key)
      }
    }
  )

const decide = <A>(f: Decide<A>, current: Option.Option<Store.Value>): Store.Decision<A> => {
  try {
    return f(current)
  } catch (error) {
    throw new Defect(error)
  }
}
