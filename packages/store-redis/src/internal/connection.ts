/**
 * ioredis clients as the stores use them: connecting the ones they own, mapping errors, and
 * sending commands so that a command whose connection drops while it is in flight fails at
 * once with {@link ConnectionLost} instead of being resent or left pending.
 *
 * Why: after a reconnect ioredis resends in-flight commands (`autoResendUnfulfilledCommands`,
 * on by default), so a write whose reply was lost can run twice (a `SET` overwriting a later
 * write, a compare-and-set seen as a conflict and retried: one update applied twice); with
 * resending turned off, ioredis 5.11 drops those commands without ever settling their
 * promises. Either way the outcome is unknown, and the only correct report is a failure that
 * says so (a single late execution of a failed command is allowed; two executions are not).
 *
 * @internal
 */
import type * as PlatformError from "@effect/platform/Error"
import * as Store from "@durable-singleton/core/Store"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { Redis, type RedisOptions } from "ioredis"

/**
 * The connection closed while the command was in flight: it may or may not have been applied.
 *
 * @internal
 */
export class ConnectionLost extends Error {
  override readonly name = "ConnectionLost"
  constructor() {
    super("the connection to Redis closed while the command was in flight; it may or may not have been applied")
  }
}

// A command written while the connection was ready, until its reply or the connection's loss.
// The commands in flight form a doubly linked list: a Set's add/delete churn reallocates its
// table and showed up in the garbage collector's time. Prototype methods and anonymous arrows
// only: under tsx (esbuild's keepNames) every function stored in a field gets its name set when
// it is created, which had tripled this path's allocations.
class InFlight {
  prev: InFlight | undefined = undefined
  next: InFlight | undefined = undefined
  private done = false
  constructor(
    private readonly list: Connection,
    private readonly onValue: (value: unknown) => void,
    private readonly onError: (error: unknown) => void
  ) {}
  value(value: unknown) {
    if (this.settle()) this.onValue(value)
  }
  error(error: unknown) {
    if (this.settle()) this.onError(error)
  }
  private settle(): boolean {
    if (this.done) return false
    this.done = true
    this.list.unlink(this)
    return true
  }
}

/** @internal */
export class Connection {
  private first: InFlight | undefined = undefined
  private readonly onClose = () => {
    const error = new ConnectionLost()
    while (this.first !== undefined) this.first.error(error)
  }

  constructor(readonly client: Redis) {
    client.on("close", this.onClose)
  }

  /** @internal */
  unlink(entry: InFlight): void {
    if (entry.prev !== undefined) entry.prev.next = entry.next
    else this.first = entry.next
    if (entry.next !== undefined) entry.next.prev = entry.prev
    entry.prev = entry.next = undefined
  }

  /**
   * Sends a command and calls `onValue` with its reply or `onError` with its failure, once.
   * Only commands written while the connection is ready can be lost in flight; commands queued
   * while it is down wait in ioredis' offline queue (sent on reconnect, or failed after
   * `maxRetriesPerRequest` reconnection attempts). Callbacks rather than a promise: this is
   * every operation's path, and each promise layer costs allocations.
   */
  send<A>(command: () => Promise<A>, onValue: (value: A) => void, onError: (error: unknown) => void): void {
    if (this.client.status !== "ready") {
      command().then(onValue, onError)
      return
    }
    const entry = new InFlight(this, onValue as (value: unknown) => void, onError)
    entry.next = this.first
    if (this.first !== undefined) this.first.prev = entry
    this.first = entry
    command().then((value) => entry.value(value), (error) => entry.error(error))
  }

  /** {@link send} as a promise. */
  call<A>(command: () => Promise<A>): Promise<A> {
    return new Promise((resolve, reject) => this.send(command, resolve, reject))
  }

  /** Stops watching the client (which may belong to someone else and outlive us). */
  detach(): void {
    this.client.off("close", this.onClose)
  }
}

/**
 * A client in use by a store for the length of a scope: the connection it sends on, and
 * whether the scope has closed.
 *
 * @internal
 */
export interface Attachment {
  closed: boolean
  readonly connection: Connection
}

/**
 * Attaches a store to `client` until the scope closes; then the store is `closed` and stops
 * watching the client, which is left as it was (it may belong to someone else).
 *
 * @internal
 */
export const attach = (client: Redis): Effect.Effect<Attachment, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync((): Attachment => ({ closed: false, connection: new Connection(client) })),
    (attachment) =>
      Effect.sync(() => {
        attachment.closed = true
        attachment.connection.detach()
      })
  )

/**
 * An ioredis failure as a `PlatformError` (`SystemError`) with the ioredis error as `cause`.
 *
 * @internal
 */
export const toPlatformError = (method: string, cause: unknown): PlatformError.PlatformError =>
  Store.systemError(method, cause, {
    reason: reasonOf(cause),
    description: `Redis ${method} failed: ${cause instanceof Error ? cause.message : String(cause)}`
  })

const reasonOf = (cause: unknown): PlatformError.SystemErrorReason => {
  if (!(cause instanceof Error)) return "Unknown"
  if (cause instanceof ConnectionLost) return "UnexpectedEof"
  const message = cause.message
  if (message === "Connection is closed.") return "BadResource"
  if (message === "Command timed out") return "TimedOut"
  if (/^(NOAUTH|WRONGPASS|NOPERM)\b/.test(message)) return "PermissionDenied"
  if (/^(BUSY|LOADING|TRYAGAIN|MASTERDOWN)\b/.test(message)) return "Busy"
  return "Unknown"
}

/**
 * A client of our own, connected eagerly (a wrong URL or a server that is down fails here), and
 * quit when the scope closes.
 *
 * @internal
 */
export const acquire = (options: {
  readonly url?: string | Redacted.Redacted<string> | undefined
  readonly redis?: RedisOptions | undefined
}): Effect.Effect<Redis, PlatformError.PlatformError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<Redis, PlatformError.PlatformError>((resume) => {
      const redisOptions: RedisOptions = {
        autoResendUnfulfilledCommands: false,
        ...options.redis,
        lazyConnect: true
      }
      const url = options.url === undefined
        ? undefined
        : Redacted.isRedacted(options.url)
        ? Redacted.value(options.url)
        : options.url
      const client = url === undefined ? new Redis(redisOptions) : new Redis(url, redisOptions)
      // ioredis reports connection errors as events too; the store reports them through the
      // failed commands, so the events only keep the last cause for a failed connect.
      let lastError: unknown = undefined
      client.on("error", (error) => {
        lastError = error
      })
      client.connect().then(
        () => resume(Effect.succeed(client)),
        (error) => {
          client.disconnect()
          resume(Effect.fail(toPlatformError("connect", lastError ?? error)))
        }
      )
      return Effect.sync(() => client.disconnect())
    }),
    (client) => Effect.promise(() => quit(client))
  )

// Quits gracefully (in-flight replies arrive first) if connected, within a second; otherwise
// drops the connection and stops reconnecting.
const quit = (client: Redis): Promise<void> =>
  new Promise((resolve) => {
    if (client.status !== "ready") {
      client.disconnect()
      return resolve()
    }
    const timer = setTimeout(() => {
      client.disconnect()
      resolve()
    }, 1000)
    client.quit().then(
      () => {
        clearTimeout(timer)
        resolve()
      },
      () => {
        clearTimeout(timer)
        client.disconnect()
        resolve()
      }
    )
  })
