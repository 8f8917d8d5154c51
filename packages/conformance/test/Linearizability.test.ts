import { Linearizability } from "@durable-singleton/conformance"
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"

type Input = Linearizability.RegisterInput
type Output = Linearizability.RegisterOutput
type Op = Linearizability.Operation<Input, Output>

const returned = (input: Input, call: number, ret: number, output: Output, process?: string): Op => ({
  input,
  call,
  return: ret,
  outcome: "returned",
  output,
  ...(process === undefined ? {} : { process })
})
const unknown = (input: Input, call: number): Op => ({ input, call, outcome: "unknown" })

const check = (history: ReadonlyArray<Op>) => Linearizability.check(Linearizability.register, history)

describe("Linearizability.check on known histories", () => {
  it("accepts a sequential history the register explains", () => {
    const result = check([
      returned({ op: "get" }, 0, 1, null),
      returned({ op: "set", value: "a" }, 2, 3, undefined),
      returned({ op: "modify", suffix: "+b" }, 4, 5, "a+b"),
      returned({ op: "has" }, 6, 7, true),
      returned({ op: "setIfAbsent", value: "x" }, 8, 9, false),
      returned({ op: "modifyOrInit", init: "i", suffix: "+c" }, 10, 11, "a+b"),
      returned({ op: "remove" }, 12, 13, undefined),
      returned({ op: "modify", suffix: "+d" }, 14, 15, null),
      returned({ op: "modifyOrInit", init: "i", suffix: "+e" }, 16, 17, null),
      returned({ op: "get" }, 18, 19, "i")
    ])
    expect(result).toEqual({ _tag: "Linearizable", order: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] })
  })

  it("orders overlapping operations either way, as their results require", () => {
    // The read overlaps the write and saw it: the write is linearized first.
    const result = check([
      returned({ op: "set", value: "a" }, 0, 10, undefined),
      returned({ op: "get" }, 1, 2, "a")
    ])
    expect(result).toEqual({ _tag: "Linearizable", order: [0, 1] })
  })

  it("rejects a stale read: a value read after a later write returned", () => {
    const result = check([
      returned({ op: "set", value: "a" }, 0, 1, undefined),
      returned({ op: "set", value: "b" }, 2, 3, undefined),
      returned({ op: "get" }, 4, 5, "a")
    ])
    expect(result._tag).toBe("NotLinearizable")
    if (result._tag === "NotLinearizable") {
      expect(result.longestPrefix).toEqual([0, 1])
      expect(result.pending).toEqual([2])
    }
  })

  it("rejects a lost update: two concurrent modifies that both worked from the same value", () => {
    const result = check([
      returned({ op: "set", value: "a" }, 0, 1, undefined),
      returned({ op: "modify", suffix: "+1" }, 2, 10, "a+1"),
      returned({ op: "modify", suffix: "+2" }, 3, 9, "a+2")
    ])
    expect(result._tag).toBe("NotLinearizable")
  })

  it("rejects two winners of a create-if-absent race", () => {
    const result = check([
      returned({ op: "setIfAbsent", value: "a" }, 0, 10, true),
      returned({ op: "setIfAbsent", value: "b" }, 1, 9, true)
    ])
    expect(result._tag).toBe("NotLinearizable")
  })

  it("rejects a value nobody wrote", () => {
    expect(check([returned({ op: "get" }, 0, 1, "ghost")])._tag).toBe("NotLinearizable")
  })

  it("rejects a modify that wrote to a missing key", () => {
    expect(check([
      returned({ op: "modify", suffix: "+x" }, 0, 1, null),
      returned({ op: "get" }, 2, 3, "+x")
    ])._tag).toBe("NotLinearizable")
  })

  it("lets an operation with an unknown outcome take effect, or not, but only after its invocation", () => {
    const interruptedSet = unknown({ op: "set", value: "x" }, 5)
    expect(check([interruptedSet, returned({ op: "get" }, 6, 7, "x")])._tag).toBe("Linearizable")
    expect(check([interruptedSet, returned({ op: "get" }, 6, 7, null)])._tag).toBe("Linearizable")
    // It may even land later than a read that missed it.
    expect(check([interruptedSet, returned({ op: "get" }, 6, 7, null), returned({ op: "get" }, 8, 9, "x")])._tag)
      .toBe("Linearizable")
    // But not before it was invoked.
    expect(check([returned({ op: "get" }, 0, 1, "x"), unknown({ op: "set", value: "x" }, 2)])._tag).toBe("NotLinearizable")
    // And it takes effect at most once, as itself.
    expect(check([
      returned({ op: "set", value: "a" }, 0, 1, undefined),
      unknown({ op: "modify", suffix: "+1" }, 2),
      returned({ op: "get" }, 3, 4, "a+1+1")
    ])._tag).toBe("NotLinearizable")
  })

  it("reports histories beyond its step budget as inconclusive, not as linearizable", () => {
    const history = Array.from({ length: 12 }, (_, i) => returned({ op: "set", value: `v${i}` }, 0, 100, undefined))
    expect(check([...history, returned({ op: "get" }, 101, 102, "never")])._tag).toBe("NotLinearizable")
    expect(Linearizability.check(Linearizability.register, [...history, returned({ op: "get" }, 101, 102, "never")], { maxSteps: 10 })._tag)
      .toBe("Inconclusive")
  })
})

