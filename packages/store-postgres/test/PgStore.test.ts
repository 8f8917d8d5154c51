import { Subject, TcpProxy } from "@durable-singleton/conformance"
import { runConformance } from "@durable-singleton/conformance/Vitest"
import { Store } from "@durable-singleton/core"
import { PgStore } from "@durable-singleton/store-postgres"
import type { PlatformError } from "@effect/platform/Error"
import { SqlClient } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Config, ConfigProvider, Context, Duration, Effect, Exit, Fiber, Layer, Option, Redacted, Scope } from "effect"
import { randomBytes, randomUUID } from "node:crypto"
import * as Pg from "pg"
import * as Increments from "../../../support/Increments.js"
import { serverUrl } from "../../../support/test-env.js"
import { parseBytea } from "../src/internal/connection.js"
import * as Errors from "../src/internal/errors.js"
import * as PrivatePostgres from "./support/PrivatePostgres.js"

const url = serverUrl("DATABASE_URL")

// Registers a live, scoped test against a server, or, without DATABASE_URL, a test that says
// in its name that it is skipped (serverUrl has already warned, and throws under CI=true).
const pgTest = (name: string, self: (url: string) => Effect.Effect<unknown, unknown, Scope.Scope>, timeout?: number) =>
  url === undefined
    ? it(`${name} (SKIPPED: DATABASE_URL is not set)`, (ctx) => ctx.skip())
    : it.scopedLive(name, () => self(url), timeout)

// A raw pg client, ended with the scope.
const rawClient = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new Pg.Client({ connectionString: url })
      client.on("error", () => {})
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.end().catch(() => {}))
  )

const sql = (url: string, text: string, values: Array<unknown> = []) =>
  Effect.scoped(Effect.flatMap(rawClient(url), (client) => Effect.promise(() => client.query(text, values))))

const uniqueName = (prefix: string) => `${prefix}_${randomUUID().replaceAll("-", "")}`

// A database of its own, with the given settings as its defaults (ALTER DATABASE … SET), dropped
// when the scope closes. Returns its URL.
const scratchDatabase = (url: string, settings: Readonly<Record<string, string>>) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const name = uniqueName("scratch")
      yield* sql(url, `CREATE DATABASE "${name}"`)
      for (const [setting, value] of Object.entries(settings)) {
        yield* sql(url, `ALTER DATABASE "${name}" SET ${setting} = '${value}'`)
      }
      const scratch = new URL(url)
      scratch.pathname = `/${name}`
      return { name, url: scratch.href }
    }),
    ({ name }) => sql(url, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
  ).pipe(Effect.map(({ url }) => url))

// Storage for one test: a unique table (created by the first client), dropped when the scope closes.
const uniqueTable = (url: string) =>
  Effect.acquireRelease(
    Effect.sync(() => uniqueName("test")),
    (table) => sql(url, `DROP TABLE IF EXISTS "${table}"`)
  )

// Storage for one conformance run: a unique table, and a proxy of its own in front of the
// server, through which every client connects and which the suite disrupts (the shared server
// is never touched).
const proxiedTable = (url: string) => Effect.all({ table: uniqueTable(url), proxy: TcpProxy.fromUrl(url) })

/** Conformance subject: every client is a store with its own pool. */
const ownPoolSubject = (url: string) =>
  Subject.make({
    name: "postgres",
    acquire: proxiedTable(url),
    client: ({ proxy, table }, { namespace }) => PgStore.make({ url: proxy.url, table, namespace, maxConnections: 4 }),
    disrupt: ({ proxy }) => proxy.disrupt
  })

// An application's PgClient (its own pool), closed with the scope.
const pgClient = (url: string, options: Partial<PgClient.PgClientConfig> = {}) =>
  Layer.build(PgClient.layer({ url: Redacted.make(url), maxConnections: 4, ...options }))

/** Conformance subject: every client is a store on an application's PgClient of its own. */
const sharedClientSubject = (url: string) =>
  Subject.make({
    name: "postgres (shared PgClient)",
    acquire: proxiedTable(url),
    client: ({ proxy, table }, { namespace }) =>
      Effect.flatMap(pgClient(proxy.url), (context) => Effect.provide(PgStore.fromClient({ table, namespace }), context)),
    disrupt: ({ proxy }) => proxy.disrupt
  })

