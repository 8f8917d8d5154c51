/**
 * Linearizability family: random concurrent histories over several clients and a few keys,
 * recorded with invocation and response times, checked per key against the sequential model of
 * a register (get/has/set/remove/modify/setIfAbsent/modifyOrInit). Interrupted or failed
 * operations count as may-or-may-not-have-happened.
 *
 * @since 0.1.0
 */
import * as Store from "@durable-singleton/core/Store"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as fc from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Internal from "../internal/check.js"
import * as Hostile from "../internal/hostile.js"
import * as Linearizability from "../Linearizability.js"

type Kind = Linearizability.RegisterInput["op"]

const kinds: ReadonlyArray<Kind> = ["get", "has", "set", "remove", "modify", "setIfAbsent", "modifyOrInit"]

const operation = fc.record({
  kind: fc.constantFrom(...kinds),
  key: fc.nat({ max: 1 }),
  pause: fc.nat({ max: 2 }),
  interruptAfter: fc.oneof(
    { weight: 6, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: Internal.delayArbitrary }
  )
})

type Op = typeof operation extends fc.Arbitrary<infer A> ? A : never

const inputOf = (op: Op, id: string): Linearizability.RegisterInput => {
  switch (op.kind) {
    case "get":
    case "has":
    case "remove":
      return { op: op.kind }
    case "set":
    case "setIfAbsent":
      return { op: op.kind, value: id }
    case "modify":
      return { op: "modify", suffix: `+${id}` }
    case "modifyOrInit":
      return { op: "modifyOrInit", init: id, suffix: `+${id}` }
  }
}

const invoke = (
  store: Store.Store,
  key: string,
  input: Linearizability.RegisterInput
): Effect.Effect<Linearizability.RegisterOutput, unknown> => {
  switch (input.op) {
    case "get":
      return Effect.map(store.get(key), Option.getOrNull)
    case "has":
      return store.has(key)
    case "set":
      return Effect.as(store.set(key, input.value), undefined)
    case "remove":
      return Effect.as(store.remove(key), undefined)
    case "modify":
      return Effect.map(store.modify(key, (s) => s + input.suffix), Option.getOrNull)
    case "setIfAbsent":
      return store.setIfAbsent(key, input.value)
    case "modifyOrInit":
      return store.modifyOrInit(key, (current) => {
        const seen = Option.isNone(current) ? null : Store.asString(current.value)
        return [seen, Option.some(seen === null ? input.init : seen + input.suffix)]
      })
  }
}

/**
 * A register operation as text, for histories in failure reports.
 *
 * @since 0.1.0
 * @category formatting
 */
export const describeInput = (input: Linearizability.RegisterInput): string => {
  switch (input.op) {
    case "get":
    case "has":
    case "remove":
      return input.op
    case "set":
    case "setIfAbsent":
      return `${input.op}(${JSON.stringify(input.value)})`
    case "modify":
      return `modify(s => s + ${JSON.stringify(input.suffix)})`
    case "modifyOrInit":
      return `modifyOrInit(none => ${JSON.stringify(input.init)}, s => s + ${JSON.stringify(input.suffix)})`
  }
}

interface Recorded {
  readonly key: number
  readonly operation: Linearizability.Operation<Linearizability.RegisterInput, Linearizability.RegisterOutput>
}

/**
 * @since 0.1.0
 * @category checks
 */
