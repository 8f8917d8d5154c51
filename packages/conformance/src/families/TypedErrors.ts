/**
 * Typed errors family: a closed client's operations fail with a `PlatformError` (core's
 * `FencedState` with a retryable `SingletonError`) in the error channel, never a defect, a
 * success or a hang, and change nothing; bad keys and values fail with `BadArgument` and change
 * nothing; an interrupted write leaves the old value or the new one, never anything else, and
 * leaves no lock behind; an `f` that throws is a defect of its own call only.
 *
 * @since 0.1.0
 */
import * as FencedState from "@durable-singleton/core/FencedState"
import * as SingletonError from "@durable-singleton/core/SingletonError"
import * as Store from "@durable-singleton/core/Store"
import * as PlatformError from "@effect/platform/Error"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as fc from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Internal from "../internal/check.js"
import * as Hostile from "../internal/hostile.js"

const { attempt, expect, show } = Internal

/**
 * Runs `effect`, which must fail with an error `accept`s, within `timeout`: a success, another
 * error, a defect or no answer at all is a violation.
 */
const expectFailure = <A, E>(
  label: string,
  effect: Effect.Effect<A, E>,
  accept: (error: unknown) => boolean,
  expected: string,
  timeout: Duration.Duration
) =>
  Effect.gen(function*() {
    // Disconnected, so that an operation which ignores interruption cannot hang the check.
    const answer = yield* Effect.timeoutOption(Effect.disconnect(Effect.exit(effect)), timeout)
    if (Option.isNone(answer)) {
      return yield* Internal.fail(`${label} hung: no answer within ${Duration.toMillis(timeout)} ms, expected it to fail with ${expected}`)
    }
    const exit = answer.value
    if (Exit.isSuccess(exit)) return yield* Internal.fail(`${label} succeeded (returned ${show(exit.value)}), expected it to fail with ${expected}`)
    const failure = Cause.failureOption(exit.cause)
    if (Option.isNone(failure)) {
      return yield* Internal.fail(`${label}: expected a failure with ${expected}, got ${Internal.describeCause(exit.cause)}`)
    }
    yield* expect(
      accept(failure.value),
      () => `${label} failed with ${Internal.describeError(failure.value)}, expected ${expected}`
    )
  })

const isBadArgument = (error: unknown) => PlatformError.isPlatformError(error) && error._tag === "BadArgument"

const isStoreFailure = (error: unknown) => SingletonError.isSingletonError(error) && error.isRetryable

const stateOf = (key: string) => FencedState.make({ name: "conformance-errors", schema: Schema.Array(Schema.String), initial: [], key })

type WriteOp = "set" | "modify" | "modifyOrInit" | "setIfAbsent" | "remove"

/** What a write does to `current` when it takes effect. */
const apply = (op: WriteOp, current: Option.Option<Store.Value>, next: Store.Value): Option.Option<Store.Value> => {
  switch (op) {
    case "set":
    case "modifyOrInit":
      return Option.some(next)
    case "modify":
      return Option.map(current, () => next)
    case "setIfAbsent":
      return Option.isNone(current) ? Option.some(next) : current
    case "remove":
      return Option.none()
  }
}

const write = (store: Store.Store, op: WriteOp, key: string, next: string): Effect.Effect<unknown, unknown> => {
  switch (op) {
    case "set":
      return store.set(key, next)
    case "modify":
      return store.modify(key, () => next)
    case "modifyOrInit":
      return store.modifyOrInit(key, () => [undefined, Option.some(next)])
    case "setIfAbsent":
      return store.setIfAbsent(key, next)
    case "remove":
      return store.remove(key)
  }
}

const platform = "a PlatformError"

const retryable = "a retryable SingletonError (StateLoadFailed / StatePersistFailed / HeartbeatFailed)"

