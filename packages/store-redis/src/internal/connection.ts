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

// A command written while the connection was ready, until its reply (or the connection's loss).
class InFlight<A> {
  constructor(
    private readonly inFlight: Set<InFlight<unknown>>,
    private readonly onValue: (value: A) => void,
    readonly onError: (error: unknown) => void
  ) {}
  readonly value = (value: A) => {
    if (this.inFlight.delete(this as InFlight<unknown>)) this.onValue(value)
  }
  readonly error = (error: unknown) => {
    if (this.inFlight.delete(this as InFlight<unknown>)) this.onError(error)
  }
}

/** @internal */
export class Connection {
  private readonly inFlight = new Set<InFlight<unknown>>()
  private readonly onClose = () => {
    if (this.inFlight.size === 0) return
    const lost = Array.from(this.inFlight)
    this.inFlight.clear()
    const error = new ConnectionLost()
    for (const command of lost) command.onError(error)
  }

  constructor(readonly client: Redis) {
    client.on("close", this.onClose)
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
    this.corkUntilNextTick()
    const entry = new InFlight(this.inFlight, onValue, onError)
    this.inFlight.add(entry as InFlight<unknown>)
    command().then(entry.value, entry.error)
  }

  /** {@link send} as a promise. */
  call<A>(command: () => Promise<A>): Promise<A> {
    return new Promise((resolve, reject) => this.send(command, resolve, reject))
  }

  /**
   * Commands written in one tick (the next commands of several calls whose replies arrived in
   * one socket read) leave in one `writev` instead of one system call each: ioredis writes every
   * command on its own, and at concurrency 8 those writes were 40% of the store's CPU time.
   * Unlike ioredis' `enableAutoPipelining`, this never holds a command back for a previous
   * batch's replies.
   */
  private corked: NodeJS.WritableStream | undefined = undefined
  private corkUntilNextTick() {
    const stream = this.client.stream
    if (this.corked !== undefined || stream === undefined) return
    this.corked = stream
    stream.cork()
    process.nextTick(() => {
      this.corked = undefined
      stream.uncork()
    })
  }

  /** Stops watching the client (which may belong to someone else and outlive us). */
  detach(): void {
    this.client.off("close", this.onClose)
  }
}

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
