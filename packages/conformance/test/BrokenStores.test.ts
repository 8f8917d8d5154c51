import { BrokenStores, Conformance, MemorySubject, Subject } from "@durable-singleton/conformance"
import { MemoryStore } from "@durable-singleton/core"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Hostile from "../src/internal/hostile.js"

// Short timeouts: the hanging store costs one operation timeout per shrinking step.
const fast = { operationTimeout: "500 millis", shrinkTimeLimit: "1 second" } as const

const failuresOf = (report: Conformance.Report) => report.results.filter((result) => result.status === "failed")

// One seed for the file: each broken store must fail where the correct store it is built on
// passes, on the same inputs.
const seed = Conformance.randomSeed()

describe(`the suite rejects every broken store with the family meant to catch it (seed ${seed})`, () => {
  it.effect("the correct store the broken ones are built on passes every family with this seed", () =>
    Effect.gen(function*() {
      const report = yield* Conformance.run(MemorySubject.subject, { ...fast, seed })
      expect(Conformance.passed(report), Conformance.formatReport(report)).toBe(true)
      expect(report.results.every((result) => result.status === "passed")).toBe(true)
    }))

  for (const broken of BrokenStores.all) {
    it.effect(`${broken.subject.name} is caught by ${broken.caughtBy}`, () =>
      Effect.gen(function*() {
        const report = yield* Conformance.run(broken.subject, { ...fast, seed, only: broken.caughtBy })
        const failures = failuresOf(report)
        expect(failures.length, Conformance.formatReport(report)).toBeGreaterThan(0)
        for (const failure of failures) {
          // A violation found on an input, not a subject that could not even be set up.
          expect(failure.message).not.toMatch(/^could not (acquire storage|open a client|disrupt|run the property)/)
          expect(failure.seed).toBe(seed)
          expect(failure.counterexample).toBeTruthy()
          expect(failure.replay).toContain(`--seed ${seed}`)
          expect(failure.replay).toContain(`--only ${failure.family}/${failure.check}`)
          expect(Conformance.formatFailure(failure)).toContain(failure.replay!)
        }
      }))
  }

  // The README's claim: keys crafted to collide after naive prefixing, whatever the separator.
  for (const separator of Hostile.separators) {
    for (const doubleSeparatorsInNamespace of separator === "" ? [false] : [false, true]) {
      const broken = BrokenStores.namespaceJoinedWith(separator, { doubleSeparatorsInNamespace })
      it.effect(`${broken.subject.name} is caught by namespaces`, () =>
        Effect.gen(function*() {
          const report = yield* Conformance.run(broken.subject, { ...fast, seed, only: "namespaces" })
          expect(failuresOf(report).length, Conformance.formatReport(report)).toBe(1)
        }))
    }
  }
})

describe("replaying a failure", () => {
  it.effect("seed and path replay the shrunk counterexample of a model-based failure in one run", () =>
    Effect.gen(function*() {
      const subject = BrokenStores.sizeCountsDeleted.subject
      const report = yield* Conformance.run(subject, { only: "model/commands" })
      const [failure] = failuresOf(report)
      expect(failure?.path).toMatch(/^[\d:]+@/)
      const replayed = yield* Conformance.run(subject, { only: "model/commands", seed: failure!.seed, path: failure!.path! })
      const [again] = failuresOf(replayed)
      expect(again?.counterexample).toBe(failure!.counterexample)
      expect(again?.message).toBe(failure!.message)
      expect(again?.runs).toBe(1)
    }))

  it.effect("the same seed generates the same inputs", () =>
    Effect.gen(function*() {
      const subject = BrokenStores.dropsEmptyStrings.subject
      const first = yield* Conformance.run(subject, { only: "fidelity/hostile-values", seed: 42 })
      const second = yield* Conformance.run(subject, { only: "fidelity/hostile-values", seed: 42 })
      expect(failuresOf(first)[0]?.counterexample).toBeTruthy()
      expect(failuresOf(second)[0]?.counterexample).toBe(failuresOf(first)[0]?.counterexample)
      expect(failuresOf(second)[0]?.path).toBe(failuresOf(first)[0]?.path)
    }))
})

