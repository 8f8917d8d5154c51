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
 * clients are retried at once with the current value the script returns (no extra read), then,
 * if they go on, after a jittered backoff and a fresh read, up to `maxAttempts` attempts.
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
import { createHash } from "node:crypto"
import type { Connection } from "./connection.js"
import { toPlatformError } from "./connection.js"

/**
 * KEYS[1]: the key. ARGV[1]: the value the caller saw, '' for absent (stored values are never
 * empty: they carry a kind tag). ARGV[2]: the value to write, '' to only compare.
 * Returns 1 when the key held the expected value (and wrote), otherwise the current value, or
 * 0 when the key is absent.
 *
 * @internal
 */
export const script = `local current = redis.call('GET', KEYS[1])
if current == false then
  if ARGV[1] ~= '' then return 0 end
elseif current ~= ARGV[1] then
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

interface Queue {
  pending: Array<Call>
}

/** @internal */
export interface Options {
  readonly connection: Connection
  readonly maxAttempts: number
  readonly isClosed: () => boolean
  readonly closedError: (method: string) => PlatformError.PlatformError
}

/**
 * Bytes for a value, as a `Buffer` view (ioredis sends only `Buffer`s as binary).
 *
 * @internal
 */
export const encode = (value: Store.Value): Buffer => {
  const bytes = Store.encodeTagged(value)
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * A stored value, or a `SystemError` (`InvalidData`) for bytes this store did not write.
 *
 * @internal
 */
export const decode = (method: string, bytes: Buffer): Store.Value | PlatformError.PlatformError => {
  // A plain Uint8Array view, so that `decodeTagged` copies bytes out with Uint8Array#slice.
  const value = Store.decodeTagged(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  return value !== undefined ? value : invalidData(method)
}

const invalidData = (method: string) =>
  Store.systemError(method, undefined, {
    reason: "InvalidData",
    description: "the key holds a value this store did not write (no valid kind tag)"
  })

const isValue = (u: Store.Value | PlatformError.PlatformError): u is Store.Value =>
  typeof u === "string" || u instanceof Uint8Array

/** @internal */
export class Modifier {
  private readonly queues = new Map<string, Queue>()

  constructor(private readonly options: Options) {}

  modifyOrInit<A>(
    redisKey: string,
    f: (current: Option.Option<Store.Value>) => Store.Decision<A>
  ): Effect.Effect<A, PlatformError.PlatformError> {
    return Effect.async<A, PlatformError.PlatformError>((resume) => {
      if (this.options.isClosed()) return resume(Effect.fail(this.options.closedError("modifyOrInit")))
      const call: Call = { f, resume: resume as Call["resume"], result: undefined, settled: false }
      const queue = this.queues.get(redisKey)
      if (queue !== undefined) {
        queue.pending.push(call)
      } else {
        const fresh: Queue = { pending: [call] }
        this.queues.set(redisKey, fresh)
        void this.drain(redisKey, fresh)
      }
      // An interrupted call that has not joined a batch is dropped; once in a batch it is
      // applied with the batch (an interrupted write may or may not happen).
      return Effect.sync(() => {
        const pending = this.queues.get(redisKey)?.pending
        const index = pending?.indexOf(call) ?? -1
        if (index >= 0) pending!.splice(index, 1)
      })
    })
  }

  private async drain(redisKey: string, queue: Queue): Promise<void> {
    // The value the previous batch left in the key, if it knows it.
    let known: Stored | undefined = undefined
    while (queue.pending.length > 0) {
      const batch = queue.pending
      queue.pending = []
      known = await this.runBatch(redisKey, batch, known)
    }
    this.queues.delete(redisKey)
  }

  /** Runs one batch to its end; returns the value it left in the key, if known. */
  private async runBatch(redisKey: string, batch: Array<Call>, known: Stored | undefined): Promise<Stored | undefined> {
    const { connection, maxAttempts } = this.options
    const client = connection.client
    if (this.options.isClosed()) return failAll(batch, this.options.closedError("modifyOrInit"))
    try {
      // `fresh`: `current` was read after every call of the batch started, so a batch that
      // decides to write nothing can answer from it directly. A value handed over from the
      // previous batch is not fresh: writing nothing on it is confirmed by a compare.
      let current: Stored
      let fresh: boolean
      if (known === undefined) {
        current = await connection.send(() => client.getBuffer(redisKey))
        fresh = true
      } else {
        current = known
        fresh = false
      }
      for (let attempt = 1;; attempt++) {
        const next = decide(batch, current)
        if (next instanceof Error) return failAll(batch, next)
        if (next === undefined && fresh) return succeedAll(batch, current)
        const reply = await connection.send(() => compareAndSet(client, redisKey, current ?? empty, next ?? empty))
        if (reply === 1) return succeedAll(batch, next ?? current)
        if (attempt >= maxAttempts) return failAll(batch, tooManyConflicts(attempt))
        fresh = true
        if (attempt === 1) {
          // Retry at once with the value the script returned.
          current = reply === 0 ? null : reply
        } else {
          // Other clients keep writing the key: wait a jittered while, then read it afresh (a
          // value returned before the wait would be stale after it).
          await sleep(backoff(attempt))
          current = await connection.send(() => client.getBuffer(redisKey))
        }
      }
    } catch (error) {
      return failAll(batch, toPlatformError("modifyOrInit", error))
    }
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

const compareAndSet = async (
  client: Connection["client"],
  redisKey: string,
  expected: Buffer,
  next: Buffer
): Promise<1 | 0 | Buffer> => {
  try {
    return await client.callBuffer("EVALSHA", sha, 1, redisKey, expected, next) as 1 | 0 | Buffer
  } catch (error) {
    // The script cache is empty after a server restart or SCRIPT FLUSH: EVAL loads it again.
    if (error instanceof Error && error.message.startsWith("NOSCRIPT")) {
      return await client.callBuffer("EVAL", script, 1, redisKey, expected, next) as 1 | 0 | Buffer
    }
    throw error
  }
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

// Full jitter, doubling from 1 ms at the second conflict, capped at 32 ms.
const backoff = (attempt: number) => Math.random() * Math.min(32, 2 ** (attempt - 2))

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
