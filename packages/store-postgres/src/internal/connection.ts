/**
 * Raw `pg` connections for store operations, checked out once per operation from either a pool
 * the store owns or the application's `@effect/sql-pg` client, and the runner that turns one
 * operation into one effect.
 *
 * Why raw `pg` rather than the `SqlClient` statement API: the statements here are a handful of
 * fixed texts, executed as named prepared statements (parsed and planned once per connection)
 * on one connection for the whole operation, with rows as arrays and our own type parsers. The
 * `SqlClient` API checks a connection out per statement, sends unnamed statements (re-parsed on
 * every call), opens a tracing span per statement, and turns a failed COMMIT into a defect.
 *
 * Why one `Effect.async` per operation around plain callbacks and promises, and a class rather
 * than closures for its state: at a tenth of a millisecond per round trip every microsecond per
 * operation shows in throughput. Composing a dozen effects per operation (queue, checkout, each
 * statement, release) measured 12–15 µs of CPU per operation above raw `pg`'s own work; this
 * shape about 9 µs, most of it the Effect runtime around the call and core's checks.
 *
 * @internal
 */
import type * as PlatformError from "@effect/platform/Error"
import type * as PgClient from "@effect/sql-pg/PgClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Runtime from "effect/Runtime"
import type * as Pg from "pg"
import { DatabaseError } from "pg"
import { StoreFailure } from "./errors.js"
import type { Statement } from "./sql.js"

/** A checked-out connection, for one operation. `release` must be called exactly once. */
export class Lease {
  constructor(
    private readonly client: Pg.ClientBase,
    private readonly queryTimeout: number | undefined,
    /** Gives the connection back, or closes it when `discard`. */
    readonly release: (discard: boolean) => void
  ) {}

  /** Runs a statement; named statements are prepared once per connection. */
  execute(statement: Statement | string, values: ReadonlyArray<unknown> = []): Promise<Result> {
    return new Promise((resolve, reject) => {
      const config: Pg.QueryArrayConfig & { query_timeout?: number } = typeof statement === "string"
        ? { text: statement, values: values as Array<unknown>, rowMode: "array", types: typeParsers }
        : {
          name: statement.name,
          text: statement.text,
          values: values as Array<unknown>,
          rowMode: "array",
          types: typeParsers
        }
      if (this.queryTimeout !== undefined) config.query_timeout = this.queryTimeout
      this.client.query(config, (error: Error | undefined, result: Result) => {
        if (error) reject(error)
        else resolve(result)
      })
    })
  }

  /** Whether the connection is outside any transaction (as of its last statement). */
  idle(): boolean {
    return this.client.getTransactionStatus() === "I"
  }
}

/** Where connections come from. */
export interface Connector {
  readonly checkout: (callback: (error: unknown, lease?: Lease) => void) => void
}

export type Rows = ReadonlyArray<ReadonlyArray<any>>

export interface Result {
  readonly rows: Rows
}

// Results as arrays of text, with our own parsers: immune to type parsers the application may
// have installed on a shared pool (for bigint, bytea, …).
const typeParsers = {
  getTypeParser: (oid: number) => oid === byteaOid ? parseBytea : identity
} as unknown as Pg.CustomTypesConfig

const byteaOid = 17
const identity = (text: string) => text

/**
 * A bytea column in text form: `\x` + hex (the default `bytea_output`), or the legacy escape
 * format. Returns a plain `Uint8Array` view.
 */
export const parseBytea = (text: string): Uint8Array => {
  if (text.startsWith("\\x")) {
    const buffer = Buffer.from(text.slice(2), "hex")
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
  }
  const out: Array<number> = []
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c !== 92) {
      out.push(c)
    } else if (text.charCodeAt(i + 1) === 92) {
      out.push(92)
      i++
    } else {
      out.push(parseInt(text.slice(i + 1, i + 4), 8))
      i += 3
    }
  }
  return Uint8Array.from(out)
}

