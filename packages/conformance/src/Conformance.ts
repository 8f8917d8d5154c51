/**
 * The conformance suite, independent of any test runner: families of named checks, each a
 * fast-check property run on fresh storage with several clients of the subject, and readable
 * results (seed, path, shrunk counterexample and the command that replays a failure).
 *
 * Use it through `@durable-singleton/conformance/Vitest` (one call registers every check as a
 * test) or the `durable-singleton-conformance` CLI; or run it yourself:
 *
 * @example
 * ```ts
 * import { Conformance, Subject } from "@durable-singleton/conformance"
 * import { MemoryStore } from "@durable-singleton/core"
 * import { Effect } from "effect"
 *
 * const subject = Subject.make({
 *   name: "memory",
 *   acquire: Effect.sync(MemoryStore.makeStorage),
 *   client: (storage, { namespace }) => MemoryStore.make({ storage, namespace })
 * })
 *
 * const report = await Effect.runPromise(Conformance.run(subject, { runs: 20 }))
 * console.log(Conformance.formatReport(report))
 * ```
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Atomicity from "./families/Atomicity.js"
import * as Fidelity from "./families/Fidelity.js"
import * as Handoff from "./families/Handoff.js"
import * as LinearizabilityFamily from "./families/Linearizability.js"
import * as ModelBased from "./families/ModelBased.js"
import * as Namespaces from "./families/Namespaces.js"
import * as TypedErrors from "./families/TypedErrors.js"
import type * as Internal from "./internal/check.js"
import type * as Subject from "./Subject.js"

/**
 * The identifier of a family of checks.
 *
 * @since 0.1.0
 * @category models
 */
export type FamilyId = Internal.FamilyId

/**
 * A named check: one fast-check property.
 *
 * @since 0.1.0
 * @category models
 */
