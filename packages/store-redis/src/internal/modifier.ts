/**
 * Atomic `modifyOrInit` over Redis: read the value, decide with `f` on this side, write with a
 * Lua compare-and-set that stores the new value only if the key still holds the exact bytes
 * `f` saw (or is still absent).
 *
 * Calls on the same key from one store are combined: while a compare-and-set for a key is in
 * flight, later calls queue, and when it returns they run together as one batch: each `f` sees
 * the value the previous one decided, and one compare-and-set writes the batch's final value,
 * starting from the value just written (no second read). A batch commits all its decisions at
 * one instant or none, so it is as atomic as one call, and a hot key costs one round trip per
 * batch instead of a conflict storm between calls of the same process. Conflicts with other
 * clients are retried at once with the current value the script returns (no extra read), and
 * if the key keeps changing, after a jittered backoff and a fresh read, up to `maxAttempts`
 * attempts.
 *
 * Comparing exact bytes, rather than a version kept alongside, is exact by construction: a key
 * deleted and recreated with the same bytes is the same value for `f`, so no ABA problem, no
 * extra field, no format beyond the value's kind tag. Its cost is sending the expected value
 * back; the values this store exists for (singleton state envelopes) are small.
 *
 * @internal
 */
import type * as PlatformError from "@effect/platform/Error"
import * as Store from "@durable-singleton/core/Store"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { isUtf8 } from "node:buffer"
import { createHash } from "node:crypto"
import type { Connection } from "./connection.js"
import { toPlatformError } from "./connection.js"

/**
 * KEYS[1]: the key. ARGV[1]: the value the caller saw, '' for absent (the store's values are
 * never empty: they carry a kind tag; an empty value written by someone else is not absent).
 * ARGV[2]: the value to write, '' to only compare.
 * Returns 1 when the key held the expected value (and wrote), otherwise the current value, or
 * 0 when the key is absent.
 *
 * @internal
 */
export const script = `local current = redis.call('GET', KEYS[1])
if current == false then
  if ARGV[1] ~= '' then return 0 end
elseif ARGV[1] == '' or current ~= ARGV[1] then
  return current
end
if ARGV[2] ~= '' then redis.call('SET', KEYS[1], ARGV[2]) end
return 1
`

const sha = createHash("sha1").update(script).digest("hex")
const empty = Buffer.alloc(0)

/** Stored bytes: a value with its kind tag (`Store.encodeTagged`). `null` is an absent key. */
type Stored = Buffer | null

interface Call {
  readonly f: (current: Option.Option<Store.Value>) => Store.Decision<unknown>
  readonly resume: (effect: Effect.Effect<unknown, PlatformError.PlatformError>) => void
  result: unknown
  /** Set once the call has been answered (success, failure, or a defect thrown by `f`). */
  settled: boolean
}

/** @internal */
export interface Options {
  readonly connection: Connection
  readonly maxAttempts: number
  readonly isClosed: () => boolean
  readonly closedError: (method: string) => PlatformError.PlatformError
}

/**
 * A value in core's tagged format (`Store.encodeTagged`: one kind byte, `0` then UTF-8 text or
 * `1` then the bytes), written straight into a `Buffer` (ioredis sends only `Buffer`s as
 * binary). Small buffers come from Node's pool: `encodeTagged`'s `Uint8Array` would need its
 * `ArrayBuffer` materialised for a `Buffer` view, an off-heap allocation per write that showed
 * up as a third of the store's CPU time in garbage collection.
 *
 * @internal
 */
export const encode = (value: Store.Value): Buffer => {
  if (typeof value === "string") {
    const out = Buffer.allocUnsafe(1 + Buffer.byteLength(value))
    out[0] = 0
    out.write(value, 1, "utf8")
    return out
  }
  const out = Buffer.allocUnsafe(1 + value.length)
  out[0] = 1
  out.set(value, 1)
  return out
}

/**
 * A stored value (`Store.decodeTagged`'s format), or a `SystemError` (`InvalidData`) for bytes
 * this store did not write.
 *
 * @internal
 */
export const decode = (method: string, bytes: Buffer): Store.Value | PlatformError.PlatformError => {
  switch (bytes[0]) {
    case 0: {
      // Buffer#toString replaces invalid UTF-8 with U+FFFD; only then is the strict check needed.
      const text = bytes.toString("utf8", 1)
      return text.includes("\uFFFD") && !isUtf8(bytes.subarray(1)) ? invalidData(method) : text
    }
    case 1:
      return new Uint8Array(bytes.subarray(1)) // a copy, and a plain Uint8Array
    default:
      return invalidData(method)
  }
}