/**
 * Runs `body` in a transaction. On failure the transaction is rolled back (if even that fails,
 * the connection is left in its transaction and closed on release).
 */
export const transaction = async <A>(lease: Lease, begin: string, body: () => Promise<A>): Promise<A> => {
  await lease.execute(begin)
  let result: A
  try {
    result = await body()
  } catch (error) {
    await lease.execute("ROLLBACK").catch(ignore)
    throw error
  }
  await lease.execute("COMMIT")
  return result
}

/** A failure of the caller's own code (e.g. a throwing `f`), to be reported as a defect. */
export class Defect {
  constructor(readonly cause: unknown) {}
}

/**
 * Runs operations on the same key one at a time, in arrival order. A key has an entry only
 * while an operation on it runs: the entry holds those waiting.
 */
export class KeyQueue {
  private readonly keys = new Map<string, Array<{ start(): void }>>()

  /** Starts `operation` when it is its turn on `key` (at once if the key is free). */
  enter(key: string, operation: { start(): void }): void {
    const waiting = this.keys.get(key)
    if (waiting === undefined) {
      this.keys.set(key, [])
      operation.start()
    } else {
      waiting.push(operation)
    }
  }

  /** Withdraws an operation that has not started yet. */
  withdraw(key: string, operation: { start(): void }): void {
    const waiting = this.keys.get(key)
    const index = waiting === undefined ? -1 : waiting.indexOf(operation)
    if (index >= 0) waiting!.splice(index, 1)
  }

  /** Ends the current turn on `key`. */
  leave(key: string): void {
    const waiting = this.keys.get(key)
    const next = waiting?.shift()
    if (next !== undefined) next.start()
    else this.keys.delete(key)
  }
}

const Waiting = 0
const CheckingOut = 1
const Running = 2
const Done = 3

/**
 * One store operation: wait for the key's turn (if any), check a connection out, run the
 * operation's statements on it, give it back. A class rather than closures: this runs for every
 * operation.
 */
class Operation<A> {
  private state: typeof Waiting | typeof CheckingOut | typeof Running | typeof Done = Waiting
  private lease: Lease | undefined = undefined
  private resume!: (effect: Effect.Effect<A, PlatformError.PlatformError>) => void

  constructor(
    private readonly connector: Connector,
    private readonly operation: (lease: Lease) => Promise<A>,
    private readonly toError: (cause: unknown) => PlatformError.PlatformError,
    private readonly queue: KeyQueue | undefined,
    private readonly key: string
  ) {}

  register(resume: (effect: Effect.Effect<A, PlatformError.PlatformError>) => void): Effect.Effect<void> {
    this.resume = resume
    if (this.queue === undefined) this.start()
    else this.queue.enter(this.key, this)
    return Effect.sync(() => this.interrupt())
  }

  start(): void {
    this.state = CheckingOut
    this.connector.checkout((error, lease) => this.checkedOut(error, lease))
  }

  private checkedOut(error: unknown, lease: Lease | undefined): void {
    if (this.state === Done) {
      // interrupted while checking out: nothing ran on it
      lease?.release(false)
    } else if (lease === undefined) {
      this.state = Done
      this.leave()
      this.resume(Effect.fail(this.toError(error)))
    } else {
      this.lease = lease
      this.state = Running
      this.operation(lease).then(
        (a) => this.finish(Effect.succeed(a), false),
        (cause) =>
          this.finish(
            cause instanceof Defect ? Effect.die(cause.cause) : Effect.fail(this.toError(cause)),
            isConnectionFailure(cause)
          )
      )
    }
  }

  private finish(exit: Effect.Effect<A, PlatformError.PlatformError>, connectionFailed: boolean): void {
    if (this.state === Done) return
    this.state = Done
    this.lease!.release(connectionFailed || !this.lease!.idle())
    this.leave()
    this.resume(exit)
  }

