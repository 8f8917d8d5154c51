/**
 * Model-based family: random command sequences (`fc.commands`) over every store operation,
 * spread over several clients of the same storage, checked step by step against a `Map`.
 *
 * @since 0.1.0
 */
import * as Store from "@durable-singleton/core/Store"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as fc from "effect/FastCheck"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Internal from "../internal/check.js"
import * as Hostile from "../internal/hostile.js"

interface Model {
  readonly entries: Map<string, Store.Value>
}

interface Real {
  readonly stores: ReadonlyArray<Store.Store>
  readonly run: <A>(label: string, effect: Effect.Effect<A, unknown>) => Promise<A>
}

type Command = fc.AsyncCommand<Model, Real>

const clients = 3

// Few keys, so that commands keep meeting on the same ones; similar-looking on purpose.
const keys = ["", "k", "K", "\u00e9", "e\u0301"] as const

const client = fc.nat({ max: clients - 1 })
const key = fc.constantFrom(...keys)
const value = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom<Store.Value>("", "0", "x", "\u0000", "\u00e9", "e\u0301") },
  { weight: 2, arbitrary: Hostile.wellFormedString({ maxLength: 8 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 6 }) }
)
const suffix = fc.constantFrom("+", "\u0000", "\u00e9", "")

const command = (
  label: string,
  body: (model: Model, real: Real, label: string) => Promise<void>
): Command => ({
  check: () => true,
  run: (model, real) => body(model, real, label),
  toString: () => label
})

const expectSame = (label: string, actual: unknown, expected: unknown, same: boolean) => {
  if (!same) {
    throw new Error(
      `${label} returned ${Internal.show(actual)}, but the model (a Map fed the same commands) says ${Internal.show(expected)}`
    )
  }
}

const args = (...values: ReadonlyArray<unknown>) => values.map(Internal.show).join(", ")

const get = fc.record({ client, key }).map(({ client, key }) =>
  command(`c${client}.get(${args(key)})`, async (model, real, label) => {
    const actual = await real.run(label, real.stores[client]!.get(key))
    const expected = Option.map(Option.fromNullable(model.entries.get(key)), Store.asString)
    expectSame(label, actual, expected, Internal.sameValue(actual, expected))
  })
)

const getUint8Array = fc.record({ client, key }).map(({ client, key }) =>
  command(`c${client}.getUint8Array(${args(key)})`, async (model, real, label) => {
    const actual = await real.run(label, real.stores[client]!.getUint8Array(key))
    const expected = Option.map(Option.fromNullable(model.entries.get(key)), Store.asBytes)
    expectSame(label, actual, expected, Internal.sameValue(actual, expected))
  })
)

const has = fc.record({ client, key }).map(({ client, key }) =>
  command(`c${client}.has(${args(key)})`, async (model, real, label) => {
    const actual = await real.run(label, real.stores[client]!.has(key))
    const expected = model.entries.has(key)
    expectSame(label, actual, expected, actual === expected)
  })
)

const set = fc.record({ client, key, value }).map(({ client, key, value }) =>
  command(`c${client}.set(${args(key, value)})`, async (model, real, label) => {
    await real.run(label, real.stores[client]!.set(key, value))
    model.entries.set(key, value)
  })
)

const remove = fc.record({ client, key }).map(({ client, key }) =>
  command(`c${client}.remove(${args(key)})`, async (model, real, label) => {
    await real.run(label, real.stores[client]!.remove(key))
    model.entries.delete(key)
  })
)

const size = client.map((client) =>
  command(`c${client}.size`, async (model, real, label) => {
    const actual = await real.run(label, real.stores[client]!.size)
    expectSame(label, actual, model.entries.size, actual === model.entries.size)
  })
)

const isEmpty = client.map((client) =>
  command(`c${client}.isEmpty`, async (model, real, label) => {
    const actual = await real.run(label, real.stores[client]!.isEmpty)
    const expected = model.entries.size === 0
    expectSame(label, actual, expected, actual === expected)
  })
)

const clear = client.map((client) =>
  command(`c${client}.clear`, async (model, real, label) => {
    await real.run(label, real.stores[client]!.clear)
    model.entries.clear()
  })
)

const modify = fc.record({ client, key, suffix }).map(({ client, key, suffix }) =>
  command(`c${client}.modify(${args(key)}, s => s + ${Internal.show(suffix)})`, async (model, real, label) => {
    const actual = await real.run(label, real.stores[client]!.modify(key, (s) => s + suffix))
    const current = model.entries.get(key)
    const expected = current === undefined ? Option.none() : Option.some(Store.asString(current) + suffix)
    expectSame(label, actual, expected, Internal.sameValue(actual, expected))
    if (Option.isSome(expected)) model.entries.set(key, expected.value)
  })
)

