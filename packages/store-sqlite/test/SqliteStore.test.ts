import { Subject } from "@durable-singleton/conformance"
import { runConformance } from "@durable-singleton/conformance/Vitest"
import { SqliteStore } from "@durable-singleton/store-sqlite"
import * as Reactivity from "@effect/experimental/Reactivity"
import type { PlatformError } from "@effect/platform/Error"
import { KeyValueStore } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import { Cause, Config, ConfigError, ConfigProvider, type Duration, Effect, Exit, Fiber, Option, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Increments from "../../../support/Increments.js"

// A fresh database file in a temporary directory, removed (with its -wal and -shm) at scope close.
const tempFile = Effect.map(
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "durable-singleton-sqlite-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  ),
  (dir) => path.join(dir, "store.db")
)

// A SqliteClient of its own (one connection) on `filename`, closed with the scope.
const sqliteClient = (filename: string) => Effect.provide(SqliteClient.make({ filename }), Reactivity.layer)

const ownedSubject = Subject.make({
  name: "sqlite",
  acquire: tempFile,
  client: (filename: string, { namespace }) => SqliteStore.make({ filename, namespace })
})

const sqlClientSubject = Subject.make({
  name: "sqlite (SqliteClient)",
  acquire: tempFile,
  client: (filename: string, { namespace }) =>
    Effect.flatMap(sqliteClient(filename), (sql) =>
      // Clients of one process wait for each other's write locks: a short SQLite busy handler
      // hands over to the store's asynchronous retry instead of blocking the event loop.
      Effect.provideService(SqliteStore.makeSqlClient({ namespace, busyTimeout: 2 }), SqliteClient.SqliteClient, sql))
})

const failureOf = <A>(exit: Exit.Exit<A, PlatformError>) =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const tablesIn = (filename: string) => {
  const db = new Database(filename, { readonly: true })
  try {
    return db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all()
  } finally {
    db.close()
  }
}

const increment = (n: string) => String(Number(n) + 1)

runConformance(ownedSubject)
runConformance(sqlClientSubject)

describe("SqliteStore (own connection)", () => {
  it.scoped("rejects table names that are not plain identifiers, creating nothing", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      yield* Effect.scoped(SqliteStore.make({ filename }))
      for (
        const table of [
          "x\"; DROP TABLE durable_singleton_kv; --",
          "a b",
          "1abc",
          "",
          "sqlite_master",
          "SQLITE_x",
          "a.b",
          "é",
          "x".repeat(129)
        ]
      ) {
        const failure = failureOf(yield* Effect.exit(Effect.scoped(SqliteStore.make({ filename, table }))))
        expect(failure).toMatchObject({ _tag: "BadArgument", method: "SqliteStore.make" })
        expect(failure?.message).toContain("table name")
      }
      expect(tablesIn(filename)).toEqual(["durable_singleton_kv"])
    }))

  it.scoped("rejects bad options with BadArgument", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      const bad: ReadonlyArray<SqliteStore.Options> = [
        { filename: "" },
        { filename, synchronous: "sometimes" as SqliteStore.Synchronous },
        { filename, busyTimeout: "soon" as Duration.DurationInput },
        { filename, retryBusyFor: Infinity },
        { filename, namespace: "\ud800" }
      ]
      for (const options of bad) {
        expect(failureOf(yield* Effect.exit(Effect.scoped(SqliteStore.make(options))))).toMatchObject({
          _tag: "BadArgument"
        })
      }
    }))

  it.scoped("tables are isolated from each other; the file is in WAL mode", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      const a = yield* SqliteStore.make({ filename, table: "first" })
      const b = yield* SqliteStore.make({ filename, table: "second" })
      yield* a.set("k", "a")
      expect(yield* b.get("k")).toEqual(Option.none())
      expect(tablesIn(filename)).toEqual(["first", "second"])
      const db = new Database(filename)
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal")
      db.close()
    }))

  it.scoped("a value of a storage class the store never writes is InvalidData, not a defect", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      const store = yield* SqliteStore.make({ filename })
      const db = new Database(filename)
      db.prepare(`INSERT INTO ${SqliteStore.defaultTable} VALUES ('default', 'n', 42, 1, 0)`).run()
      db.close()
      for (const op of [store.get("n"), store.modify("n", increment)]) {
        expect(failureOf(yield* Effect.exit(op))).toMatchObject({ _tag: "SystemError", reason: "InvalidData" })
      }
    }))

  it.live("a database locked for longer than retryBusyFor fails with Busy and writes nothing", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      const store = yield* SqliteStore.make({ filename, retryBusyFor: 200 })
      yield* store.set("k", "0")
      const holder = new Database(filename)
      holder.prepare("BEGIN IMMEDIATE").run()
      const started = performance.now()
      for (const op of [store.modify("k", increment), store.set("k", "x"), store.setIfAbsent("new", "x")]) {
        const failure = failureOf(yield* Effect.exit(op as Effect.Effect<unknown, PlatformError>))
        expect(failure).toMatchObject({ _tag: "SystemError", reason: "Busy", module: "KeyValueStore" })
        expect(failure?.message).toContain("stayed locked")
        expect((failure as { cause?: { code?: string } }).cause?.code).toMatch(/^SQLITE_BUSY/)
      }
      expect(performance.now() - started).toBeGreaterThanOrEqual(600)
      holder.prepare("ROLLBACK").run()
      holder.close()
      expect(yield* store.get("k")).toEqual(Option.some("0"))
      expect(yield* store.has("new")).toBe(false)
      expect(yield* store.modify("k", increment)).toEqual(Option.some("1"))
    }).pipe(Effect.scoped))

  it.live("closing the store stops an operation waiting for the lock: BadResource, not a defect or a wait", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      const holder = new Database(filename)
      yield* Effect.addFinalizer(() => Effect.sync(() => holder.close()))
      const scope = yield* Scope.make()
      const store = yield* Scope.extend(SqliteStore.make({ filename }), scope)
      holder.prepare("BEGIN IMMEDIATE").run()
      const waiting = yield* Effect.fork(store.set("k", "v"))
      yield* Effect.sleep("50 millis")
      const started = performance.now()
      yield* Scope.close(scope, Exit.void)
      const failure = failureOf(yield* Fiber.await(waiting))
      expect(failure).toMatchObject({ _tag: "SystemError", reason: "BadResource" })
      expect(performance.now() - started).toBeLessThan(1000)
      holder.prepare("ROLLBACK").run()
      expect(holder.prepare("SELECT count(*) FROM durable_singleton_kv").pluck().get()).toBe(0)
    }).pipe(Effect.scoped))

  it.live("waits for a lock released within retryBusyFor, then writes exactly once", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      const store = yield* SqliteStore.make({ filename })
      yield* store.set("k", "0")
      const holder = new Database(filename)
      holder.prepare("BEGIN IMMEDIATE").run()
      setTimeout(() => {
        holder.prepare("COMMIT").run()
        holder.close()
      }, 100)
      expect(yield* store.modify("k", increment)).toEqual(Option.some("1"))
      expect(yield* store.get("k")).toEqual(Option.some("1"))
    }).pipe(Effect.scoped))

  it.live("4 processes × 250 modify increments on one file end at exactly 1000", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      yield* Increments.expectExact({ kind: "sqlite", filename, namespace: "multi-process" })
    }).pipe(Effect.scoped), 120_000)

  it.live("several processes creating the table of a new file at once all succeed", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      const location = { kind: "sqlite", filename, namespace: "multi-process" } as const
      const seen = yield* Increments.run(location, { processes: 6, increments: 1, concurrency: 1, openAfterGo: true })
      expect(seen.flat().sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6])
      expect(tablesIn(filename)).toEqual(["durable_singleton_kv"])
    }).pipe(Effect.scoped), 120_000)

  it.scoped("an in-memory database opens (its journal cannot be WAL, and no other connection shares it)", () =>
    Effect.gen(function*() {
      const store = yield* SqliteStore.make({ filename: ":memory:" })
      yield* store.set("k", "0")
      expect(yield* store.modify("k", increment)).toEqual(Option.some("1"))
    }))

  it.effect("layerConfig reads its options from Config; a missing filename is a ConfigError", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      const layer = SqliteStore.layerConfig({ filename: Config.string("SQLITE_FILENAME") })
      const kv = Effect.flatMap(KeyValueStore.KeyValueStore, (kv) =>
        Effect.zipRight(kv.set("k", "v"), kv.get("k")))
      const found = yield* kv.pipe(
        Effect.provide(layer),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SQLITE_FILENAME", filename]])))
      )
      expect(found).toEqual(Option.some("v"))
      const missing = yield* kv.pipe(
        Effect.provide(layer),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map())),
        Effect.flip
      )
      expect(ConfigError.isConfigError(missing)).toBe(true)
      expect(String(missing)).toContain("SQLITE_FILENAME")
    }).pipe(Effect.scoped))
})