// Every operation of a store: the writes change `key` to "changed" or create `${key}/new`.
const storeOperations = (store: Store.Store, key: string): ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown>]> => [
  ["get", store.get(key)],
  ["getUint8Array", store.getUint8Array(key)],
  ["has", store.has(key)],
  ["size", store.size],
  ["isEmpty", store.isEmpty],
  ["set", store.set(key, "changed")],
  ["remove", store.remove(key)],
  ["clear", store.clear],
  ["modify", store.modify(key, () => "changed")],
  ["modifyUint8Array", store.modifyUint8Array(key, () => new Uint8Array([1]))],
  ["modifyOrInit", store.modifyOrInit(key, () => [undefined, Option.some("changed")])],
  ["setIfAbsent", store.setIfAbsent(`${key}/new`, "changed")],
  ["forSchema(String).modify", store.forSchema(Schema.String).modify(key, () => "changed")]
]

type State = ReturnType<typeof stateOf>

// Every operation of core's fenced state on `store`, and of `lease` (claimed on it).
const fencedOperations = (
  store: Store.Store,
  state: State,
  lease: FencedState.Lease<ReadonlyArray<string>>
): ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown>]> => [
  ["FencedState claim", Effect.provideService(state.claim(), Store.Store, store)],
  ["FencedState read", Effect.provideService(state.read, Store.Store, store)],
  ["Lease update", lease.update((s) => [...s, "changed"])],
  ["Lease heartbeat", lease.heartbeat],
  ["Lease verify", lease.verify]
]

// Each of the operations above fails as it should, within `timeout`.
const expectEveryOperationFails = (
  when: string,
  store: Store.Store,
  key: string,
  state: State,
  lease: FencedState.Lease<ReadonlyArray<string>>,
  timeout: Duration.Duration
) =>
  Effect.gen(function*() {
    for (const [label, effect] of storeOperations(store, key)) {
      yield* expectFailure(`${label} ${when}`, effect, PlatformError.isPlatformError, platform, timeout)
    }
    for (const [label, effect] of fencedOperations(store, state, lease)) {
      yield* expectFailure(`${label} ${when}`, effect, isStoreFailure, retryable, timeout)
    }
  })

// What another client finds after the operations above failed: `key` holds one of `allowed`
// (whole), `${key}/new` was not created and the fenced state is as claimed (epoch 1, empty).
const expectNothingWritten = (
  when: string,
  observer: Store.Store,
  key: string,
  allowed: ReadonlyArray<Store.Value>,
  state: State
) =>
  Effect.gen(function*() {
    const kept = yield* attempt(`get(${show(key)})`, Internal.readExact(observer, key))
    yield* expect(
      allowed.some((value) => Internal.sameValue(kept, Option.some(value))),
      () =>
        `${when}, another client reads ${show(kept)}, expected ${allowed.map(show).join(" or ")}: a failed write changed something, or left part of a value`
    )
    const added = yield* attempt("has", observer.has(`${key}/new`))
    yield* expect(!added, () => `${when}, the key that setIfAbsent failed to create exists`)
    const snapshot = yield* attempt("FencedState read", Effect.provideService(state.read, Store.Store, observer))
    yield* expect(
      Option.isSome(snapshot) && snapshot.value.epoch === 1 && snapshot.value.state.length === 0,
      () =>
        `${when}, a failed fenced write or claim changed the state: ${
          show(Option.map(snapshot, (s) => `epoch ${s.epoch}, state ${show(s.state)}`))
        }`
    )
  })

/**
 * Retries `effect` until it succeeds, for at most `timeout`: a client recovering from a
 * disruption may take a few reconnection attempts.
 */