const invalidData = (method: string) =>
  Store.systemError(method, undefined, {
    reason: "InvalidData",
    description: "the key holds a value this store did not write (not a kind tag and UTF-8 text or bytes)"
  })

const isValue = (u: Store.Value | PlatformError.PlatformError): u is Store.Value =>
  typeof u === "string" || u instanceof Uint8Array

/** @internal */
export class Modifier {
  /**
   * The keys with calls running or waiting. An entry is deleted as soon as its key is idle:
   * kept for reuse, long-lived entries pointing at each call's short-lived arrays made the young
   * generation promote about a kilobyte per call to the old one.
   */
  private readonly active = new Map<string, KeyUpdates>()

  constructor(readonly options: Options) {}

  modifyOrInit<A>(
    redisKey: string,
    f: (current: Option.Option<Store.Value>) => Store.Decision<A>
  ): Effect.Effect<A, PlatformError.PlatformError> {
    return Effect.async<A, PlatformError.PlatformError>((resume) => {
      if (this.options.isClosed()) return resume(Effect.fail(this.options.closedError("modifyOrInit")))
      const call: Call = { f, resume: resume as Call["resume"], result: undefined, settled: false }
      const updates = this.active.get(redisKey)
      if (updates === undefined) {
        // The key is idle: this call starts a batch and its read is sent right now, so there is
        // nothing to cancel (an interrupted call in flight may or may not be applied). Not
        // returning a canceler matters: Effect's interruption hook around an async costs more
        // than everything else a call does.
        const started = new KeyUpdates(this.options, redisKey, () => this.active.delete(redisKey))
        this.active.set(redisKey, started)
        started.start(call)
        return
      }
      updates.pending.push(call)
      // A queued call that is interrupted before its batch starts is dropped, never applied.
      return Effect.sync(() => {
        const index = updates.pending.indexOf(call)
        if (index >= 0) updates.pending.splice(index, 1)
      })
    })
  }
}

/**
 * The calls on one key: a batch running (read, decide, compare-and-set, retry) and the calls
 * waiting for the next batch. Written as callbacks rather than async functions: this is every
 * update's path, and each promise layer costs allocations (and methods rather than arrow-function
 * fields, see `InFlight` in `connection.ts`).
 */
class KeyUpdates {
  pending: Array<Call>
  private batch: Array<Call> = []
  /**
   * The value the previous batch left in the key, if it knows it. It is handed over only to
   * calls that were already waiting when that batch's last reply arrived (concurrent calls of
   * this process); a call made after it (the same fiber's next update) reads afresh, as
   * another process would: otherwise a process updating a key in a loop would skip its read
   * each time and win every race against other processes.
   */
  private known: Stored | undefined = undefined
  private waitingAtReply = 0
  private current: Stored = null
  /**
   * `current` was read after every call of the batch started, so a batch that decides to
   * write nothing can answer from it directly. A value handed over from the previous batch is
   * not fresh: writing nothing on it is confirmed by a compare.
   */
  private fresh = false
  private next: Buffer | undefined = undefined
  private attempt = 0

  constructor(
    private readonly options: Options,
    private readonly redisKey: string,
    private readonly idle: () => void
  ) {
    this.pending = []
  }

  start(call: Call): void {
    this.pending.push(call)
    this.nextBatch()
  }

  private nextBatch(): void {
    const { closedError, isClosed } = this.options
    if (this.pending.length === 0) return this.idle()
    this.batch = this.pending
    this.pending = []
    this.waitingAtReply = 0
    this.attempt = 1
    if (isClosed()) return this.finish(failAll(this.batch, closedError("modifyOrInit")))
    if (this.known === undefined) return this.read()
    this.current = this.known
    this.fresh = false
    this.decideAndWrite()
  }

  private read() {
    const { connection } = this.options
    connection.send(
      () => connection.client.getBuffer(this.redisKey),
      (value) => this.onRead(value),
      (error) => this.onError(error)
    )
  }

  private onRead(value: Stored) {
    this.waitingAtReply = this.pending.length
    this.current = value
    this.fresh = true
    this.decideAndWrite()
  }

