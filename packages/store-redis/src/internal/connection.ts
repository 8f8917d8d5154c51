/**
 * ioredis clients as the stores use them: connecting the ones they own, mapping errors, and
 * sending commands so that a command whose connection drops before its reply fails at once with
 * {@link ConnectionLost} instead of being resent or left pending.
 *
 * Why: after a reconnect ioredis resends in-flight commands (`autoResendUnfulfilledCommands`,
 * on by default), so a write whose reply was lost can run twice (a `SET` overwriting a later
 * write, a compare-and-set seen as a conflict and retried: one update applied twice); with
 * resending turned off, ioredis 5.11 drops those commands without ever settling their
 * promises. Either way the outcome is unknown, and the only correct report is a failure that
 * says so (a single late execution of a failed command is allowed; two executions are not).
 *
 * Every command is tracked, including one issued while the client is down on a client that
 * queues (`enableOfflineQueue`, ioredis' default, kept by `fromClient` clients; the store's own
 * connections fail such a command at once): ioredis holds it in its offline queue and writes it
 * when the next connection becomes ready, and that connection can drop before the reply just
 * the same (measured: without tracking it, the command never
 * settled, and every later update of its key queued behind it forever).
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

/**
 * Commands awaiting their replies, as a doubly linked list: a Set's add/delete churn
 * reallocates its table and showed up in the garbage collector's time.
 */
class Entries {
  first: Entry | undefined = undefined

  push(entry: Entry): void {
    entry.list = this
    entry.next = this.first
    if (this.first !== undefined) this.first.prev = entry
    this.first = entry
  }

  unlink(entry: Entry): void {
    if (entry.prev !== undefined) entry.prev.next = entry.next
    else this.first = entry.next
    if (entry.next !== undefined) entry.next.prev = entry.prev
    entry.prev = entry.next = entry.list = undefined
  }

  /** Moves every entry to `other`. */
  moveTo(other: Entries): void {
    while (this.first !== undefined) {
      const entry = this.first
      this.unlink(entry)
      other.push(entry)
    }
  }
}

// One command, until its reply, its failure or the loss of the connection it was written on.
// Prototype methods and anonymous arrows only: under tsx (esbuild's keepNames) every function
// stored in a field gets its name set when it is created, which had tripled this path's
// allocations.
class Entry {
  prev: Entry | undefined = undefined
  next: Entry | undefined = undefined
  list: Entries | undefined = undefined
  private done = false
  constructor(
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
    this.list?.unlink(this)
    return true
  }
}

/** @internal */
export class Connection {
  /** Written on the current connection (or about to be): lost if it closes. */
  private readonly inFlight = new Entries()
  /** Held in ioredis' offline queue: written when the next connection becomes ready. */
  private readonly queued = new Entries()
  private readonly onReady = () => this.queued.moveTo(this.inFlight)
  private readonly onClose = () => {
    const error = new ConnectionLost()
    while (this.inFlight.first !== undefined) this.inFlight.first.error(error)
  }

  constructor(readonly client: Redis) {
    // ioredis emits both a tick after the status changes; by then a "ready" connection has
    // written the offline queue, and a closed one holds its unanswered commands (dropped, or
    // resent with `autoResendUnfulfilledCommands`).
    client.on("ready", this.onReady)
    client.on("close", this.onClose)
  }

  /**
   * Sends a command and calls `onValue` with its reply or `onError` with its failure, once.
   * A command the client cannot write now fails at once (the store's own connections), or, on a
   * client that queues, waits in ioredis' offline queue: it is written on reconnect, or fails
   * after `maxRetriesPerRequest` reconnection attempts. Once written, it fails with {@link ConnectionLost} if its connection closes before the reply.
   * Callbacks rather than a promise: this is every operation's path, and each promise layer
   * costs allocations.
   */
  send<A>(command: () => Promise<A>, onValue: (value: A) => void, onError: (error: unknown) => void): void {
    const entry = new Entry(onValue as (value: unknown) => void, onError)
    // The condition under which ioredis writes a command at once rather than queueing it.
    const stream = this.client.stream as { readonly writable?: boolean } | undefined
    if (this.client.status === "ready" && stream?.writable === true) this.inFlight.push(entry)
    else this.queued.push(entry)
    command().then((value) => entry.value(value), (error) => entry.error(error))
  }