export const checks: ReadonlyArray<Internal.Check> = [
  Internal.check({
    family: "linearizability",
    name: "concurrent-histories",
    description:
      "concurrent operations from several clients on a few keys form, per key, a linearizable history of a register; once every operation has returned (none interrupted or failed), every client's size, isEmpty and has agree with the keys present",
    defaultRuns: 30,
    arbitrary: () =>
      fc.record({
        namespace: Hostile.namespace,
        keys: fc.uniqueArray(Hostile.key, { minLength: 1, maxLength: 2 }),
        clients: fc.integer({ min: 2, max: 3 }),
        workers: fc.array(
          fc.record({ client: fc.nat({ max: 2 }), ops: fc.array(operation, { minLength: 1, maxLength: 6 }) }),
          { minLength: 2, maxLength: 4 }
        )
      }),
    // Tried first on every seed: two clients racing writes of one key, with no pauses.
    examples: [{
      namespace: "conformance",
      keys: ["k"],
      clients: 2,
      workers: [0, 1].map((client) => ({
        client,
        ops: (["set", "set", "remove", "setIfAbsent", "get"] as const).map((kind) => ({ kind, key: 0, pause: 0, interruptAfter: undefined }))
      }))
    }],
    run: (input, { session }) =>
      Effect.gen(function*() {
        const stores = yield* Effect.all(Array.from({ length: input.clients }, () => session.client(input.namespace)))
        const recorded: Array<Recorded> = []
        const origin = performance.now()
        const worker = (w: number, client: number, ops: ReadonlyArray<Op>) =>
          Effect.forEach(ops.entries(), ([i, op]) =>
            Effect.gen(function*() {
              const keyIndex = op.key % input.keys.length
              const linearizabilityInput = inputOf(op, `${w}.${i}`)
              const effect = invoke(stores[client]!, input.keys[keyIndex]!, linearizabilityInput)
              yield* Internal.delay({ yields: op.pause })
              const call = performance.now() - origin
              let exit: Exit.Exit<Linearizability.RegisterOutput, unknown>
              if (op.interruptAfter === undefined) {
                exit = yield* Effect.exit(effect)
              } else {
                const fiber = yield* Effect.fork(effect)
                yield* Internal.delay(op.interruptAfter)
                exit = yield* Fiber.interrupt(fiber)
              }
              const returned = performance.now() - origin
              const process = `w${w}@c${client}`
              recorded.push({
                key: keyIndex,
                operation: Exit.isSuccess(exit)
                  ? { input: linearizabilityInput, call, process, outcome: "returned", output: exit.value, return: returned }
                  : { input: linearizabilityInput, call, process, outcome: "unknown" }
              })
            }), { discard: true })
        yield* Effect.forEach(
          input.workers.entries(),
          ([w, { client, ops }]) => worker(w, client % input.clients, ops),
          { concurrency: "unbounded", discard: true }
        )
        for (const [keyIndex, key] of input.keys.entries()) {
          const history = recorded.filter((r) => r.key === keyIndex).map((r) => r.operation)
          const result = Linearizability.check(Linearizability.register, history)
          if (result._tag === "Linearizable") continue
          const text = Linearizability.formatHistory(history, describeInput)
          if (result._tag === "Inconclusive") {
            return yield* Internal.fail(
              `the history of key ${Internal.show(key)} (${history.length} operations) was too complex to check within ${result.steps} steps:\n${text}`
            )
          }
          const state = result.longestPrefix.reduce<string | null>(
            (state, index) => Linearizability.register.step(state, history[index]!.input)[0],
            null
          )
          return yield* Internal.fail(
            `the history of key ${Internal.show(key)} is not linearizable: no order of its operations that respects real time explains every result.\n` +
              `history (ms since the run started; ? = interrupted or failed: may or may not have happened):\n${text}\n` +
              `longest explainable prefix: ${result.longestPrefix.map((i) => `#${i}`).join(", ") || "(none)"}, ` +
              `leaving the key ${state === null ? "absent" : `= ${JSON.stringify(state)}`}; ` +
              `from there the results of ${result.pending.map((i) => `#${i}`).join(", ")} cannot all be explained`
          )
        }
        // An interrupted or failed write may still land on the server after its fiber ended,
        // between the reads below: only a history whose every operation returned is settled.
        if (recorded.every((r) => r.operation.outcome === "returned")) {
          for (const [client, store] of stores.entries()) {
            yield* Internal.expectSizeAgrees(store, input.keys, `after the concurrent operations, on client ${client}`)
          }
        }
      })
  })
]