if (url === undefined) {
  it("conformance: postgres (SKIPPED: DATABASE_URL is not set)", (ctx) => ctx.skip())
} else {
  runConformance(ownPoolSubject(url))
  runConformance(sharedClientSubject(url))
}

const failureOf = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) as PlatformError | undefined : undefined

const systemReason = (error: PlatformError | undefined) => error?._tag === "SystemError" ? error.reason : error?._tag

// The driver's error under a SystemError: SystemError.cause is a SqlError whose cause it is.
const driverError = (error: PlatformError | undefined) => {
  expect(error?.cause).toBeInstanceOf(SqlError)
  return (error!.cause as SqlError).cause as Error & { readonly code?: string }
}

const increment = (n: string) => String(Number(n) + 1)

describe("PgStore", () => {
  pgTest("the key column holds exactly the key's UTF-8 bytes, NUL included", (url) =>
    Effect.gen(function*() {
      const table = yield* uniqueTable(url)
      const store = yield* PgStore.make({ url, table })
      const keys = ["a\u0000b", "x".repeat(1024)]
      for (const key of keys) yield* store.set(key, "v")
      const stored = yield* sql(url, `SELECT octet_length(key) AS n FROM "${table}" WHERE key = ANY($1)`, [
        keys.map((key) => Buffer.from(key))
      ])
      expect(stored.rows.map((r) => r.n).sort()).toEqual([1024, 3])
    }))

  pgTest("reads bytea in both output formats (hex and the legacy escape)", (url) =>
    Effect.gen(function*() {
      const client = yield* rawClient(url)
      const samples = [new Uint8Array(0), new Uint8Array([0, 1, 92, 39, 127, 128, 255]), new Uint8Array(randomBytes(4096))]
      for (const format of ["hex", "escape"]) {
        yield* Effect.promise(() => client.query(`SET bytea_output = ${format}`))
        for (const sample of samples) {
          const text = yield* Effect.promise(() =>
            client.query({ text: "SELECT $1::bytea", values: [Buffer.from(sample)], rowMode: "array", types: { getTypeParser: () => (s: string) => s } })
          )
          const parsed = parseBytea(text.rows[0]![0])
          expect(Buffer.compare(parsed, sample)).toBe(0)
        }
      }
    }))

  pgTest("4 processes × 250 modify increments end at exactly 1000", (url) =>
    Effect.gen(function*() {
      const table = yield* uniqueTable(url)
      yield* Increments.expectExact({ kind: "postgres", url, table, namespace: "multi-process" })
    }), 120_000)

  for (const isolation of ["repeatable read", "serializable"]) {
    pgTest(`under a database default isolation of ${isolation}, contended updates, writes and creations all succeed (own pools and a shared PgClient)`, (url) =>
      Effect.gen(function*() {
        const database = yield* scratchDatabase(url, { default_transaction_isolation: isolation })
        const table = "contended"
        const clients = [
          ...yield* Effect.forEach(Array.from({ length: 2 }), () => PgStore.make({ url: database, table, maxConnections: 4 })),
          ...yield* Effect.forEach(Array.from({ length: 2 }), () =>
            Effect.flatMap(pgClient(database), (context) => Effect.provide(PgStore.fromClient({ table }), context)))
        ]
        yield* clients[0]!.set("n", "0")
        const createOrIncrement = (current: Option.Option<Store.Value>) =>
          [undefined, Option.some(Option.match(current, { onNone: () => "1", onSome: (n) => increment(String(n)) }))] as const
        const failures: Array<string> = []
        const attempt = (effect: Effect.Effect<unknown, PlatformError>) =>
          Effect.catchAllCause(effect, (cause) => Effect.sync(() => failures.push(String(Cause.squash(cause)))))
        yield* Effect.forEach(clients, (client, c) =>
          Effect.all([
            // the row lock after conflicts, and compare-and-set conflicts reported as 40001
            Effect.forEach(Array.from({ length: 4 }), () =>
              Effect.forEach(Array.from({ length: 10 }), () => attempt(client.modify("n", increment))), {
              concurrency: "unbounded"
            }),
            // creations racing under the row lock
            Effect.forEach(Array.from({ length: 5 }), () => attempt(client.modifyOrInit("fresh", createOrIncrement)), {
              concurrency: "unbounded"
            }),
            // plain writes of one row, run again at READ COMMITTED after a 40001
            Effect.forEach(Array.from({ length: 10 }), (_, i) =>
              attempt(i % 3 === 2 ? client.remove("s") : client.set("s", `${c}:${i}`)), { concurrency: "unbounded" })
          ], { concurrency: "unbounded" }), { concurrency: "unbounded", discard: true })
        expect(failures).toEqual([])
        expect(yield* clients[1]!.get("n")).toEqual(Option.some(String(4 * 4 * 10)))
        expect(yield* clients[2]!.get("fresh")).toEqual(Option.some(String(4 * 5)))
      }), 60_000)
  }

  pgTest("a hot key across clients: conflicts fall back to the row lock, no update lost, f called at most three times", (url) =>
    Effect.gen(function*() {
      const table = yield* uniqueTable(url)
      const clients = yield* Effect.forEach(Array.from({ length: 4 }), () => PgStore.make({ url, table, maxConnections: 8 }))
      yield* clients[0]!.set("hot", "0")
      let maxCalls = 0
      yield* Effect.forEach(clients, (client) =>
        Effect.forEach(Array.from({ length: 8 }), () =>
          Effect.forEach(Array.from({ length: 25 }), () => {
            let calls = 0
            return Effect.tap(client.modify("hot", (n) => {
              calls++
              return increment(n)
            }), () => Effect.sync(() => maxCalls = Math.max(maxCalls, calls)))
          }, { discard: true }), { concurrency: "unbounded", discard: true }), { concurrency: "unbounded", discard: true })
      expect(yield* clients[3]!.get("hot")).toEqual(Option.some(String(4 * 8 * 25)))
      expect(maxCalls).toBeLessThanOrEqual(3)
    }), 60_000)

  pgTest("the version a store remembers is only a guess: writes by other clients in between are never missed", (url) =>
    Effect.gen(function*() {
      const table = yield* uniqueTable(url)
      const a = yield* PgStore.make({ url, table })
      const b = yield* PgStore.make({ url, table })
      const seen = (store: Store.Store, key: string) => store.modifyOrInit(key, (current) => [current, Option.none()])
      yield* a.set("k", "1")
      expect(yield* a.modify("k", increment)).toEqual(Option.some("2")) // a now remembers ("2", its version)
      // another client's write, then a read-only decision and an update by a
      yield* b.set("k", "10")
      expect(yield* seen(a, "k")).toEqual(Option.some("10"))
      yield* b.set("k", "20")
      expect(yield* a.modify("k", increment)).toEqual(Option.some("21"))
      // removed by another client: a's modify of the missing key writes nothing
      yield* b.remove("k")
      expect(yield* a.modify("k", increment)).toEqual(Option.none())
      expect(yield* b.has("k")).toBe(false)
      // removed and created again with the very value a remembers: a new version all the same
      yield* a.set("k", "5")
      yield* b.remove("k")
      yield* b.set("k", "5")
      let calls = 0
      expect(yield* a.modify("k", (n) => {
        calls++
        return increment(n)
      })).toEqual(Option.some("6"))
      expect(calls).toBe(2) // the remembered version failed, the read one succeeded
      // bytes: a mutated argument or result never changes what is remembered
      const bytes = new Uint8Array([1, 2, 3])
      yield* a.set("bin", bytes)
      bytes[0] = 9
      const out = Option.getOrThrow(yield* a.modifyUint8Array("bin", (v) => {
        v[1] = 9
        return v
      }))
      out[2] = 9
      expect(yield* seen(b, "bin")).toEqual(Option.some(new Uint8Array([1, 9, 3])))
      expect(yield* seen(a, "bin")).toEqual(Option.some(new Uint8Array([1, 9, 3])))
    }))

  pgTest("concurrent start-up: 16 clients create one new schema at once, 8 of them a table each, 8 one shared table", (url) =>
    Effect.gen(function*() {
      const expectedColumns = [
        "namespace bytea",
        "key bytea",
        "value bytea",
        "version bigint",
        "updated_at timestamp with time zone"
      ]
      for (let round = 0; round < 3; round++) {
        const schema = uniqueName("schema")
        yield* Effect.addFinalizer(() => sql(url, `DROP SCHEMA IF EXISTS "${schema}" CASCADE`))
        const tables = Array.from({ length: 16 }, (_, i) => i % 2 === 0 ? `own${i}` : "shared")
        const stores = yield* Effect.forEach(
          tables,
          (table, i) => PgStore.make({ url, schema, table, namespace: `n${i}`, maxConnections: 1 }),
          { concurrency: "unbounded" }
        )
        yield* Effect.forEach(stores, (store, i) => store.set("k", String(i)), { concurrency: "unbounded" })
        for (const table of new Set(tables)) {
          const columns = yield* sql(
            url,
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            [schema, table]
          )
          expect(columns.rows.map((r) => `${r.column_name} ${r.data_type}`), table).toEqual(expectedColumns)
        }
        // Idempotent: an existing table is used as it is.
        const again = yield* PgStore.make({ url, schema, table: "shared", namespace: "n3" })
        expect(yield* again.get("k")).toEqual(Option.some("3"))
      }
    }), 60_000)

  pgTest("identifiers, namespaces and options that could inject or are out of range are rejected with BadArgument, and nothing is created", (url) =>
    Effect.gen(function*() {
      const before = yield* sql(url, "SELECT count(*)::int AS n FROM pg_class")
      const bad: ReadonlyArray<PgStore.Options> = [
        { table: `x"; DROP TABLE pg_class; --` },
        { table: "a.b" },
        { table: "1abc" },
        { table: "" },
        { table: "t".repeat(64) },
        { table: "tablé" },
        { table: "a b" },
        { schema: `public"."x` },
        { schema: "pg_catalog; --" },
        { namespace: "\ud800" },
        { namespace: "n".repeat(1025) },
        { synchronousCommit: "off -c fsync=off" as "off" },
        { lockIdleTimeout: "soon" as Duration.DurationInput },
        { lockIdleTimeout: -1 },
        { lockIdleTimeout: NaN },
        { lockIdleTimeout: Duration.days(25) },
        { queryTimeout: "-5 seconds" as Duration.DurationInput },
        { queryTimeout: 2 ** 31 },
        { connectTimeout: "soon" as Duration.DurationInput },
        { idleTimeout: [-1, 0] },
        { connectionTTL: -1n },
        { statementTimeout: -5 },
        { statementTimeout: Duration.weeks(4) },
        { maxConnections: 0 },
        { maxConnections: 1.5 },
        { minConnections: 5, maxConnections: 4 },
        { port: 70000 }
      ]
      for (const options of bad) {
        const error = failureOf(yield* Effect.exit(PgStore.make({ url, ...options })))
        expect(error?._tag, JSON.stringify(options, (_, v) => typeof v === "bigint" ? `${v}n` : v)).toBe("BadArgument")
      }
      const after = yield* sql(url, "SELECT count(*)::int AS n FROM pg_class")
      expect(after.rows[0].n).toBe(before.rows[0].n)
    }))

  pgTest("an existing table without the store's columns is refused with InvalidData; migrate: false needs the table", (url) =>
    Effect.gen(function*() {
      const table = yield* uniqueTable(url)
      yield* sql(url, `CREATE TABLE "${table}" (namespace text, key text, value text, version bigint, updated_at timestamptz)`)
      const wrong = failureOf(yield* Effect.exit(PgStore.make({ url, table })))
      expect(systemReason(wrong)).toBe("InvalidData")
      expect(wrong?.message).toMatch(/namespace bytea/)
      const missing = failureOf(yield* Effect.exit(PgStore.make({ url, table: uniqueName("absent"), migrate: false })))
      expect(systemReason(missing)).toBe("NotFound")
    }))

  pgTest("a value this store did not write fails with InvalidData and is left untouched", (url) =>
    Effect.gen(function*() {
      const table = yield* uniqueTable(url)
      const store = yield* PgStore.make({ url, table, namespace: "ns" })
      yield* sql(url, `INSERT INTO "${table}" VALUES ($1, $2, $3, 1)`, [Buffer.from("ns"), Buffer.from("foreign"), Buffer.from([7, 1])])
      for (const op of [store.get("foreign"), store.modify("foreign", increment)]) {
        expect(systemReason(failureOf(yield* Effect.exit(op)))).toBe("InvalidData")
      }
      const row = yield* sql(url, `SELECT value FROM "${table}" WHERE key = $1`, [Buffer.from("foreign")])
      expect(row.rows[0].value).toEqual(Buffer.from([7, 1]))
    }))

  pgTest("a defect in f leaves no transaction open", (url) =>
    Effect.gen(function*() {
      const table = yield* uniqueTable(url)
      const store = yield* PgStore.make({ url, table, maxConnections: 2, applicationName: table })
      yield* store.set("n", "0")
      yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        (i) =>
          Effect.exit(store.modify("n", (n) => {
            if (i % 5 === 0) throw new Error("boom")
            return increment(n)
          })),
        { concurrency: "unbounded" }
      )
      const open = yield* sql(
        url,
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'",
        [table]
      )
      expect(open.rows[0].n).toBe(0)
    }))

  pgTest("interrupted updates apply once or not at all, and leave no lock or transaction behind", (url) =>
    Effect.gen(function*() {
      const table = yield* uniqueTable(url)
      const store = yield* PgStore.make({ url, table, applicationName: table })
      const other = yield* PgStore.make({ url, table })
      yield* store.set("n", "0")
      for (let round = 0; round < 5; round++) {
        const fibers = yield* Effect.forEach(Array.from({ length: 100 }), () => Effect.fork(store.modify("n", increment)))
        yield* Effect.sleep(`${round} millis`)
        const interrupted = fibers.filter((_, i) => i % 2 === 1)
        yield* Effect.forEach(interrupted, Fiber.interrupt, { concurrency: "unbounded", discard: true })
        const exits = yield* Effect.forEach(fibers, Fiber.await)
        const acknowledged = exits.filter(Exit.isSuccess).length
        const before = Number(Option.getOrThrow(yield* other.get("n")))
        yield* Effect.sleep("100 millis")
        // Nothing is left running: another client updates at once and sees a stable value.
        expect(yield* other.modify("n", (n) => n)).toEqual(Option.some(String(before)))
        yield* other.set("n", "0")
        expect(before).toBeGreaterThanOrEqual(acknowledged)
        expect(before).toBeLessThanOrEqual(acknowledged + interrupted.length)
      }
      const sessions = yield* sql(
        url,
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'",
        [table]
      )
      expect(sessions.rows[0].n).toBe(0)
      yield* store.set("n", "after")
      expect(yield* store.get("n")).toEqual(Option.some("after"))
    }), 60_000)

  pgTest("statement timeout: a write blocked past statementTimeout fails with TimedOut, then the store carries on", (url) =>
    Effect.gen(function*() {
      const table = yield* uniqueTable(url)
      const store = yield* PgStore.make({ url, table, statementTimeout: "200 millis", maxConnections: 1 })
      yield* store.set("k", "0")
      const locker = yield* rawClient(url)
      yield* Effect.promise(() => locker.query(`BEGIN; SELECT * FROM "${table}" FOR UPDATE`))
      for (const op of [store.modify("k", increment), store.set("k", "x")]) {
        const error = failureOf(yield* Effect.exit(op))
        expect(systemReason(error)).toBe("TimedOut")
        expect(driverError(error).code).toBe("57014")
      }
      yield* Effect.promise(() => locker.query("ROLLBACK"))
      expect(yield* store.modify("k", increment)).toEqual(Option.some("1"))
    }))

  pgTest("a row-lock transaction left idle past lockIdleTimeout is aborted by the server: nothing written, lock released", (url) =>
    Effect.gen(function*() {
      const table = yield* uniqueTable(url)
      const store = yield* PgStore.make({ url, table, lockIdleTimeout: "300 millis" })
      const other = yield* PgStore.make({ url, table })
      // written by the other store, so that `store` has no remembered version to try first
      yield* other.set("k", "0")
      // A concurrent writer holding the row makes the compare-and-set conflict, so the second
      // call of f runs under the row lock; it then blocks this process for longer than the
      // timeout, as a frozen process would.
      const locker = yield* rawClient(url)
      yield* Effect.promise(() => locker.query(`BEGIN; SELECT * FROM "${table}" FOR UPDATE`))
      let calls = 0
      const modify = yield* Effect.fork(store.modify("k", (n) => {
        if (++calls === 2) {
          const until = Date.now() + 1000
          while (Date.now() < until) {
            // frozen
          }
        }
        return n + "!"
      }))
      yield* Effect.sleep("100 millis")
      yield* Effect.promise(() => locker.query(`UPDATE "${table}" SET version = version + 1; COMMIT`))
      const error = failureOf(yield* Fiber.await(modify))
      expect(calls).toBe(2)
      expect(error?._tag).toBe("SystemError")
      expect(yield* other.modify("k", (n) => n + "?")).toEqual(Option.some("0?"))
      expect(yield* store.modify("k", (n) => n + "!")).toEqual(Option.some("0?!"))
    }))

  pgTest("0 and Duration.infinity mean no timeout: they override the database's statement_timeout and idle_in_transaction_session_timeout", (url) =>
    Effect.gen(function*() {
      const database = yield* scratchDatabase(url, {
        statement_timeout: "100ms",
        idle_in_transaction_session_timeout: "200ms"
      })
      const table = "timeouts"
      const defaults = yield* PgStore.make({ url: database, table })
      const unlimited = yield* PgStore.make({
        url: database,
        table,
        statementTimeout: Duration.infinity,
        lockIdleTimeout: 0,
        queryTimeout: Duration.infinity,
        connectTimeout: 0,
        idleTimeout: Duration.infinity,
        connectionTTL: 0
      })
      yield* defaults.set("k", "0")
      const locker = yield* rawClient(database)
      yield* Effect.promise(() => locker.query("SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0"))
      const holdRowLock = (millis: number) =>
        Effect.promise(async () => {
          await locker.query(`BEGIN; SELECT * FROM "${table}" FOR UPDATE`)
          setTimeout(() => void locker.query("COMMIT"), millis)
        })
      // A write blocked for 300 ms: past the database's statement_timeout, not past none.
      yield* holdRowLock(300)
      expect(systemReason(failureOf(yield* Effect.exit(defaults.set("k", "x"))))).toBe("TimedOut")
      yield* holdRowLock(300)
      yield* unlimited.set("k", "1")
      // A row-lock transaction idle for 400 ms (f blocks the process, as a frozen one would):
      // past the database's idle_in_transaction_session_timeout, not past none. The row is
      // locked when the update starts, so its compare-and-set conflicts and f runs again
      // under the row lock.
      yield* holdRowLock(100)
      let calls = 0
      const updated = yield* unlimited.modify("k", (n) => {
        if (++calls === 2) {
          const until = Date.now() + 400
          while (Date.now() < until) {
            // frozen
          }
        }
        return increment(n)
      }).pipe(Effect.fork, Effect.tap(() => Effect.promise(() => locker.query(`UPDATE "${table}" SET version = version + 1`))), Effect.flatMap(Fiber.join))
      expect(calls).toBe(2)
      expect(updated).toEqual(Option.some("2"))
    }), 60_000)

  pgTest("a server error is classified by its SQLSTATE, never by words in its message (a setting named …_timeout is not a timeout)", (url) =>
    Effect.gen(function*() {
      const client = yield* rawClient(url)
      const error = yield* Effect.promise(() => client.query("SET statement_timeout = 'soon'").then(() => undefined, (e) => e))
      expect(error).toBeInstanceOf(Pg.DatabaseError)
      expect(error.code).toBe("22023")
      expect(error.message).toMatch(/timeout/)
      expect(systemReason(Errors.toPlatformError("get", error))).toBe("Unknown")
    }))

  pgTest("a closed store fails with BadResource and its pool is ended", (url) =>
    Effect.gen(function*() {
      const table = yield* uniqueTable(url)
      const store = yield* Effect.scoped(PgStore.make({ url, table, applicationName: table }))
      for (const op of [store.get("k"), store.set("k", "v"), store.modify("k", increment), store.size, store.clear]) {
        expect(systemReason(failureOf(yield* Effect.exit(op)))).toBe("BadResource")
      }
      yield* Effect.sleep("200 millis")
      const sessions = yield* sql(url, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [table])
      expect(sessions.rows[0].n).toBe(0)
    }))

  pgTest("layerConfig reads DATABASE_URL and PG_STORE_* by default, or the Config it is given", (url) =>
    Effect.gen(function*() {
      const table = yield* uniqueTable(url)
      const schema = uniqueName("schema")
      yield* Effect.addFinalizer(() => sql(url, `DROP SCHEMA IF EXISTS "${schema}" CASCADE`))
      const withConfig = (layer: Layer.Layer<Store.Store, unknown>, entries: ReadonlyArray<[string, string]>) =>
        layer.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(entries)))))
      const setK = Effect.flatMap(Store.Store, (store) => store.set("k", "v"))
      yield* Effect.provide(
        setK,
        withConfig(PgStore.layerConfig(), [
          ["DATABASE_URL", url],
          ["PG_STORE_SCHEMA", schema],
          ["PG_STORE_TABLE", table],
          ["PG_STORE_NAMESPACE", "from-env"]
        ])
      )
      yield* Effect.provide(
        setK,
        withConfig(
          PgStore.layerConfig({
            url: Config.redacted("APP_DB"),
            table: Config.succeed(table),
            namespace: Config.string("APP_NS")
          }),
          [["APP_DB", url], ["APP_NS", "custom"]]
        )
      )
      const inSchema = yield* sql(url, `SELECT namespace FROM "${schema}"."${table}"`)
      expect(inSchema.rows.map((r) => r.namespace)).toEqual([Buffer.from("from-env")])
      const inPublic = yield* sql(url, `SELECT namespace FROM "${table}"`)
      expect(inPublic.rows.map((r) => r.namespace)).toEqual([Buffer.from("custom")])
      const missing = yield* Effect.exit(Layer.build(withConfig(PgStore.layerConfig(), [])))
      expect(Exit.isFailure(missing)).toBe(true)
    }))

  pgTest("layerFromClient runs on the application's pool, outside its transactions, whatever its type parsers", (url) =>
    Effect.gen(function*() {
      const tables = [yield* uniqueTable(url), yield* uniqueTable(url)] as const
      // The application parses bigint and bytea its own way: the store must not care.
      const pool = new Pg.Pool({
        connectionString: url,
        max: 2,
        types: {
          getTypeParser: (oid: number, format?: string) =>
            oid === 20 ? BigInt : oid === 17 ? () => "not bytes" : Pg.types.getTypeParser(oid, format as "text")
        } as Pg.CustomTypesConfig
      })
      let acquisitions = 0
      pool.on("acquire", () => acquisitions++)
      const context = yield* Layer.build(PgClient.layerFromPool({
        acquire: Effect.acquireRelease(Effect.succeed(pool), (pool) => Effect.promise(() => pool.end()))
      }))
      const layer = PgStore.layerFromClient({ table: tables[0], namespace: "a" }).pipe(
        Layer.provideMerge(Layer.succeedContext(context))
      )
      yield* Effect.gen(function*() {
        const store = yield* Store.Store
        // A second store on another table, on the same connections: its prepared statements
        // have other names.
        const second = yield* PgStore.fromClient({ table: tables[1], namespace: "a" })
        const sqlClient = yield* SqlClient.SqlClient
        yield* store.set("n", "0")
        yield* second.set("n", "10")
        const before = acquisitions
        yield* Effect.forEach(
          Array.from({ length: 20 }),
          () => Effect.zip(store.modify("n", increment), second.modify("n", increment)),
          { concurrency: 4, discard: true }
        )
        expect(acquisitions - before).toBe(40)
        expect(yield* store.get("n")).toEqual(Option.some("20"))
        expect(yield* second.get("n")).toEqual(Option.some("30"))
        // The store's writes are its own: a rolled-back application transaction does not undo them.
        yield* Effect.exit(sqlClient.withTransaction(Effect.zipRight(store.set("t", "kept"), Effect.fail("rollback"))))
        expect(yield* store.get("t")).toEqual(Option.some("kept"))
        expect(pool.totalCount).toBeLessThanOrEqual(2)
      }).pipe(Effect.provide(layer))
    }))

  pgTest("fromClient: an operation interrupted while waiting for the application's connection does not leak it", (url) =>
    Effect.gen(function*() {
      const table = yield* uniqueTable(url)
      const context = yield* pgClient(url, { maxConnections: 1 })
      const sqlClient = Context.get(context, PgClient.PgClient)
      const store = yield* Effect.provide(PgStore.fromClient({ table }), context)
      // The application holds the pool's only connection; the store's operation waits for it.
      const held = yield* Scope.make()
      yield* Scope.extend(sqlClient.reserve, held)
      const waiting = yield* Effect.fork(store.set("k", "interrupted"))
      yield* Effect.sleep("100 millis")
      yield* Fiber.interrupt(waiting)
      yield* Scope.close(held, Exit.void)
      expect(yield* store.set("k", "after").pipe(Effect.timeout("5 seconds"), Effect.exit)).toEqual(Exit.void)
      expect(yield* store.get("k")).toEqual(Option.some("after"))
    }))
})