  private decideAndWrite() {
    const next = decide(this.batch, this.current)
    if (next instanceof Error) return this.finish(failAll(this.batch, next))
    if (next === undefined && this.fresh) return this.finish(succeedAll(this.batch, this.current))
    this.next = next
    this.compareAndSet("EVALSHA", sha)
  }

  private compareAndSet(command: "EVALSHA" | "EVAL", scriptOrSha: string) {
    const { connection } = this.options
    const args = [scriptOrSha, 1, this.redisKey, this.current ?? empty, this.next ?? empty] as const
    connection.send(
      () => connection.client.callBuffer(command, ...args),
      (reply) => this.onCompareAndSet(reply),
      (error) => this.onCompareAndSetError(error)
    )
  }

  private onCompareAndSet(reply: unknown) {
    this.waitingAtReply = this.pending.length
    if (reply === 1) return this.finish(succeedAll(this.batch, this.next ?? this.current))
    if (this.attempt >= this.options.maxAttempts) {
      return this.finish(failAll(this.batch, tooManyConflicts(this.attempt)))
    }
    this.fresh = true
    if (this.attempt++ < immediateRetries) {
      // Retry at once with the value the script returned: someone else's write just
      // landed, and waiting would only let the next one in first.
      this.current = reply === 0 ? null : reply as Buffer
      return this.decideAndWrite()
    }
    // The key keeps changing under us: wait a jittered while (breaking the lockstep with the
    // other writers), then read it afresh (a value from before the wait is stale).
    setTimeout(() => this.read(), backoff())
  }

  private onCompareAndSetError(error: unknown) {
    // The script cache is empty after a server restart or SCRIPT FLUSH: EVAL loads it again.
    if (error instanceof Error && error.message.startsWith("NOSCRIPT")) return this.compareAndSet("EVAL", script)
    this.onError(error)
  }

  private onError(error: unknown) {
    this.finish(failAll(this.batch, toPlatformError("modifyOrInit", error)))
  }

  /** Ends the batch with the value it left in the key (if known) and starts the next one. */
  private finish(left: Stored | undefined) {
    this.known = this.waitingAtReply > 0 ? left : undefined
    this.nextBatch()
  }
}

/**
 * Runs every unsettled call's `f` in order, each on the value the previous one decided.
 * Returns the bytes to write, `undefined` to write nothing, or an error for the whole batch.
 */
const decide = (batch: Array<Call>, current: Stored): Buffer | undefined | PlatformError.PlatformError => {
  let value: Option.Option<Store.Value> = Option.none()
  if (current !== null) {
    const decoded = decode("modifyOrInit", current)
    if (!isValue(decoded)) return decoded
    value = Option.some(decoded)
  }
  let changed = false
  for (const call of batch) {
    if (call.settled) continue
    let decision: Store.Decision<unknown>
    try {
      decision = call.f(value._tag === "Some" && typeof value.value !== "string" ? Option.some(value.value.slice()) : value)
    } catch (defect) {
      call.settled = true
      call.resume(Effect.die(defect))
      continue
    }
    call.result = decision[0]
    if (decision[1]._tag === "Some") {
      value = decision[1]
      changed = true
    }
  }
  return changed && value._tag === "Some" ? encode(value.value) : undefined
}

const succeedAll = (batch: Array<Call>, left: Stored): Stored => {
  for (const call of batch) {
    if (call.settled) continue
    call.settled = true
    call.resume(Effect.succeed(call.result))
  }
  return left
}

const failAll = (batch: Array<Call>, error: PlatformError.PlatformError): undefined => {
  for (const call of batch) {
    if (call.settled) continue
    call.settled = true
    call.resume(Effect.fail(error))
  }
  return undefined
}

const tooManyConflicts = (attempts: number) =>
  Store.systemError("modifyOrInit", undefined, {
    reason: "Busy",
    description: `the key kept changing under ${attempts} compare-and-set attempts (other clients writing it)`
  })

// Conflicts retried at once before pausing. Measured with 4 processes on one hot key, any wait
// before that only slowed every writer down (a conflict means another write just landed, and
// an immediate retry has the shortest window).
const immediateRetries = 8

// Then a pause of 1 to 2 ms (Node's timers have millisecond resolution), at random, before a
// fresh read. Measured in the same setting: pauses growing to 8 ms left the writer that kept
// losing waiting up to 290 ms for one update, against up to 60 ms with this.
const backoff = () => 1 + Math.random()