  /** {@link send} as a promise. */
  call<A>(command: () => Promise<A>): Promise<A> {
    return new Promise((resolve, reject) => this.send(command, resolve, reject))
  }

  /** Stops watching the client (which may belong to someone else and outlive us). */
  detach(): void {
    this.client.off("ready", this.onReady)
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
 * Fails for a key prefix that is not a well-formed string.
 *
 * @internal
 */
export const checkPrefix = (method: string, prefix: unknown): PlatformError.PlatformError | undefined =>
  typeof prefix !== "string"
    ? Store.badArgument(method, `prefix must be a string, got ${typeof prefix}`)
    : prefix.isWellFormed()
    ? undefined
    : Store.badArgument(method, "prefix is not well-formed UTF-16 (lone surrogate)")

const messageOf = (cause: unknown) => cause instanceof Error ? cause.message : String(cause)

/**
 * Fails for a client a store cannot use safely: one that resends unanswered commands after a
 * reconnect. The store reports such a command failed (outcome unknown) as soon as its
 * connection drops; resent afterwards, a write would apply after the caller was told it failed,
 * possibly after later writes (a `SET` undoing one), and a compare-and-set could apply twice.
 *
 * @internal
 */
export const checkClient = (method: string, client: Redis): PlatformError.PlatformError | undefined =>
  client.options.autoResendUnfulfilledCommands === false ? undefined : Store.badArgument(
    method,
    "the ioredis client has autoResendUnfulfilledCommands on (ioredis' default): after a reconnect it would " +
      "send again a write whose reply was lost, which the store has already reported failed, so the write " +
      "could apply twice or overwrite later writes. Create the client with " +
      "{ autoResendUnfulfilledCommands: false }, or let the store open its own connection (make / layer)."
  )

/**
 * An ioredis failure as a `PlatformError` (`SystemError`) with the ioredis error as `cause`.
 *
 * @internal
 */
export const toPlatformError = (method: string, cause: unknown): PlatformError.PlatformError =>
  Store.systemError(method, cause, {
    reason: reasonOf(cause),
    description: `Redis ${method} failed: ${messageOf(cause)}`
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
 * ioredis queues the commands issued while it is disconnected and fails them only after
 * `maxRetriesPerRequest` reconnection attempts: with its defaults (20 attempts, backoff growing to
 * 2 s) an operation waited 10–40 s while the server was down. A singleton is better served by a
 * prompt failure, certain to have sent nothing, that core retries with its own backoff: on its own
 * connections the store does not queue (`enableOfflineQueue: false`) and reconnects at most 0.5 s
 * apart. Options given by the user win.
 */
const outageDefaults: RedisOptions = {
  enableOfflineQueue: false,
  retryStrategy: (attempts) => Math.min(attempts * 50, 500)
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
        ...outageDefaults,
        ...options.redis,
        autoResendUnfulfilledCommands: false,
        lazyConnect: true
      }
      const url = options.url === undefined
        ? undefined
        : Redacted.isRedacted(options.url)
        ? Redacted.value(options.url)
        : options.url
      let client: Redis
      try {
        if (url === "") throw new TypeError("the URL is empty")
        client = url === undefined ? new Redis(redisOptions) : new Redis(url, redisOptions)
      } catch (cause) {
        // ioredis parses the URL in its constructor (a TypeError for a malformed one); the
        // URL may hold a password, so it is not repeated in the message.
        return resume(Effect.fail(Store.badArgument("make", `url is not a valid Redis URL: ${messageOf(cause)}`)))
      }
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
