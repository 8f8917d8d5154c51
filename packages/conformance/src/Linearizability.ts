/**
 * A linearizability checker for concurrent histories (Wing & Gong's algorithm with Lowe's
 * memoisation, as in Porcupine and Knossos), and the sequential model of one key of a store.
 *
 * A history is a set of operations, each with the time it was invoked and, if its outcome is
 * known, the time it returned and its result. It is linearizable if there is one sequential
 * order of the operations that respects real time (an operation that returned before another
 * was invoked comes first) and in which the model produces every observed result. An operation
 * whose outcome is unknown (it failed or was interrupted) may or may not have taken effect: it
 * may be placed anywhere after its invocation, or left out, and its result is not checked.
 *
 * @example
 * ```ts
 * import { Linearizability } from "@durable-singleton/conformance"
 *
 * // Two clients: one sets "x" while the other reads the old, absent value, then "x".
 * const result = Linearizability.check(Linearizability.register, [
 *   { input: { op: "set", value: "x" }, call: 0, return: 10, outcome: "returned", output: undefined },
 *   { input: { op: "get" }, call: 1, return: 2, outcome: "returned", output: null },
 *   { input: { op: "get" }, call: 11, return: 12, outcome: "returned", output: "x" }
 * ])
 * result._tag // "Linearizable"
 * ```
 *
 * @since 0.1.0
 */

/**
 * One operation of a history. Times are in any unit, from one clock.
 *
 * @since 0.1.0
 * @category models
 */
export type Operation<I, O> =
  & {
    readonly input: I
    /** When the operation was invoked. */
    readonly call: number
    /** Who invoked it (for messages). */
    readonly process?: string
  }
  & (
    | { readonly outcome: "returned"; readonly output: O; readonly return: number }
    /** Failed or interrupted: it may or may not have taken effect. */
    | { readonly outcome: "unknown" }
  )

/**
 * A deterministic sequential specification.
 *
 * @since 0.1.0
 * @category models
 */
export interface Model<S, I, O> {
  readonly initial: S
  /** The state after `input` and the result it returns. */
  readonly step: (state: S, input: I) => readonly [S, O]
  readonly equals: (a: O, b: O) => boolean
  /** A string identifying a state (states with equal keys are equal). */
  readonly key: (state: S) => string
}

/**
 * - `Linearizable`: `order` lists the operations (by index in the history) in an order that
 *   explains every result; unknown operations left out did not take effect in it.
 * - `NotLinearizable`: no order works. `longestPrefix` is the longest order found that explains
 *   its results, and `pending` the operations with known results left out of it.
 * - `Inconclusive`: the search exceeded its step budget.
 *
 * @since 0.1.0
 * @category models
 */
export type Result =
  | { readonly _tag: "Linearizable"; readonly order: ReadonlyArray<number> }
  | { readonly _tag: "NotLinearizable"; readonly longestPrefix: ReadonlyArray<number>; readonly pending: ReadonlyArray<number> }
  | { readonly _tag: "Inconclusive"; readonly steps: number }

interface Entry {
  readonly kind: "call" | "return"
  readonly op: number
  readonly time: number
  match: Entry | undefined
  prev: Entry | undefined
  next: Entry | undefined
}

/**
 * Checks a history against a model.
 *
 * @since 0.1.0
 * @category checking
 */
export const check = <S, I, O>(
  model: Model<S, I, O>,
  history: ReadonlyArray<Operation<I, O>>,
  options?: { readonly maxSteps?: number }
): Result => {
  const maxSteps = options?.maxSteps ?? 5_000_000
  const head = makeList(history)
  const lift = (entry: Entry) => {
    entry.prev!.next = entry.next
    if (entry.next) entry.next.prev = entry.prev
    const match = entry.match!
    match.prev!.next = match.next
    if (match.next) match.next.prev = match.prev
  }
  const unlift = (entry: Entry) => {
    const match = entry.match!
    match.prev!.next = match
    if (match.next) match.next.prev = match
    entry.prev!.next = entry
    if (entry.next) entry.next.prev = entry
  }

  // The search is a depth-first walk over partial linearizations; `seen` prunes pairs of
  // (linearized set, state) already explored, which is what keeps it tractable.
  const seen = new Set<string>()
  const stack: Array<{ readonly entry: Entry; readonly state: S }> = []
  let linearized = 0n
  let state = model.initial
  let entry = head.next
  let longest: ReadonlyArray<number> = []
  let steps = 0
  while (entry !== undefined) {
    if (++steps > maxSteps) return { _tag: "Inconclusive", steps }
    if (entry.kind === "call") {
      const op = history[entry.op]!
      const [next, output] = model.step(state, op.input)
      if (op.outcome === "unknown" || model.equals(output, op.output)) {
        const bits = linearized | (1n << BigInt(entry.op))
        const key = `${bits.toString(36)}|${model.key(next)}`
        if (!seen.has(key)) {
          seen.add(key)
          stack.push({ entry, state })
          state = next
          linearized = bits
          lift(entry)
          if (stack.length > longest.length) longest = stack.map((frame) => frame.entry.op)
          entry = head.next
          continue
        }
      }
      entry = entry.next
    } else {
      // Unknown operations return at +infinity, after every known one: reaching one means
      // every operation with a known result is linearized; the rest may not have happened.
      if (history[entry.op]!.outcome === "unknown") break
      const frame = stack.pop()
      if (frame === undefined) {
        const inPrefix = new Set(longest)
        const pending = history.flatMap((op, index) => op.outcome === "returned" && !inPrefix.has(index) ? [index] : [])
        return { _tag: "NotLinearizable", longestPrefix: longest, pending }
      }
      state = frame.state
      linearized &= ~(1n << BigInt(frame.entry.op))
      unlift(frame.entry)
      entry = frame.entry.next
    }
  }
  return { _tag: "Linearizable", order: stack.map((frame) => frame.entry.op) }
}

