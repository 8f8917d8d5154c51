// The handoff family's invariants, on recorded runs written by hand: each broken promise is
// named, and correct runs (including the uncertain cases) pass.
import * as Handoff from "@durable-singleton/conformance/families/Handoff"
import { describe, expect, it } from "@effect/vitest"

type Event = Handoff.Event

const claim = (leader: string, lease: string, start: number, end: number, epoch: number, state: ReadonlyArray<string>): Event => ({
  kind: "claim",
  leader,
  lease,
  start,
  end,
  outcome: "ok",
  epoch,
  state
})
const write = (leader: string, lease: string, id: string, start: number, end: number, outcome: Handoff.Outcome): Event => ({
  kind: "write",
  leader,
  lease,
  id,
  start,
  end: outcome === "unknown" ? Number.POSITIVE_INFINITY : end,
  outcome
})
const clear = (leader: string, start: number, end: number): Event => ({ kind: "clear", leader, start, end, outcome: "ok" })

describe("handoff invariants", () => {
  it("accept a correct handoff, with the unknown write either seen or not", () => {
    const base = [
      claim("L0", "L0#1", 0, 1, 1, []),
      write("L0", "L0#1", "L0.1", 2, 3, "ok"),
      write("L0", "L0#1", "L0.2", 4, 5, "unknown"),
      claim("L1", "L1#1", 6, 7, 2, ["L0.1"]),
      write("L0", "L0#1", "L0.3", 8, 9, "rejected"),
      write("L1", "L1#1", "L1.1", 10, 11, "ok")
    ]
    expect(Handoff.invariants([...base, claim("L2", "L2#1", 12, 13, 3, ["L0.1", "L1.1"])])).toEqual([])
    expect(Handoff.invariants([
      ...base.map((e) => e.kind === "claim" && e.leader === "L1" ? { ...e, state: ["L0.1", "L0.2"] } : e),
      claim("L2", "L2#1", 12, 13, 3, ["L0.1", "L0.2", "L1.1"])
    ])).toEqual([])
  })

  it("report an acknowledged write the next leader did not see", () => {
    const problems = Handoff.invariants([
      claim("L0", "L0#1", 0, 1, 1, []),
      write("L0", "L0#1", "L0.1", 2, 3, "ok"),
      claim("L1", "L1#1", 4, 5, 2, [])
    ])
    expect(problems).toHaveLength(1)
    expect(problems[0]).toContain("did not see write L0.1")
  })

  it("report a write accepted from a superseded lease, or from one claimed before a clear", () => {
    expect(Handoff.invariants([
      claim("L0", "L0#1", 0, 1, 1, []),
      claim("L1", "L1#1", 2, 3, 2, []),
      write("L0", "L0#1", "L0.1", 4, 5, "ok")
    ]).join("\n")).toContain("a stale write was accepted")
    expect(Handoff.invariants([
      claim("L0", "L0#1", 0, 1, 1, []),
      clear("L1", 2, 3),
      write("L0", "L0#1", "L0.1", 4, 5, "ok")
    ]).join("\n")).toContain("after the clear by L1")
  })

  it("report a rejected write that landed, and a rejection nothing explains", () => {
    expect(Handoff.invariants([
      claim("L0", "L0#1", 0, 1, 1, []),
      claim("L1", "L1#1", 2, 3, 2, []),
      write("L0", "L0#1", "L0.1", 4, 5, "rejected"),
      claim("L2", "L2#1", 6, 7, 3, ["L0.1"])
    ]).join("\n")).toContain("a refused write landed")
    expect(Handoff.invariants([
      claim("L0", "L0#1", 0, 1, 1, []),
      write("L0", "L0#1", "L0.1", 2, 3, "rejected")
    ]).join("\n")).toContain("no other claim or clear could have superseded it")
  })

  it("report two claims with one epoch, and epochs going backwards", () => {
    expect(Handoff.invariants([
      claim("L0", "L0#1", 0, 3, 1, []),
      claim("L1", "L1#1", 1, 2, 1, [])
    ]).join("\n")).toContain("both got epoch 1")
    expect(Handoff.invariants([
      claim("L0", "L0#1", 0, 1, 2, []),
      claim("L1", "L1#1", 2, 3, 1, [])
    ]).join("\n")).toContain("epochs went backwards")
  })

  it("let a clear excuse lost writes and restart epochs", () => {
    expect(Handoff.invariants([
      claim("L0", "L0#1", 0, 1, 1, []),
      write("L0", "L0#1", "L0.1", 2, 3, "ok"),
      clear("L1", 4, 5),
      claim("L1", "L1#1", 6, 7, 1, [])
    ])).toEqual([])
  })

  it("report writes seen out of order, twice, or before they started", () => {
    const problems = Handoff.invariants([
      claim("L0", "L0#1", 0, 1, 1, []),
      write("L0", "L0#1", "L0.1", 2, 3, "ok"),
      write("L0", "L0#1", "L0.2", 4, 5, "ok"),
      claim("L1", "L1#1", 6, 7, 2, ["L0.2", "L0.1", "L0.1"]),
      write("L1", "L1#1", "L1.1", 9, 10, "unknown"),
      claim("L2", "L2#1", 6, 8, 3, ["L0.1", "L0.2", "L1.1"])
    ]).join("\n")
    expect(problems).toContain("found L0.2 before L0.1")
    expect(problems).toContain("found write L0.1 twice")
    expect(problems).toContain("which started only after it")
  })
})
