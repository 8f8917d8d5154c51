/**
 * The variant on an existing `@effect/sql-sqlite-node` `SqliteClient`, for applications that want
 * one connection for everything.
 *
 * The client's own `withTransaction` cannot be used: it issues a deferred `BEGIN` (two connections
 * upgrading their read locks fail with `SQLITE_BUSY_SNAPSHOT`) and turns a failed `COMMIT` into a
 * defect. And a plain `` sql`BEGIN IMMEDIATE` `` would let other fibers' statements into the
 * transaction (the client's semaphore is released between statements). So each operation reserves
 * the connection (`sql.reserve` holds the client's only permit until the operation's scope
 * closes), provides it as `SqlClient.TransactionConnection` so that its statements run on it, and
 * writes inside `BEGIN IMMEDIATE … COMMIT`, retried while busy.
 *
 * Inside the caller's own `sql.withTransaction` on the same client, operations join that
 * transaction instead (reserving again would wait forever for the permit it holds): they commit or
 * roll back with it, and a busy failure there is not retried (only the whole transaction can be).
 *
 * @internal
 */
import type * as Store from "@durable-singleton/core/Store"
import type * as PlatformError from "@effect/platform/Error"
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { closedError, toPlatformError } from "./errors.js"
import { type BusyPolicy, retryWhileBusy } from "./retry.js"
import * as Schema from "./schema.js"

/** @internal */
export interface Config {
  readonly table: string
  readonly namespace: string
  /** Sets the connection's `busy_timeout` when defined; otherwise it is left as the client set it. */
  readonly busyTimeoutMs: number | undefined
  readonly busy: BusyPolicy
}

/** @internal */
export const make = (
  config: Config
): Effect.Effect<Store.Backend, PlatformError.PlatformError, SqliteClient.SqliteClient | Scope.Scope> =>
  Effect.gen(function*() {
    const { busy, namespace } = config
    const makeMethod = "SqliteStore.makeSqlClient"
    const sql = yield* SqliteClient.SqliteClient
    // The client's single connection: an ambient transaction on it is one this store can join.
    const connection = yield* Effect.mapError(Effect.scoped(sql.reserve), (cause) => toPlatformError(makeMethod, cause))
    const lifetime = yield* Effect.acquireRelease(
      Effect.sync(() => ({ closed: false })),
      (lifetime) =>
        Effect.sync(() => {
          lifetime.closed = true
        })
    )

    // Rows keep SQLite's column names whatever `transformResultNames` the client was given.
    const query = <Row extends object>(text: string, ...params: ReadonlyArray<unknown>) =>
      sql.unsafe<Row>(text, params).withoutTransform

    const rollback = Effect.ignore(query("ROLLBACK"))
    const immediate = <A>(body: Effect.Effect<A, unknown>): Effect.Effect<A, unknown> =>
      Effect.uninterruptible(
        Effect.zipRight(query("BEGIN IMMEDIATE"), Effect.exit(body)).pipe(
          Effect.flatMap((exit) =>
            Exit.isSuccess(exit)
              // A COMMIT that fails (busy) leaves the transaction open: roll it back, so that a
              // retry starts clean and nothing is half-written.
              ? Effect.as(Effect.tapError(query("COMMIT"), () => rollback), exit.value)
              : Effect.zipRight(rollback, exit)
          )
        )
      )

    const run = <A>(
      method: string,
      body: Effect.Effect<A, unknown>,
      options: { readonly transaction: boolean }
    ): Effect.Effect<A, PlatformError.PlatformError> =>
      Effect.contextWithEffect((context: Context.Context<never>) => {
        if (lifetime.closed) {
          return Effect.fail(closedError(method))
        }
        const ambient = Context.getOption(context, SqlClient.TransactionConnection)
        if (Option.isSome(ambient) && ambient.value[0] === connection) {
          return Effect.mapError(body, (cause) => toPlatformError(method, cause))
        }
        const reserved = Effect.scoped(Effect.flatMap(sql.reserve, (conn) =>
          Effect.provideService(
            options.transaction ? immediate(body) : body,
            SqlClient.TransactionConnection,
            [conn, 0]
          )))
        return retryWhileBusy(busy, Effect.mapError(reserved, (cause) => toPlatformError(method, cause)))
      })

    const text = Schema.statements(config.table)
    const decode = (rows: ReadonlyArray<{ readonly value: unknown }>) =>
      Effect.try({
        try: () => rows.length === 0 ? Option.none() : Option.some(Schema.fromColumn(rows[0]!.value)),
        catch: (cause) => cause
      })
    const select = (key: string) => Effect.flatMap(query<{ readonly value: unknown }>(text.select, namespace, key), decode)

    if (config.busyTimeoutMs !== undefined) {
      yield* run(makeMethod, query(`PRAGMA busy_timeout = ${config.busyTimeoutMs}`), { transaction: false })
    }
    yield* run(makeMethod, query(text.createTable), { transaction: true })

    return {
      namespace,
      get: (key) => run("get", select(key), { transaction: false }),
      set: (key, value) =>
        run("set", Effect.suspend(() => Effect.asVoid(query(text.upsert, namespace, key, value, Date.now()))), {
          transaction: false
        }),
      remove: (key) => run("remove", Effect.asVoid(query(text.remove, namespace, key)), { transaction: false }),
      has: (key) =>
        run("has", Effect.map(query(text.exists, namespace, key), (rows) => rows.length > 0), { transaction: false }),
      size: run(
        "size",
        // count(*) is a bigint under the client's SafeIntegers setting.
        Effect.map(query<{ readonly n: number | bigint }>(text.count, namespace), (rows) => Number(rows[0]!.n)),
        { transaction: false }
      ),
      clear: run("clear", Effect.asVoid(query(text.clear, namespace)), { transaction: false }),
      modifyOrInit: <A>(key: string, f: (current: Option.Option<Store.Value>) => Store.Decision<A>) =>
        run(
          "modifyOrInit",
          Effect.flatMap(select(key), (current) => {
            const [result, next] = f(current)
            if (next._tag === "None") return Effect.succeed(result)
            const write = current._tag === "None"
              ? query(text.insert, namespace, key, next.value, Date.now())
              : query(text.update, next.value, Date.now(), namespace, key)
            return Effect.as(write, result)
          }),
          { transaction: true }
        )
    } satisfies Store.Backend
  })