const eventually = <A>(label: string, effect: Effect.Effect<A, unknown>, timeout: Duration.Duration) =>
  Effect.gen(function*() {
    let last: Cause.Cause<unknown> | undefined
    const attempts = Effect.retry(
      Effect.tapError(Effect.sandbox(Effect.disconnect(effect)), (cause) =>
        Effect.sync(() => {
          last = cause
        })),
      Schedule.spaced("20 millis")
    )
    const result = yield* Effect.timeoutOption(Effect.orDie(attempts), timeout)
    if (Option.isSome(result)) return result.value
    return yield* Internal.fail(
      `${label} did not succeed within ${Duration.toMillis(timeout)} ms after the disruption ended` +
        (last === undefined ? " (no answer)" : `; last attempt: ${Internal.describeCause(last)}`)
    )
  })

const largeValueBytes = 256 * 1024

const badKeys = ["\ud800", "a\udfff", "a".repeat(Store.maxKeyBytes + 1), "\u20ac".repeat(Math.ceil((Store.maxKeyBytes + 1) / 3))]

const badValues: ReadonlyArray<unknown> = ["\ud800", "x\udc00y", 42, null, { value: "x" }]

/**
 * @since 0.1.0
 * @category checks
 */
export const checks: ReadonlyArray<Internal.Check> = [
  Internal.check({
    family: "errors",
    name: "closed-client",
    description:
      "after a client's scope closes, each of its operations fails with a PlatformError (FencedState with a retryable SingletonError): no success, no defect, no hang, nothing written",
    defaultRuns: 10,
    arbitrary: () => fc.record({ namespace: Hostile.namespace, key: Hostile.key, value: fc.constantFrom("v", "", "\u0000") }),
    examples: [{ namespace: "conformance", key: "k", value: "v" }],
    run: (input, { operationTimeout, session }) =>
      Effect.gen(function*() {
        const observer = yield* session.client(input.namespace)
        const scope = yield* Scope.make()
        const doomed = yield* Scope.extend(session.client(input.namespace), scope)
        const state = stateOf(input.key === "state" ? "state/2" : "state")
        yield* attempt(`set(${show(input.key)})`, doomed.set(input.key, input.value))
        const lease = yield* attempt("FencedState claim", Effect.provideService(state.claim(), Store.Store, doomed))
        yield* Scope.close(scope, Exit.void)

        yield* expectEveryOperationFails("on a closed client", doomed, input.key, state, lease, operationTimeout)
        yield* expectNothingWritten("after failed operations on a closed client", observer, input.key, [input.value], state)
      })
  }),
  Internal.check({
    family: "errors",
    name: "disruption",
    description:
      "while the backend is disrupted, writes in flight end (succeeded or failed with a PlatformError) and each operation fails with a PlatformError (FencedState with a retryable SingletonError), within the operation timeout; afterwards a new client finds every value whole and nothing written by the failed operations",
    requires: "disruption",
    defaultRuns: 8,
    arbitrary: () =>
      fc.record({
        namespace: Hostile.namespace,
        key: Hostile.key,
        large: fc.boolean(),
        inFlight: fc.array(fc.constantFrom<WriteOp>("set", "modify", "modifyOrInit"), { maxLength: 3 }),
        disruptAfter: Internal.delayArbitrary
      }),
    examples: [{ namespace: "conformance", key: "k", large: false, inFlight: ["set", "modify"], disruptAfter: { yields: 1 } }],
    run: (input, { operationTimeout, session }) =>
      Effect.gen(function*() {
        const store = yield* session.client(input.namespace)
        const value = (i: number) => input.large ? Hostile.patternString(largeValueBytes, i + 1) : `value ${i}`
        const state = stateOf(input.key === "state" ? "state/2" : "state")
        yield* attempt(`set(${show(input.key)})`, store.set(input.key, value(0)))
        const lease = yield* attempt("FencedState claim", Effect.provideService(state.claim(), Store.Store, store))

        const writes = yield* Effect.forEach(
          input.inFlight,
          (op, i) => Effect.fork(Effect.disconnect(write(store, op, input.key, value(i + 1)))),
          { concurrency: "unbounded" }
        )
        yield* Internal.delay(input.disruptAfter)
        const disruption = yield* Scope.make()
        yield* Scope.extend(session.disrupt, disruption)
        for (const [i, fiber] of writes.entries()) {
          const label = `${input.inFlight[i]} in flight when the disruption began`
          const exit = yield* Effect.timeoutOption(Fiber.await(fiber), operationTimeout)
          if (Option.isNone(exit)) {
            return yield* Internal.fail(`${label} hung: no answer within ${Duration.toMillis(operationTimeout)} ms`)
          }
          if (Exit.isFailure(exit.value)) {
            const failure = Cause.failureOption(exit.value.cause)
            yield* expect(
              Option.isSome(failure) && PlatformError.isPlatformError(failure.value),
              () => `${label} ended with ${Internal.describeCause((exit.value as Exit.Failure<unknown, unknown>).cause)}, expected success or ${platform}`
            )
          }
        }
        yield* expectEveryOperationFails("during a disruption", store, input.key, state, lease, operationTimeout)
        yield* Scope.close(disruption, Exit.void)

        const observer = yield* session.client(input.namespace)
        yield* expectNothingWritten(
          "after a disruption",
          observer,
          input.key,
          [0, ...input.inFlight.map((_, i) => i + 1)].map(value),
          state
        )
      })
  }),
  Internal.check({
    family: "errors",
    name: "recovery",
    description:
      "once a disruption is over, a client opened before it works again within the operation timeout (it reconnects): it reads what it wrote, writes, updates and claims fenced state, and a new client agrees",
    requires: "recovery",
    defaultRuns: 5,
    arbitrary: () => fc.record({ namespace: Hostile.namespace, key: Hostile.key, failedDuring: fc.boolean() }),
    examples: [{ namespace: "conformance", key: "k", failedDuring: true }],
    run: (input, { operationTimeout, session }) =>
      Effect.gen(function*() {
        const store = yield* session.client(input.namespace)
        yield* attempt(`set(${show(input.key)})`, store.set(input.key, "before"))
        yield* Effect.scoped(
          Effect.zipRight(
            session.disrupt,
            // Whatever it answers (it should fail), the client has met the disruption.
            input.failedDuring ? Effect.timeoutOption(Effect.exit(Effect.disconnect(store.get(input.key))), operationTimeout) : Effect.void
          )
        )
        const label = (operation: string) => `${operation} on a client opened before the disruption`
        const before = yield* eventually(label(`get(${show(input.key)})`), store.get(input.key), operationTimeout)
        yield* expect(
          Option.isSome(before) && before.value === "before",
          () => `after the disruption, ${label(`get(${show(input.key)})`)} returned ${show(before)}, expected "before"`
        )
        yield* attempt(label("set"), store.set(input.key, "after"))
        const modified = yield* attempt(label("modify"), store.modify(input.key, (s) => `${s}+`))
        yield* expect(
          Option.isSome(modified) && modified.value === "after+",
          () => `after the disruption, ${label("modify")} returned ${show(modified)}, expected Some("after+")`
        )
        const state = stateOf(input.key === "state" ? "state/2" : "state")
        const lease = yield* attempt(label("FencedState claim"), Effect.provideService(state.claim(), Store.Store, store))
        yield* attempt(label("Lease update"), lease.update(() => ["recovered"]))

        const observer = yield* session.client(input.namespace)
        const seen = yield* attempt("get on a new client", observer.get(input.key))
        yield* expect(
          Option.isSome(seen) && seen.value === "after+",
          () => `after the disruption, a new client reads ${show(seen)}, expected "after+" (written by the recovered client)`
        )
        const snapshot = yield* attempt("FencedState read on a new client", Effect.provideService(state.read, Store.Store, observer))
        yield* expect(
          Option.isSome(snapshot) && snapshot.value.epoch === 1 && snapshot.value.state[0] === "recovered",
          () =>
            `after the disruption, a new client reads the fenced state as ${
              show(Option.map(snapshot, (s) => `epoch ${s.epoch}, state ${show(s.state)}`))
            }, expected epoch 1 with the recovered client's update`
        )
      })
  }),
  Internal.check({
    family: "errors",
    name: "interrupted-writes",
    description:
      "a write interrupted in flight leaves the old value or the new one (never a partial or other value), and no lock: both clients go on working",
    defaultRuns: 40,
    arbitrary: () =>
      fc.record({
        namespace: Hostile.namespace,
        key: Hostile.key,
        op: fc.constantFrom<WriteOp>("set", "modify", "modifyOrInit", "modifyOrInit", "modify", "setIfAbsent", "remove"),
        present: fc.boolean(),
        large: fc.boolean(),
        interruptAfter: Internal.delayArbitrary
      }),
    run: (input, { operationTimeout, session }) =>
      Effect.gen(function*() {
        const [writer, reader] = yield* Effect.all([session.client(input.namespace), session.client(input.namespace)])
        const oldValue = input.large ? Hostile.patternString(largeValueBytes, 1) : "old"
        const newValue = input.large ? Hostile.patternString(largeValueBytes, 2) : "new"
        const before = input.present ? Option.some<Store.Value>(oldValue) : Option.none()
        if (input.present) yield* attempt("set", reader.set(input.key, oldValue))
        const applied = apply(input.op, before, newValue)

        const fiber = yield* Effect.fork(write(writer, input.op, input.key, newValue))
        yield* Internal.delay(input.interruptAfter)
        const exit = yield* Fiber.interrupt(fiber)

        const within = <A>(label: string, effect: Effect.Effect<A, unknown>) =>
          Effect.flatMap(
            Effect.timeoutOption(Effect.disconnect(attempt(label, effect)), operationTimeout),
            Option.match({
              onNone: () =>
                Internal.fail(`after interrupting ${input.op}, ${label} hung (no answer within ${Duration.toMillis(operationTimeout)} ms): the interrupted write left a lock or a broken connection behind`),
              onSome: Effect.succeed
            })
          )
        const after = yield* within("a read by another client", Internal.readExact(reader, input.key))
        const what = `${input.op} ${input.present ? "of a present" : "of an absent"} key ${
          Exit.isSuccess(exit) ? "(it completed before the interruption)" : "interrupted in flight"
        }`
        yield* expect(
          Exit.isSuccess(exit) ? Internal.sameValue(after, applied) : Internal.sameValue(after, before) || Internal.sameValue(after, applied),
          () =>
            `${what} left ${show(after)}; expected ${
              Exit.isSuccess(exit) ? show(applied) : `the old value ${show(before)} or the new one ${show(applied)}`
            }`
        )
        yield* within("a read by the interrupted client", writer.get(input.key))
        yield* within("a modifyOrInit by another client", reader.modifyOrInit(input.key, () => [undefined, Option.some("after")]))
        yield* within("a modifyOrInit by the interrupted client", writer.modifyOrInit(input.key, (current) => [current, Option.none()]))
      })
  }),
  Internal.check({
    family: "errors",
    name: "throwing-f",
    description:
      "an update whose f throws dies with that defect and writes nothing; concurrent updates of the same key by the same client commit",
    defaultRuns: 15,
    arbitrary: () =>
      fc.record({
        namespace: Hostile.namespace,
        key: Hostile.key,
        calls: fc.integer({ min: 1, max: 20 }),
        throwEvery: fc.integer({ min: 1, max: 5 })
      }),
    examples: [{ namespace: "conformance", key: "n", calls: 20, throwEvery: 5 }],
    run: (input, { session }) =>
      Effect.gen(function*() {
        const [store, observer] = yield* Effect.all([session.client(input.namespace), session.client(input.namespace)])
        yield* attempt("set", observer.set(input.key, "0"))
        const throws = (i: number) => i % input.throwEvery === 0
        const exits = yield* Effect.forEach(
          Array.from({ length: input.calls }, (_, i) => i),
          (i) =>
            Effect.exit(store.modify(input.key, (n) => {
              if (throws(i)) throw new Error(`f of call ${i} throws`)
              return String(Number(n) + 1)
            })),
          { concurrency: "unbounded" }
        )
        for (const [i, exit] of exits.entries()) {
          yield* expect(
            throws(i) ? Exit.isFailure(exit) && Cause.isDie(exit.cause) : Exit.isSuccess(exit),
            () =>
              `call ${i} of ${input.calls} concurrent modify calls, whose f ${throws(i) ? "throws" : "does not throw"}, ended with ${
                Exit.isSuccess(exit) ? `success ${show(exit.value)}` : Internal.describeCause(exit.cause)
              }; expected ${throws(i) ? "a defect" : "success"}`
          )
        }
        const committed = exits.filter(Exit.isSuccess).length
        const final = yield* attempt("get", observer.get(input.key))
        yield* expect(
          Option.isSome(final) && final.value === String(committed),
          () => `${committed} of ${input.calls} concurrent increments succeeded (the others' f threw), but the key holds ${show(final)}`
        )
      })
  }),
  Internal.check({
    family: "errors",
    name: "rejected-input",
    description:
      `lone surrogates, keys over ${Store.maxKeyBytes} UTF-8 bytes and values that are neither strings nor bytes fail with BadArgument and change nothing`,
    defaultRuns: 10,
    arbitrary: () => fc.record({ namespace: Hostile.namespace, badKey: fc.constantFrom(...badKeys), badValue: fc.constantFrom(...badValues) }),
    examples: [{ namespace: "conformance", badKey: badKeys[0]!, badValue: badValues[0] }],
    run: (input, { operationTimeout, session }) =>
      Effect.gen(function*() {
        const [store, observer] = yield* Effect.all([session.client(input.namespace), session.client(input.namespace)])
        yield* attempt("set", store.set("k", "v"))
        const bad = input.badValue as Store.Value
        const badArgument = "BadArgument"
        const key = show(input.badKey)
        const operations: ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown>]> = [
          [`get(${key})`, store.get(input.badKey)],
          [`getUint8Array(${key})`, store.getUint8Array(input.badKey)],
          [`has(${key})`, store.has(input.badKey)],
          [`remove(${key})`, store.remove(input.badKey)],
          [`set(${key})`, store.set(input.badKey, "x")],
          [`modify(${key})`, store.modify(input.badKey, (s) => s)],
          [`modifyOrInit(${key})`, store.modifyOrInit(input.badKey, () => [undefined, Option.some("x")])],
          [`setIfAbsent(${key})`, store.setIfAbsent(input.badKey, "x")],
          [`set("k", ${show(input.badValue)})`, store.set("k", bad)],
          [`set("k2", ${show(input.badValue)})`, store.set("k2", bad)],
          [`setIfAbsent("k2", ${show(input.badValue)})`, store.setIfAbsent("k2", bad)],
          [`modify("k", () => ${show(input.badValue)})`, store.modify("k", () => bad as string)],
          [`modifyOrInit("k", () => ${show(input.badValue)})`, store.modifyOrInit("k", () => [undefined, Option.some(bad)])],
          [`modifyOrInit("k2", () => ${show(input.badValue)})`, store.modifyOrInit("k2", () => [undefined, Option.some(bad)])]
        ]
        for (const [label, effect] of operations) {
          yield* expectFailure(label, effect, isBadArgument, badArgument, operationTimeout)
        }
        const kept = yield* attempt("get", observer.get("k"))
        yield* expect(Option.isSome(kept) && kept.value === "v", () => `after rejected writes, "k" holds ${show(kept)}, expected "v"`)
        const size = yield* attempt("size", observer.size)
        yield* expect(size === 1, () => `after rejected writes, size is ${size}, expected 1: a rejected write created a key`)
      })
  })
]
