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
        const on = <A, E>(effect: Effect.Effect<A, E, Store.Store>) => Effect.provideService(effect, Store.Store, doomed)
        yield* attempt(`set(${show(input.key)})`, doomed.set(input.key, input.value))
        const lease = yield* attempt("FencedState claim", on(state.claim()))
        yield* Scope.close(scope, Exit.void)

        const platform = "a PlatformError"
        const storeOperations: ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown>]> = [
          ["get", doomed.get(input.key)],
          ["getUint8Array", doomed.getUint8Array(input.key)],
          ["has", doomed.has(input.key)],
          ["size", doomed.size],
          ["isEmpty", doomed.isEmpty],
          ["set", doomed.set(input.key, "changed")],
          ["remove", doomed.remove(input.key)],
          ["clear", doomed.clear],
          ["modify", doomed.modify(input.key, () => "changed")],
          ["modifyUint8Array", doomed.modifyUint8Array(input.key, () => new Uint8Array([1]))],
          ["modifyOrInit", doomed.modifyOrInit(input.key, () => [undefined, Option.some("changed")])],
          ["setIfAbsent", doomed.setIfAbsent(`${input.key}/new`, "changed")],
          ["forSchema(String).modify", doomed.forSchema(Schema.String).modify(input.key, () => "changed")]
        ]
        for (const [label, effect] of storeOperations) {
          yield* expectFailure(`${label} on a closed client`, effect, PlatformError.isPlatformError, platform, operationTimeout)
        }
        const retryable = "a retryable SingletonError (StateLoadFailed / StatePersistFailed / HeartbeatFailed)"
        const fencedOperations: ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown>]> = [
          ["FencedState claim", on(state.claim())],
          ["FencedState read", on(state.read)],
          ["Lease update", lease.update((s) => [...s, "changed"])],
          ["Lease heartbeat", lease.heartbeat],
          ["Lease verify", lease.verify]
        ]
        for (const [label, effect] of fencedOperations) {
          yield* expectFailure(`${label} on a closed client`, effect, isStoreFailure, retryable, operationTimeout)
        }

        const kept = yield* attempt(`get(${show(input.key)})`, observer.get(input.key))
        yield* expect(
          Option.isSome(kept) && kept.value === input.value,
          () => `after failed writes on a closed client, another client reads ${show(kept)}, expected ${show(input.value)}: a failed write changed something`
        )
        const added = yield* attempt("has", observer.has(`${input.key}/new`))
        yield* expect(!added, () => "setIfAbsent on a closed client failed, but the key was created")
        const snapshot = yield* attempt("FencedState read", Effect.provideService(state.read, Store.Store, observer))
        yield* expect(
          Option.isSome(snapshot) && snapshot.value.epoch === 1 && snapshot.value.state.length === 0,
          () => `a failed fenced write or claim on a closed client changed the state: ${show(Option.map(snapshot, (s) => `epoch ${s.epoch}, state ${show(s.state)}`))}`
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
        const size = 256 * 1024
        const oldValue = input.large ? Hostile.patternString(size, 1) : "old"
        const newValue = input.large ? Hostile.patternString(size, 2) : "new"
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