describe("capabilities and options", () => {
  it.effect("a capability the subject does not claim is reported as not claimed, never silently skipped", () =>
    Effect.gen(function*() {
      const subject = Subject.make({
        name: "memory, one namespace per storage",
        acquire: Effect.sync(MemoryStore.makeStorage),
        client: (storage, { namespace }) => MemoryStore.make({ storage, namespace }),
        capabilities: { namespaces: false }
      })
      const only = ["namespaces", "atomicity/missing-key", "errors/disruption", "errors/recovery"]
      const report = yield* Conformance.run(subject, { only, runs: 2 })
      expect(report.results.map((result) => [`${result.family}/${result.check}`, result.status, result.capability])).toEqual([
        ["namespaces/isolation", "not-claimed", "namespaces"],
        ["atomicity/missing-key", "passed", undefined],
        ["errors/disruption", "not-claimed", "disruption"],
        ["errors/recovery", "not-claimed", "recovery"]
      ])
      expect(Conformance.passed(report)).toBe(true)
      const table = Conformance.formatReport(report)
      expect(table).toMatch(/namespaces\s+0\/0\s+.*not claimed \(capability "namespaces"\)/)
      expect(table).toMatch(/errors\s+0\/0\s+.*not claimed \(capability "disruption"\)/)
    }))

  it.effect("a subject that can disrupt its backend but whose clients do not recover claims disruption only", () =>
    Effect.gen(function*() {
      const subject = Subject.make({ ...MemorySubject.subject, name: "memory, no recovery", capabilities: { recovery: false } })
      expect(subject.capabilities).toEqual({ namespaces: true, disruption: true, recovery: false })
      const report = yield* Conformance.run(subject, { only: ["errors/disruption", "errors/recovery"], runs: 2 })
      expect(report.results.map((result) => result.status)).toEqual(["passed", "not-claimed"])
    }))

  it.effect("a subject whose storage cannot be acquired fails every check instead of skipping it", () =>
    Effect.gen(function*() {
      const subject = Subject.make({
        name: "unreachable",
        acquire: Effect.fail(new Error("connection refused")),
        client: (_: never) => Effect.die("unreachable")
      })
      const report = yield* Conformance.run(subject, { only: "atomicity", runs: 2, shrinkTimeLimit: 0 })
      expect(report.results.every((result) => result.status === "failed")).toBe(true)
      expect(report.results[0]?.message).toContain("could not acquire storage")
      expect(report.results[0]?.message).toContain("connection refused")
      // No input is to blame for a setup failure: nothing to shrink.
      expect(report.results[0]?.shrinks).toBe(0)
    }))

  it.effect("unknown families, checks and bad options are typed errors", () =>
    Effect.gen(function*() {
      const memory = BrokenStores.dropsEmptyStrings.subject
      const unknown = yield* Effect.flip(Conformance.run(memory, { only: "atomicty" }))
      expect(unknown.message).toContain(`"atomicty"`)
      expect((yield* Effect.flip(Conformance.run(memory, { runs: 0 }))).message).toContain("runs")
      expect((yield* Effect.flip(Conformance.run(memory, { operationTimeout: "soon" as never }))).message)
        .toContain("operationTimeout must be a duration")
      expect((yield* Effect.flip(Conformance.run(memory, { path: "x" }))).message).toContain("path")
      expect((yield* Effect.flip(Conformance.run(memory, { path: "0:1", only: "atomicity" }))).message)
        .toContain("a path replays one check")
    }))

  it("lists every check under exactly the seven families of the issue", () => {
    expect(Conformance.families.map((family) => family.id)).toEqual([
      "model",
      "fidelity",
      "namespaces",
      "atomicity",
      "linearizability",
      "handoff",
      "errors"
    ])
    for (const family of Conformance.families) expect(family.checks.length).toBeGreaterThan(0)
  })
})
