/**
 * Atomicity family: N clients × M concurrent `modify` increments end at exactly N×M (and each
 * returns a distinct count); concurrent create-if-absent has exactly one winner; `modify` of a
 * missing key writes nothing.
 *
 * @since 0.1.0
 */
import type * as Store from "@durable-singleton/core/Store"
import * as Effect from "effect/Effect"
import * as fc from "effect/FastCheck"
import * as Option from "effect/Option"
import * as Internal from "../internal/check.js"
import * as Hostile from "../internal/hostile.js"

const { attempt, expect, show } = Internal

const clientsOf = (session: Internal.Session, namespace: string, count: number) =>
  Effect.all(Array.from({ length: count }, () => session.client(namespace)))

// Every fiber yields first, so that all of them are in flight before any finishes.
const concurrently = <A>(effects: ReadonlyArray<Effect.Effect<A, Internal.Violation>>) =>
  Effect.all(effects.map((effect) => Effect.zipRight(Effect.yieldNow(), effect)), { concurrency: "unbounded" })

const increments = (stores: ReadonlyArray<Store.Store>, perClient: number, increment: (store: Store.Store) => Effect.Effect<number, Internal.Violation>) =>
  concurrently(stores.flatMap((store) => Array.from({ length: perClient }, () => increment(store))))

// Each increment must have returned a different count, 1 to n: two increments that returned the
// same count both worked from the same old value.
const expectDistinctCounts = (results: ReadonlyArray<number>, what: string) => {
  const sorted = [...results].sort((a, b) => a - b)
  const duplicate = sorted.find((n, i) => i > 0 && sorted[i - 1] === n)
  return expect(
    sorted.every((n, i) => n === i + 1),
    () =>
      `${results.length} concurrent ${what} returned counts ${show(sorted.join(","))}, expected each of 1..${results.length} once` +
      (duplicate === undefined ? "" : ` (${duplicate} twice: two updates read the same old value)`)
  )
}

const parse = (value: string) => {
  const n = Number(value)
  return Number.isInteger(n) ? n : NaN
}

interface Concurrency {
  readonly namespace: string
  readonly key: string
  readonly clients: number
  readonly perClient: number
}

// N clients × M concurrent operations on one key.
const concurrency = (perClient: { readonly min: number; readonly max: number }): fc.Arbitrary<Concurrency> =>
  fc.record({
    namespace: Hostile.namespace,
    key: Hostile.key,
    clients: fc.integer({ min: 2, max: 4 }),
    perClient: fc.integer(perClient)
  })

// A check of N clients × M concurrent increments of one key.
const incrementsCheck = (
  name: string,
  description: string,
  run: Internal.Property<Concurrency>["run"]
) =>
  Internal.check({
    family: "atomicity",
    name,
    description,
    defaultRuns: 15,
    arbitrary: () => concurrency({ min: 2, max: 8 }),
    examples: [{ namespace: "conformance", key: "counter", clients: 4, perClient: 8 }],
    run
  })

/**
 * @since 0.1.0
 * @category checks
 */