describe("PgStore failures (a private PostgreSQL server per test)", () => {
  pgTest("connection refused: make fails with a SystemError carrying the SqlError and the driver's error", () =>
    Effect.gen(function*() {
      const port = yield* PrivatePostgres.freePort
      const error = failureOf(yield* Effect.exit(PgStore.make({ url: `postgres://postgres@127.0.0.1:${port}/postgres` })))
      expect(error?._tag).toBe("SystemError")
      expect(error?.message).toMatch(/ECONNREFUSED/)
      expect(driverError(error).code).toBe("ECONNREFUSED")
    }))

  pgTest("the server shuts down mid-operation: operations fail with a PlatformError, and the pool recovers when it is back", () =>
    Effect.gen(function*() {
      const server = yield* PrivatePostgres.make
      const store = yield* PgStore.make({ url: server.url, table: "shutdown" })
      yield* store.set("n", "0")
      yield* store.set("m", "0")
      // Both blocked behind another session's row locks when the server goes down. That session
      // is frozen, so the shutdown cannot end it (and release the locks) before it ends ours.
      const locker = yield* rawClient(server.url)
      const lockerPid = (yield* Effect.promise(() => locker.query("SELECT pg_backend_pid() AS pid"))).rows[0].pid
      yield* Effect.promise(() => locker.query(`BEGIN; SELECT * FROM shutdown FOR UPDATE`))
      const inFlight = yield* Effect.fork(Effect.exit(store.modify("n", increment)))
      const inFlightSet = yield* Effect.fork(Effect.exit(store.set("m", "x")))
      yield* Effect.sleep("200 millis")
      yield* server.signalBackend(lockerPid, "SIGSTOP")
      yield* Effect.addFinalizer(() => Effect.ignore(server.signalBackend(lockerPid, "SIGCONT")))
      const stopping = yield* Effect.fork(server.stop)
      for (const exit of [yield* Fiber.join(inFlight), yield* Fiber.join(inFlightSet)]) {
        const error = failureOf(exit)
        expect(error?._tag).toBe("SystemError")
        expect(systemReason(error)).toBe("UnexpectedEof")
        expect(driverError(error).code).toBe("57P01") // admin_shutdown
      }
      yield* server.signalBackend(lockerPid, "SIGCONT")
      yield* Fiber.join(stopping)
      // While it is down: a clear failure, not a hang.
      const down = failureOf(yield* Effect.exit(store.get("n")))
      expect(down?._tag).toBe("SystemError")
      expect(driverError(down).code).toBe("ECONNREFUSED")
      yield* server.start
      expect(yield* store.modify("n", increment)).toEqual(Option.some("1"))
      expect(yield* store.get("n")).toEqual(Option.some("1"))
    }), 60_000)

  pgTest("a frozen server with queryTimeout: operations fail with TimedOut instead of hanging, then work again", () =>
    Effect.gen(function*() {
      const server = yield* PrivatePostgres.make
      const store = yield* PgStore.make({ url: server.url, table: "frozen", queryTimeout: "300 millis" })
      yield* store.set("k", "v")
      yield* server.freeze
      for (const op of [store.modify("k", (v) => v + "!"), store.get("k")]) {
        expect(systemReason(failureOf(yield* Effect.exit(op)))).toBe("TimedOut")
      }
      yield* server.thaw
      // The timed-out update was already sent: the server may still run it once thawed (an
      // unknown outcome, never a partial or repeated one).
      const after = Option.getOrThrow(yield* store.modify("k", (v) => v + "?"))
      expect(["v?", "v!?"]).toContain(after)
      expect(yield* store.get("k")).toEqual(Option.some(after))
    }), 60_000)
})