export interface Check {
  readonly family: FamilyId
  readonly name: string
  /** What it asserts, in one sentence. */
  readonly description: string
  /** A capability the subject must claim for the check to run. */
  readonly requires: Subject.Capability | undefined
  /** Runs per property when {@link Options.runs} is not given. */
  readonly defaultRuns: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Family {
  readonly id: FamilyId
  readonly title: string
  readonly description: string
  readonly checks: ReadonlyArray<Check>
}

const family = (id: FamilyId, title: string, description: string, checks: ReadonlyArray<Internal.Check>) => ({
  id,
  title,
  description,
  checks
})

const allFamilies = [
  family("model", "Model-based", "random command sequences over several clients agree with a Map", ModelBased.checks),
  family("fidelity", "Fidelity", "hostile keys and values round-trip exactly and never alias", Fidelity.checks),
  family("namespaces", "Namespace isolation", "namespaces never see each other, even when their names overlap", Namespaces.checks),
  family("atomicity", "Atomicity", "concurrent modify loses no update; create-if-absent has one winner", Atomicity.checks),
  family("linearizability", "Linearizability", "concurrent histories over several clients are linearizable", LinearizabilityFamily.checks),
  family("handoff", "Leader handoff", "fenced state over the store survives handoff; stale leaders never write", Handoff.checks),
  family("errors", "Typed errors", "failures are typed, never defects or hangs; interrupted writes leave no partial value; a throwing f fails only its own call", TypedErrors.checks)
] as const

/**
 * Every family, in the order they run.
 *
 * @since 0.1.0
 * @category families
 */
export const families: ReadonlyArray<Family> = allFamilies

const implementations = new Map<string, Internal.Check>(
  allFamilies.flatMap((family) => family.checks.map((check) => [`${family.id}/${check.name}`, check] as const))
)

/**
 * The `family/check` name of a check, as `only` and the CLI's `--only` accept it.
 *
 * @since 0.1.0
 * @category families
 */
export const checkId = (check: Pick<Check, "family" | "name">): string => `${check.family}/${check.name}`

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Runs per property, for every check (default: each check's own, 4 to 50). */
  readonly runs?: number
  /** The fast-check seed (default: random; every result reports the one used). */
  readonly seed?: number
  /** Replays one counterexample: the `path` of a failed result (use with its seed and `only`). */
  readonly path?: string
  /** Families (`"atomicity"`) or checks (`"atomicity/concurrent-modify"`) to run; default all. */
  readonly only?: string | ReadonlyArray<string>
  /** How long one property run may take before it counts as hung (default 20 s). */
  readonly runTimeout?: Duration.DurationInput
  /** How long one operation may take before it counts as hung, where checks time them (default 5 s). */
  readonly operationTimeout?: Duration.DurationInput
  /** Time spent shrinking a failure before reporting the smallest counterexample so far (default 20 s). */
  readonly shrinkTimeLimit?: Duration.DurationInput
  /** The subject module, for replay commands (the CLI sets it). */
  readonly module?: string
  /** Called after each check, e.g. to print progress. */
  readonly onResult?: (result: CheckResult) => void
}

/**
 * @since 0.1.0
 * @category models
 */
export type Status = "passed" | "failed" | "not-claimed"

/**
 * @since 0.1.0
 * @category models
 */
export interface CheckResult {
  readonly subject: string
  readonly family: FamilyId
  readonly check: string
  readonly description: string
  readonly status: Status
  /** The seed the check ran with. */
  readonly seed: number
  /** Property runs executed (shrinking not included). */
  readonly runs: number
  readonly durationMs: number
  /** For `not-claimed`: the capability the subject does not declare. */
  readonly capability?: Subject.Capability
  /** For `failed`: what went wrong. */
  readonly message?: string
  /** For `failed`: the shrunk counterexample, as fast-check prints it. */
  readonly counterexample?: string
  /** For `failed`: the path of the counterexample, to replay it. */
  readonly path?: string
  readonly shrinks?: number
  /** For `failed`: the command that replays the counterexample. */
  readonly replay?: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Report {
  readonly subject: string
  readonly seed: number
  readonly runs: number | undefined
  readonly results: ReadonlyArray<CheckResult>
  readonly durationMs: number
}

/**
 * An unusable option (an unknown family or check in `only`, a run count that is not a positive
 * integer, …).
 *
 * @since 0.1.0
 * @category errors
 */
export class ConformanceError extends Data.TaggedError("ConformanceError")<{ readonly message: string }> {}

/**
 * The checks `only` selects (all when absent), in suite order. With `path` (a replay), `only`
 * must name exactly one check.
 *
 * @since 0.1.0
 * @category families
 */
export const selectChecks = (
  options: Pick<Options, "only" | "path"> = {}
): Either.Either<ReadonlyArray<Check>, ConformanceError> => {
  const all = allFamilies.flatMap((family) => family.checks)
  const only = options.only
  const names = only === undefined
    ? undefined
    : (typeof only === "string" ? [only] : only).flatMap((name) => name.split(",")).map((name) => name.trim()).filter((name) => name !== "")
  if (names !== undefined) {
    const unknown = names.filter((name) => !allFamilies.some((family) => family.id === name) && !implementations.has(name))
    if (unknown.length > 0 || names.length === 0) {
      return Either.left(
        new ConformanceError({
          message: `unknown family or check ${unknown.map((name) => JSON.stringify(name)).join(", ") || "(none given)"}; ` +
            `families: ${allFamilies.map((family) => family.id).join(", ")}; checks look like "atomicity/concurrent-modify"`
        })
      )
    }
  }
  const selected = names === undefined ? all : all.filter((check) => names.includes(check.family) || names.includes(checkId(check)))
  if (options.path !== undefined && selected.length !== 1) {
    return Either.left(
      new ConformanceError({
        message: `a path replays one check: select it with only, e.g. "${checkId(selected[0] ?? all[0]!)}" (as the failure's replay command does)`
      })
    )
  }
  return Either.right(selected)
}

/**
 * A random seed, as fast-check takes them.
 *
 * @since 0.1.0
 * @category options
 */
export const randomSeed = (): number => Math.floor(Math.random() * 0x7fffffff)

const validate = (options: Options): Either.Either<Options, ConformanceError> => {
  const invalid = (message: string) => Either.left(new ConformanceError({ message }))
  if (options.runs !== undefined && !(Number.isSafeInteger(options.runs) && options.runs > 0)) {
    return invalid(`runs must be a positive integer, got ${options.runs}`)
  }
  if (options.seed !== undefined && !Number.isSafeInteger(options.seed)) return invalid(`seed must be an integer, got ${options.seed}`)
  for (const name of ["runTimeout", "operationTimeout", "shrinkTimeLimit"] as const) {
    const input = options[name]
    if (input !== undefined && Option.isNone(Duration.decodeUnknown(input))) {
      return invalid(`${name} must be a duration (e.g. 500, "2 seconds"), got ${JSON.stringify(input)}`)
    }
  }
  if (options.path !== undefined && !/^\d+(:\d+)*(@.*)?$/.test(options.path)) {
    return invalid(`path must look like "3:0:1" (as a failure reports it), got ${JSON.stringify(options.path)}`)
  }
  return Either.right(options)
}

/**
 * Runs one check on a subject. A check needing a capability the subject does not claim is
 * reported `not-claimed` without running.
 *
 * @since 0.1.0
 * @category running
 */
export const runCheck = <S>(subject: Subject.Subject<S>, check: Check, options: Options = {}): Effect.Effect<CheckResult, ConformanceError> =>
  Effect.flatMap(validate(options), (options) =>
    Effect.suspend(() => {
      const implementation = implementations.get(checkId(check))
      if (implementation === undefined) return Effect.fail(new ConformanceError({ message: `unknown check ${checkId(check)}` }))
      const seed = options.seed ?? randomSeed()
      const base = {
        subject: subject.name,
        family: check.family,
        check: check.name,
        description: check.description,
        seed
      }
      if (check.requires !== undefined && !subject.capabilities[check.requires]) {
        return Effect.succeed<CheckResult>({ ...base, status: "not-claimed", runs: 0, durationMs: 0, capability: check.requires })
      }
      const started = performance.now()
      return Effect.map(
        Effect.promise(() =>
          implementation.run(subject, {
            seed,
            runs: options.runs,
            path: options.path,
            runTimeout: Duration.decode(options.runTimeout ?? "20 seconds"),
            operationTimeout: Duration.decode(options.operationTimeout ?? "5 seconds"),
            shrinkTimeLimit: Duration.decode(options.shrinkTimeLimit ?? "20 seconds")
          })
        ),
        (outcome): CheckResult => {
          const durationMs = performance.now() - started
          if (!outcome.failed) return { ...base, status: "passed", runs: outcome.runs, durationMs }
          const failed: CheckResult = {
            ...base,
            status: "failed",
            runs: outcome.runs,
            durationMs,
            message: outcome.message,
            shrinks: outcome.shrinks,
            ...(outcome.counterexample === undefined ? {} : { counterexample: outcome.counterexample }),
            ...(outcome.path === undefined ? {} : { path: outcome.path })
          }
          return { ...failed, replay: replayCommand(failed, options.module) }
        }
      )
    }))

/**
 * Runs the selected checks (all by default) one after the other, with one seed.
 *
 * @since 0.1.0
 * @category running
 */
export const run = <S>(subject: Subject.Subject<S>, options: Options = {}): Effect.Effect<Report, ConformanceError> =>
  Effect.gen(function*() {
    yield* validate(options)
    const checks = yield* selectChecks(options)
    const seed = options.seed ?? randomSeed()
    const started = performance.now()
    const results: Array<CheckResult> = []
    for (const check of checks) {
      const result = yield* runCheck(subject, check, { ...options, seed })
      options.onResult?.(result)
      results.push(result)
    }
    return { subject: subject.name, seed, runs: options.runs, results, durationMs: performance.now() - started }
  })

/**
 * Whether every check passed or was not claimed.
 *
 * @since 0.1.0
 * @category results
 */
export const passed = (report: Report): boolean => report.results.every((result) => result.status !== "failed")

const quote = (arg: string) => /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`

/**
 * The CLI command that replays a failed result's counterexample.
 *
 * @since 0.1.0
 * @category results
 */
export const replayCommand = (result: Pick<CheckResult, "family" | "check" | "seed" | "path">, module?: string): string =>
  [
    "durable-singleton-conformance",
    quote(module ?? "<your-subject-module>"),
    "--seed",
    String(result.seed),
    ...(result.path === undefined ? [] : ["--path", quote(result.path)]),
    "--only",
    quote(`${result.family}/${result.check}`)
  ].join(" ")

const indent = (text: string, prefix = "    ") => text.split("\n").map((line) => prefix + line).join("\n")

/**
 * A failed result as text: what failed, why, the shrunk counterexample and how to replay it.
 *
 * @since 0.1.0
 * @category results
 */
export const formatFailure = (result: CheckResult): string =>
  [
    `FAILED ${result.family}/${result.check} on "${result.subject}" (seed ${result.seed}${
      result.path === undefined ? "" : `, path ${result.path}`
    }, after ${result.runs} run${result.runs === 1 ? "" : "s"}${result.shrinks ? ` and ${result.shrinks} shrinks` : ""})`,
    `  checks that: ${result.description}`,
    `  failure:`,
    indent(result.message ?? "(no message)"),
    ...(result.counterexample === undefined ? [] : ["  counterexample:", indent(result.counterexample)]),
    `  replay: ${result.replay ?? replayCommand(result)}`
  ].join("\n")

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/**
 * A per-family table (passed, failed, not claimed), followed by every failure.
 *
 * @since 0.1.0
 * @category results
 */
export const formatReport = (report: Report): string => {
  const rows = allFamilies.flatMap((family) => {
    const results = report.results.filter((result) => result.family === family.id)
    if (results.length === 0) return []
    const failed = results.filter((result) => result.status === "failed")
    const notClaimed = results.filter((result) => result.status === "not-claimed")
    const ran = results.length - notClaimed.length
    const status = failed.length > 0
      ? `FAILED (${failed.map((result) => result.check).join(", ")})`
      : notClaimed.length === results.length
      ? `not claimed (capability "${notClaimed[0]!.capability}")`
      : notClaimed.length > 0
      ? `passed; not claimed: ${notClaimed.map((result) => result.check).join(", ")}`
      : "passed"
    const time = seconds(results.reduce((total, result) => total + result.durationMs, 0))
    return [[family.id, `${ran - failed.length}/${ran}`, time, status]]
  })
  const header = ["family", "passed", "time", "result"]
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((cell, i) => i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)).join("  ")
  const count = (status: Status) => report.results.filter((result) => result.status === status).length
  const failures = report.results.filter((result) => result.status === "failed")
  return [
    `conformance of "${report.subject}" · seed ${report.seed} · ${report.runs === undefined ? "default runs" : `${report.runs} runs per property`}`,
    "",
    line(header),
    ...rows.map(line),
    "",
    `${report.results.length} checks in ${seconds(report.durationMs)}: ${count("passed")} passed, ${count("failed")} failed, ${count("not-claimed")} not claimed`,
    ...failures.flatMap((failure) => ["", formatFailure(failure)])
  ].join("\n")
}