const makeList = <I, O>(history: ReadonlyArray<Operation<I, O>>): Entry => {
  const entries: Array<Entry> = []
  for (const [op, operation] of history.entries()) {
    const call: Entry = { kind: "call", op, time: operation.call, match: undefined, prev: undefined, next: undefined }
    const ret: Entry = {
      kind: "return",
      op,
      time: operation.outcome === "returned" ? operation.return : Number.POSITIVE_INFINITY,
      match: call,
      prev: undefined,
      next: undefined
    }
    call.match = ret
    entries.push(call, ret)
  }
  // At equal times calls come first: operations touching at an instant count as concurrent.
  entries.sort((a, b) => a.time - b.time || (a.kind === b.kind ? 0 : a.kind === "call" ? -1 : 1))
  const head: Entry = { kind: "call", op: -1, time: Number.NEGATIVE_INFINITY, match: undefined, prev: undefined, next: undefined }
  let last = head
  for (const entry of entries) {
    last.next = entry
    entry.prev = last
    last = entry
  }
  return head
}

/**
 * An operation on one key of a store.
 *
 * - `get`: returns the value or `null`.
 * - `has`: returns whether the key is present.
 * - `set`, `remove`: return `undefined`.
 * - `modify`: `modify(key, s => s + suffix)`: returns the new value, or `null` (writing nothing)
 *   when the key is absent.
 * - `setIfAbsent`: returns whether it wrote `value`.
 * - `modifyOrInit`: returns the value it saw (or `null`) and writes `init` when absent, the
 *   value seen + `suffix` when present.
 *
 * @since 0.1.0
 * @category register
 */
export type RegisterInput =
  | { readonly op: "get" }
  | { readonly op: "has" }
  | { readonly op: "set"; readonly value: string }
  | { readonly op: "remove" }
  | { readonly op: "modify"; readonly suffix: string }
  | { readonly op: "setIfAbsent"; readonly value: string }
  | { readonly op: "modifyOrInit"; readonly init: string; readonly suffix: string }

/**
 * @since 0.1.0
 * @category register
 */
export type RegisterOutput = string | null | boolean | undefined

/**
 * The sequential model of one key of a store: its value, or `null` when absent.
 *
 * @since 0.1.0
 * @category register
 */
export const register: Model<string | null, RegisterInput, RegisterOutput> = {
  initial: null,
  step: (state, input) => {
    switch (input.op) {
      case "get":
        return [state, state]
      case "has":
        return [state, state !== null]
      case "set":
        return [input.value, undefined]
      case "remove":
        return [null, undefined]
      case "modify":
        return state === null ? [null, null] : [state + input.suffix, state + input.suffix]
      case "setIfAbsent":
        return state === null ? [input.value, true] : [state, false]
      case "modifyOrInit":
        return [state === null ? input.init : state + input.suffix, state]
    }
  },
  equals: (a, b) => a === b,
  key: (state) => state === null ? "-" : `=${state}`
}

/**
 * A history as text, one operation a line in order of invocation, for failure reports.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatHistory = <I, O>(
  history: ReadonlyArray<Operation<I, O>>,
  describe: (input: I) => string,
  showOutput: (output: O) => string = (output) => JSON.stringify(output) ?? "undefined"
): string => {
  const time = (t: number) => t.toFixed(3).padStart(10)
  return history
    .map((op, index) => ({ op, index }))
    .sort((a, b) => a.op.call - b.op.call)
    .map(({ index, op }) =>
      `#${index} [${time(op.call)} .. ${op.outcome === "returned" ? time(op.return) : "         ?"}] ${
        op.process === undefined ? "" : `${op.process} `
      }${describe(op.input)} → ${op.outcome === "returned" ? showOutput(op.output) : "(unknown outcome)"}`
    )
    .join("\n")
}