const modifyUint8Array = fc.record({ client, key, byte: fc.integer({ min: 0, max: 255 }) }).map(({ byte, client, key }) =>
  command(`c${client}.modifyUint8Array(${args(key)}, b => [...b, ${byte}])`, async (model, real, label) => {
    const append = (bytes: Uint8Array) => {
      const out = new Uint8Array(bytes.length + 1)
      out.set(bytes)
      out[bytes.length] = byte
      return out
    }
    const actual = await real.run(label, real.stores[client]!.modifyUint8Array(key, append))
    const current = model.entries.get(key)
    const expected = current === undefined ? Option.none() : Option.some(append(Store.asBytes(current)))
    expectSame(label, actual, expected, Internal.sameValue(actual, expected))
    if (Option.isSome(expected)) model.entries.set(key, expected.value)
  })
)

const setIfAbsent = fc.record({ client, key, value }).map(({ client, key, value }) =>
  command(`c${client}.setIfAbsent(${args(key, value)})`, async (model, real, label) => {
    const actual = await real.run(label, real.stores[client]!.setIfAbsent(key, value))
    const expected = !model.entries.has(key)
    expectSame(label, actual, expected, actual === expected)
    if (expected) model.entries.set(key, value)
  })
)

// Returns the exact current value (kind included); writes `init` when absent, appends when
// present, or (write = false) writes nothing.
const modifyOrInit = fc.record({ client, key, init: value, suffix, write: fc.boolean() }).map((
  { client, init, key, suffix, write }
) =>
  command(
    `c${client}.modifyOrInit(${args(key)}, ${
      write ? `none => ${Internal.show(init)}, s => s + ${Internal.show(suffix)}` : "read only"
    })`,
    async (model, real, label) => {
      const next = (current: Option.Option<Store.Value>): Option.Option<Store.Value> =>
        !write ? Option.none() : Option.some(Option.isNone(current) ? init : Store.asString(current.value) + suffix)
      const actual = await real.run(
        label,
        real.stores[client]!.modifyOrInit(key, (current) => [current, next(current)])
      )
      const expected = Option.fromNullable(model.entries.get(key))
      expectSame(label, actual, expected, Internal.sameValue(actual, expected))
      const written = next(expected)
      if (Option.isSome(written)) model.entries.set(key, written.value)
    }
  )
)

const commands = (replayPath: string | undefined) =>
  fc.commands(
    [
      fc.oneof(
        { weight: 4, arbitrary: set },
        { weight: 3, arbitrary: get },
        { weight: 3, arbitrary: remove },
        { weight: 2, arbitrary: modify },
        { weight: 2, arbitrary: modifyOrInit },
        { weight: 2, arbitrary: setIfAbsent },
        { weight: 2, arbitrary: size },
        { weight: 1, arbitrary: has },
        { weight: 1, arbitrary: getUint8Array },
        { weight: 1, arbitrary: modifyUint8Array },
        { weight: 1, arbitrary: isEmpty },
        { weight: 1, arbitrary: clear }
      )
    ],
    { maxCommands: 40, size: "max", ...(replayPath === undefined ? {} : { replayPath }) }
  )

/**
 * @since 0.1.0
 * @category checks
 */
export const checks: ReadonlyArray<Internal.Check> = [
  Internal.check({
    family: "model",
    name: "commands",
    description:
      "random sequences of get/getUint8Array/set/remove/has/isEmpty/size/clear/modify/modifyUint8Array/setIfAbsent/modifyOrInit over 3 clients agree with a Map at every step",
    defaultRuns: 50,
    arbitrary: (replay) => fc.record({ namespace: Hostile.namespace, commands: commands(replay.commands) }),
    run: (input, { session }) =>
      Effect.gen(function*() {
        const stores = yield* Effect.all(Array.from({ length: clients }, () => session.client(input.namespace)))
        const runtime = yield* Effect.runtime<never>()
        const real: Real = {
          stores,
          run: (label, effect) =>
            Runtime.runPromiseExit(runtime)(effect).then((exit) => {
              if (Exit.isSuccess(exit)) return exit.value
              throw new Error(`${label}: ${Internal.describeCause(exit.cause)}`)
            })
        }
        yield* Effect.tryPromise({
          try: () => fc.asyncModelRun(() => ({ model: { entries: new Map() }, real }), input.commands),
          catch: (error) => Internal.violation(error instanceof Error ? error.message : String(error))
        })
      })
  })
]