// Histories generated from a known linearization (a point inside each operation's interval)
// are linearizable; changing one read to a value nobody wrote makes them not.
const input: fc.Arbitrary<Input> = fc.oneof(
  fc.constant<Input>({ op: "get" }),
  fc.constant<Input>({ op: "has" }),
  fc.constant<Input>({ op: "remove" }),
  fc.constantFrom("a", "b", "c").map((value): Input => ({ op: "set", value })),
  fc.constantFrom("a", "b").map((value): Input => ({ op: "setIfAbsent", value })),
  fc.constantFrom("+1", "+2").map((suffix): Input => ({ op: "modify", suffix })),
  fc.constantFrom("i", "j").map((init): Input => ({ op: "modifyOrInit", init, suffix: "+m" }))
)

const history = fc.array(
  fc.record({ input, call: fc.integer({ min: 0, max: 100 }), width: fc.integer({ min: 0, max: 30 }), at: fc.double({ min: 0, max: 1, noNaN: true }), interrupted: fc.boolean(), landed: fc.boolean() }),
  { minLength: 1, maxLength: 14 }
).map((ops) => {
  const points = ops.map((op, index) => ({ index, point: op.call + op.at * op.width })).sort((a, b) => a.point - b.point)
  let state: string | null = null
  const outputs = new Map<number, Output>()
  for (const { index } of points) {
    const op = ops[index]!
    if (op.interrupted && !op.landed) continue
    const [next, output] = Linearizability.register.step(state, op.input)
    state = next
    outputs.set(index, output)
  }
  return ops.map((op, index): Op =>
    op.interrupted ? unknown(op.input, op.call) : returned(op.input, op.call, op.call + op.width, outputs.get(index))
  )
})

describe("Linearizability.check on generated histories", () => {
  it("accepts every history generated from a linearization", () => {
    fc.assert(fc.property(history, (history) => {
      expect(check(history)._tag).toBe("Linearizable")
    }), { numRuns: 300 })
  })

  it("rejects a history once one of its reads returns a value nobody wrote", () => {
    fc.assert(fc.property(history, fc.nat(), (history, pick) => {
      const reads = history.flatMap((op, index) => op.outcome === "returned" && op.input.op === "get" ? [index] : [])
      fc.pre(reads.length > 0)
      const target = reads[pick % reads.length]!
      const corrupted = history.map((op, index) => index === target && op.outcome === "returned" ? { ...op, output: "never written" } : op)
      expect(check(corrupted)._tag).toBe("NotLinearizable")
    }), { numRuns: 300 })
  })
})
