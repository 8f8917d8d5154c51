/**
 * The fast variant: a better-sqlite3 connection the store owns. Each operation is one synchronous
 * step on it, and `modifyOrInit` is one `BEGIN IMMEDIATE` transaction (read, `f`, write, commit)
 * inside that step: `f` is synchronous, so no other fiber or process can come between the read
 * and the write, and no lock is ever held across an asynchronous boundary.
 *
 * @internal
 */
import * as Store from "@durable-singleton/core/Store"
import type * as PlatformError from "@effect/platform/Error"
import Database from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { Synchronous } from "../SqliteStore.js"
import { FunctionThrew, toPlatformError } from "./errors.js"
import { type BusyPolicy, isBusy, retryAfterBusy } from "./retry.js"
import * as Schema from "./schema.js"

/** @internal */
export interface Config {
  readonly filename: string
  readonly table: string
  readonly namespace: string
  readonly synchronous: Synchronous
  readonly busyTimeoutMs: number
  readonly busy: BusyPolicy
}

/** @internal */
export const make = (config: Config): Effect.Effect<Store.Backend, PlatformError.PlatformError, Scope.Scope> =>
  Effect.gen(function*() {
    const { busy, namespace } = config
    const makeMethod = "SqliteStore.make"
    const db = yield* Effect.acquireRelease(
      Effect.try({
        try: () => new Database(config.filename, { timeout: config.busyTimeoutMs }),
        catch: (cause) => toPlatformError(makeMethod, cause)
      }),
      (db) => Effect.sync(() => db.close())
    )

    // One synchronous step: its result, or its failure as a PlatformError (a throwing `f` is a
    // defect). The first busy failure starts the asynchronous retries (whose attempts do not start
    // retries of their own), so the successful path passes through no error handler.
    const attempt = <A>(method: string, run: () => A, retrying: boolean): Effect.Effect<A, PlatformError.PlatformError> =>
      Effect.suspend(() => {
        try {
          return Effect.succeed(run())
        } catch (cause) {
          if (cause instanceof FunctionThrew) return Effect.die(cause.cause)
          const error = toPlatformError(method, cause)
          return !retrying && isBusy(error)
            ? retryAfterBusy(busy, attempt(method, run, true), error)
            : Effect.fail(error)
        }
      })
    const op = <A>(method: string, run: () => A) => attempt(method, run, false)

    // Switching to WAL takes an exclusive lock for a moment: several processes opening a new
    // file at once can be busy here. CREATE TABLE IF NOT EXISTS inside BEGIN IMMEDIATE makes
    // concurrent creation serialise instead of racing on the schema.
    const sql = Schema.statements(config.table)
    // SQLite answers with the mode it is in: it keeps the old one when it cannot switch (a
    // read-only file, a file system without shared memory). An in-memory database has no other
    // connection to coordinate with, so its "memory" journal is fine.
    const journalMode = yield* op(makeMethod, () => db.pragma("journal_mode = WAL", { simple: true }))
    if (journalMode !== "wal" && journalMode !== "memory") {
      return yield* Effect.fail(Store.systemError(makeMethod, undefined, {
        reason: "BadResource",
        description: `cannot put ${config.filename} in WAL mode (journal_mode stays ${JSON.stringify(journalMode)}): ` +
          "readers would block the writer across processes"
      }))
    }
    yield* op(makeMethod, () => db.pragma(`synchronous = ${config.synchronous}`))
    yield* op(makeMethod, () => db.transaction(() => db.exec(sql.createTable)).immediate())

    const prepared = yield* op(makeMethod, () => ({
      select: db.prepare<[string, string], unknown>(sql.select).pluck(),
      exists: db.prepare<[string, string], unknown>(sql.exists).pluck(),
      count: db.prepare<[string], number>(sql.count).pluck(),
      insert: db.prepare<[string, string, Store.Value, number]>(sql.insert),
      update: db.prepare<[Store.Value, number, string, string]>(sql.update),
      upsert: db.prepare<[string, string, Store.Value, number]>(sql.upsert),
      remove: db.prepare<[string, string]>(sql.remove),
      clear: db.prepare<[string]>(sql.clear)
    }))

    // The transaction returns nothing (better-sqlite3 rejects a thenable result, and `f`'s
    // result may be one): the result is handed over through `decided`.
    let decided: unknown
    const modifyTransaction = db.transaction(
      (key: string, f: (current: Option.Option<Store.Value>) => Store.Decision<unknown>) => {
        const stored = prepared.select.get(namespace, key)
        const current = stored === undefined ? Option.none() : Option.some(Schema.fromColumn(stored))
        let decision: Store.Decision<unknown>
        try {
          decision = f(current)
        } catch (cause) {
          throw new FunctionThrew(cause)
        }
        const next = decision[1]
        if (next._tag === "Some") {
          if (stored === undefined) prepared.insert.run(namespace, key, next.value, Date.now())
          else prepared.update.run(next.value, Date.now(), namespace, key)
        }
        decided = decision[0]
      }
    ).immediate

    const get = (key: string) => {
      const stored = prepared.select.get(namespace, key)
      return stored === undefined ? Option.none() : Option.some(Schema.fromColumn(stored))
    }

    return {
      namespace,
      get: (key) => op("get", () => get(key)),
      set: (key, value) =>
        op("set", () => {
          prepared.upsert.run(namespace, key, value, Date.now())
        }),
      remove: (key) =>
        op("remove", () => {
          prepared.remove.run(namespace, key)
        }),
      has: (key) => op("has", () => prepared.exists.get(namespace, key) !== undefined),
      size: op("size", () => prepared.count.get(namespace)!),
      clear: op("clear", () => {
        prepared.clear.run(namespace)
      }),
      modifyOrInit: <A>(key: string, f: (current: Option.Option<Store.Value>) => Store.Decision<A>) =>
        op("modifyOrInit", () => {
          modifyTransaction(key, f)
          const result = decided as A
          decided = undefined
          return result
        })
    } satisfies Store.Backend
  })