  // On interruption a connection in use is closed, not reused: it may still be running the
  // operation's statement.
  private interrupt(): void {
    switch (this.state) {
      case Waiting:
        this.queue?.withdraw(this.key, this)
        break
      case CheckingOut:
        this.leave()
        break
      case Running:
        this.lease!.release(true)
        this.leave()
        break
    }
    this.state = Done
  }

  private leave(): void {
    this.queue?.leave(this.key)
  }
}

/**
 * One store operation as one effect. Failures become `PlatformError`s via `toError`; a
 * {@link Defect} becomes a defect. With a `queue`, operations on the same `key` run one at a
 * time.
 */
export const run = <A>(
  connector: Connector,
  operation: (lease: Lease) => Promise<A>,
  toError: (cause: unknown) => PlatformError.PlatformError,
  queue?: KeyQueue,
  key = ""
): Effect.Effect<A, PlatformError.PlatformError> =>
  Effect.async((resume) =>
    new Operation(connector, operation, toError, queue, key).register(resume as (effect: unknown) => void)
  )

const ignore = () => {}

/**
 * Whether a failure may have left the connection unusable (dropped, or still busy with a
 * statement that timed out on our side), as opposed to an error the server reported or one of
 * ours: such a connection is closed rather than reused.
 */
const isConnectionFailure = (cause: unknown): boolean =>
  !(cause instanceof DatabaseError || cause instanceof StoreFailure || cause instanceof Defect)

/** Connections from a pool the store owns (and ends). */
export const owned = (pool: Pg.Pool, queryTimeout: number | undefined): Connector => {
  // A connection that dies while checked out emits "error"; without a listener that would
  // crash the process. The failure reaches the operation through its query instead.
  pool.on("connect", (client) => client.on("error", ignore))
  pool.on("error", ignore)
  return {
    checkout: (callback) =>
      pool.connect((error, client, release) => {
        if (error || client === undefined) callback(error ?? new Error("the pg pool returned no client"))
        else callback(undefined, new Lease(client, queryTimeout, (discard) => release(discard || undefined)))
      })
  }
}

/**
 * Connections reserved from the application's `PgClient`, sharing its pool; `reserve` runs on
 * the application's runtime. A reserved `@effect/sql-pg` connection carries the raw `pg` client
 * as `pg` (not part of its type).
 */
export const shared = (
  client: PgClient.PgClient,
  runtime: Runtime.Runtime<never>,
  queryTimeout: number | undefined
): Connector => {
  const runCallback = Runtime.runCallback(runtime)
  return {
    // One fiber per checkout holds the reservation until the lease is released. It is never
    // interrupted: `reserve` has no canceller, so an interrupted reservation would leak its
    // connection. An operation interrupted meanwhile releases the lease as soon as it arrives.
    checkout: (callback) => {
      let leased = false
      runCallback(
        Effect.scoped(Effect.flatMap(client.reserve, (connection) =>
          Effect.async<void, Error>((resume) => {
            const pg = (connection as { readonly pg?: unknown }).pg
            if (!isPgClient(pg)) {
              return resume(Effect.fail(new Error("the reserved @effect/sql-pg connection does not expose its pg client")))
            }
            leased = true
            callback(
              undefined,
              new Lease(pg, queryTimeout, (discard) => {
                // An ended client is dropped by the pool when it is released.
                if (discard) pg.end().catch(ignore)
                resume(Effect.void)
              })
            )
          }))),
        {
          onExit: (exit) => {
            if (!leased && Exit.isFailure(exit)) callback(Cause.squash(exit.cause))
          }
        }
      )
    }
  }
}

const isPgClient = (u: unknown): u is Pg.Client =>
  typeof u === "object" && u !== null && typeof (u as Pg.Client).query === "function" &&
  typeof (u as Pg.Client).getTransactionStatus === "function" && typeof (u as Pg.Client).end === "function"