describe("SqliteStore (on a SqliteClient)", () => {
  it.scoped("shares the table with the own-connection variant", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      const owned = yield* SqliteStore.make({ filename })
      const sql = yield* sqliteClient(filename)
      const shared = yield* Effect.provideService(SqliteStore.makeSqlClient(), SqliteClient.SqliteClient, sql)
      yield* owned.set("text", "a\u0000b")
      yield* shared.set("bytes", new Uint8Array([0, 1]))
      expect(yield* shared.get("text")).toEqual(Option.some("a\u0000b"))
      expect(yield* owned.getUint8Array("bytes")).toEqual(Option.some(new Uint8Array([0, 1])))
    }))

  it.live("4 processes × 250 modify increments, each process on its own SqliteClient, end at exactly 1000", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      yield* Increments.expectExact({ kind: "sqlite-client", filename, namespace: "multi-process" })
    }).pipe(Effect.scoped), 120_000)

  it.live("other fibers' statements on the client never enter the store's transactions", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      const sql = yield* sqliteClient(filename)
      const store = yield* Effect.provideService(SqliteStore.makeSqlClient(), SqliteClient.SqliteClient, sql)
      yield* sql`CREATE TABLE events (id INTEGER PRIMARY KEY)`
      yield* store.set("counter", "0")
      yield* Effect.all([
        Effect.forEach(Array.from({ length: 100 }), () => store.modify("counter", increment), {
          concurrency: 10,
          discard: true
        }),
        Effect.forEach(Array.from({ length: 100 }, (_, i) => i), (id) => sql`INSERT INTO events VALUES (${id})`, {
          concurrency: 10,
          discard: true
        }),
        // A transaction of the application's own: must not nest inside (or around) the store's.
        Effect.forEach(
          Array.from({ length: 20 }, (_, i) => 1000 + i),
          (id) => sql.withTransaction(sql`INSERT INTO events VALUES (${id})`),
          { concurrency: 5, discard: true }
        )
      ], { concurrency: "unbounded" })
      expect(yield* store.get("counter")).toEqual(Option.some("100"))
      expect(yield* sql`SELECT count(*) AS n FROM events`).toEqual([{ n: 120n }])
      // size is a number even when the client reads integers as bigints
      expect(yield* store.size).toBe(1)
    }).pipe(Effect.provideService(SqlClient.SafeIntegers, true), Effect.scoped))

  it.scoped("inside the client's withTransaction, store operations join it and roll back with it", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      const sql = yield* sqliteClient(filename)
      const store = yield* Effect.provideService(SqliteStore.makeSqlClient(), SqliteClient.SqliteClient, sql)
      yield* store.set("k", "0")
      const rolledBack = yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
        yield* store.modify("k", increment)
        expect(yield* store.get("k")).toEqual(Option.some("1"))
        return yield* Effect.fail("abort")
      })))
      expect(Exit.isFailure(rolledBack)).toBe(true)
      expect(yield* store.get("k")).toEqual(Option.some("0"))
      yield* sql.withTransaction(Effect.zipRight(store.modify("k", increment), store.setIfAbsent("other", "x")))
      expect(yield* store.get("k")).toEqual(Option.some("1"))
      expect(yield* store.get("other")).toEqual(Option.some("x"))
    }))

  it.scoped("a transaction of another client in context is not joined", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      const sql = yield* sqliteClient(filename)
      const other = yield* sqliteClient(filename)
      const store = yield* Effect.provideService(SqliteStore.makeSqlClient(), SqliteClient.SqliteClient, sql)
      yield* store.set("k", "0")
      const exit = yield* Effect.exit(other.withTransaction(Effect.gen(function*() {
        yield* store.modify("k", increment)
        return yield* Effect.fail("abort the other client's transaction")
      })))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(yield* store.get("k")).toEqual(Option.some("1"))
    }))

  it.scoped("rejects table names that are not plain identifiers", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      const sql = yield* sqliteClient(filename)
      const exit = yield* Effect.exit(
        Effect.provideService(SqliteStore.makeSqlClient({ table: "t; DROP TABLE x" }), SqliteClient.SqliteClient, sql)
      )
      expect(failureOf(exit)).toMatchObject({ _tag: "BadArgument", method: "SqliteStore.makeSqlClient" })
    }))
})