export const checks: ReadonlyArray<Internal.Check> = [
  incrementsCheck(
    "concurrent-modify",
    "N clients × M concurrent modify increments of one key end at exactly N×M, each returning a distinct count; size, isEmpty and has agree",
    (input, { session }) =>
      Effect.gen(function*() {
        const stores = yield* clientsOf(session, input.namespace, input.clients)
        yield* attempt("set(key, \"0\")", stores[0]!.set(input.key, "0"))
        const results = yield* increments(stores, input.perClient, (store) =>
          Effect.flatMap(
            attempt("modify (increment)", store.modify(input.key, (n) => String(parse(n) + 1))),
            (result) =>
              Option.isSome(result)
                ? Effect.succeed(parse(result.value))
                : Internal.fail("modify of a present key returned None: the key vanished")
          ))
        const total = input.clients * input.perClient
        const final = yield* attempt("get", stores[stores.length - 1]!.get(input.key))
        yield* expect(
          Option.isSome(final) && parse(final.value) === total,
          () => `${input.clients} clients × ${input.perClient} concurrent modify increments ended at ${show(final)}, expected ${total}: updates were lost`
        )
        yield* expectDistinctCounts(results, "modify increments")
        yield* Internal.expectSizeAgrees(stores[0]!, [input.key], "after concurrent modify increments")
      })
  ),
  incrementsCheck(
    "concurrent-modify-or-init",
    "N clients × M concurrent modifyOrInit create-or-increment of an absent key end at N×M, with exactly one creation; size, isEmpty and has agree",
    (input, { session }) =>
      Effect.gen(function*() {
        const stores = yield* clientsOf(session, input.namespace, input.clients)
        const results = yield* increments(stores, input.perClient, (store) =>
          attempt(
            "modifyOrInit (create or increment)",
            store.modifyOrInit(input.key, (current) => {
              const next = Option.isNone(current) ? 1 : parse(String(current.value)) + 1
              return [next, Option.some(String(next))]
            })
          ))
        const total = input.clients * input.perClient
        const final = yield* attempt("get", stores[0]!.get(input.key))
        yield* expect(
          Option.isSome(final) && parse(final.value) === total,
          () => `${total} concurrent modifyOrInit create-or-increment ended at ${show(final)}, expected ${total}`
        )
        const creations = results.filter((n) => n === 1).length
        yield* expect(creations === 1, () => `${creations} concurrent modifyOrInit calls saw the key absent and created it, expected exactly 1`)
        yield* expectDistinctCounts(results, "modifyOrInit increments")
        yield* Internal.expectSizeAgrees(stores[0]!, [input.key], "after concurrent modifyOrInit create-or-increment")
      })
  ),
  Internal.check({
    family: "atomicity",
    name: "create-if-absent-race",
    description: "clients racing setIfAbsent on an absent key: exactly one wins, the stored value is the winner's, and size, isEmpty and has agree",
    defaultRuns: 20,
    arbitrary: () => concurrency({ min: 1, max: 4 }),
    examples: [{ namespace: "conformance", key: "lock", clients: 4, perClient: 4 }],
    run: (input, { session }) =>
      Effect.gen(function*() {
        const stores = yield* clientsOf(session, input.namespace, input.clients)
        const racers = stores.flatMap((store, c) =>
          Array.from({ length: input.perClient }, (_, i) => {
            const value = `racer-${c}-${i}`
            return Effect.map(attempt("setIfAbsent", store.setIfAbsent(input.key, value)), (won) => ({ value, won }))
          })
        )
        const outcomes = yield* concurrently(racers)
        const winners = outcomes.filter((outcome) => outcome.won)
        yield* expect(
          winners.length === 1,
          () => `${outcomes.length} concurrent setIfAbsent calls: ${winners.length} won (${winners.map((w) => w.value).join(", ")}), expected exactly 1`
        )
        const stored = yield* attempt("get", stores[0]!.get(input.key))
        yield* expect(
          Option.isSome(stored) && stored.value === winners[0]!.value,
          () => `setIfAbsent winner was ${show(winners[0]!.value)}, but the key holds ${show(stored)}`
        )
        yield* Internal.expectSizeAgrees(stores[stores.length - 1]!, [input.key], "after racing setIfAbsent")
      })
  }),
  Internal.check({
    family: "atomicity",
    name: "missing-key",
    description:
      "modify and modifyUint8Array of a missing key return None and write nothing; modifyOrInit deciding not to write writes nothing",
    defaultRuns: 20,
    arbitrary: () => fc.record({ namespace: Hostile.namespace, key: Hostile.key, other: fc.constantFrom("x", "", "\u00e9") }),
    examples: [{ namespace: "conformance", key: "", other: "" }],
    run: (input, { session }) =>
      Effect.gen(function*() {
        const [writer, reader] = yield* Effect.all([session.client(input.namespace), session.client(input.namespace)])
        const expectAbsent = (after: string) =>
          Effect.gen(function*() {
            const got = yield* attempt("get", reader.get(input.key))
            yield* expect(Option.isNone(got), () => `after ${after}, the missing key ${show(input.key)} holds ${show(got)}`)
            const size = yield* attempt("size", reader.size)
            yield* expect(size === 0, () => `after ${after}, size is ${size}, expected 0: something was written`)
          })
        const modified = yield* attempt("modify", writer.modify(input.key, (s) => s + input.other))
        yield* expect(Option.isNone(modified), () => `modify of a missing key returned ${show(modified)}, expected None`)
        yield* expectAbsent("modify of it")
        const modifiedBytes = yield* attempt("modifyUint8Array", writer.modifyUint8Array(input.key, (b) => b))
        yield* expect(Option.isNone(modifiedBytes), () => `modifyUint8Array of a missing key returned ${show(modifiedBytes)}, expected None`)
        yield* expectAbsent("modifyUint8Array of it")
        yield* attempt("modifyOrInit", writer.modifyOrInit(input.key, () => [undefined, Option.none()]))
        yield* expectAbsent("modifyOrInit returning no value")
        yield* attempt("set", writer.set(input.key, input.other))
        yield* attempt("modifyOrInit", writer.modifyOrInit(input.key, () => [undefined, Option.none()]))
        const kept = yield* attempt("get", reader.get(input.key))
        yield* expect(
          Option.isSome(kept) && kept.value === input.other,
          () => `modifyOrInit returning no value changed ${show(input.other)} into ${show(kept)}`
        )
      })
  })
]
