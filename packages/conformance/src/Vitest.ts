/**
 * Registers the conformance suite in vitest: one `describe` per family, one test per check.
 * This is the only module of the package that imports vitest (an optional peer dependency).
 *
 * A failing test prints the seed, the shrunk counterexample and how to replay it: set
 * `CONFORMANCE_SEED`, `CONFORMANCE_PATH` and `CONFORMANCE_ONLY` (and optionally
 * `CONFORMANCE_RUNS`) in the environment to override the options given in code, without
 * editing the test file.
 *
 * @example
 * ```ts
 * // test/MyStore.test.ts
 * import * as Vitest from "@durable-singleton/conformance/Vitest"
 * import subject from "./my-store-subject.js"
 *
 * Vitest.runConformance(subject, { runs: 20 })
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { describe, it } from "vitest"
import * as Conformance from "./Conformance.js"
import type * as Subject from "./Subject.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options extends Conformance.Options {
  /** Timeout of each test (one check), in milliseconds (default 120 000). */
  readonly timeout?: number
}

const fromEnvironment = (): Conformance.Options => {
  const env = process.env
  const integer = (name: string): number | undefined => {
    const raw = env[name]
    if (raw === undefined || raw === "") return undefined
    const n = Number(raw)
    if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(raw)}`)
    return n
  }
  const seed = integer("CONFORMANCE_SEED")
  const runs = integer("CONFORMANCE_RUNS")
  const path = env.CONFORMANCE_PATH
  const only = env.CONFORMANCE_ONLY
  return {
    ...(seed === undefined ? {} : { seed }),
    ...(runs === undefined ? {} : { runs }),
    ...(path === undefined || path === "" ? {} : { path }),
    ...(only === undefined || only === "" ? {} : { only })
  }
}

const replayHint = (result: Conformance.CheckResult, file: string | undefined) =>
  `  replay in vitest: CONFORMANCE_SEED=${result.seed}${result.path === undefined ? "" : ` CONFORMANCE_PATH='${result.path}'`} ` +
  `CONFORMANCE_ONLY=${result.family}/${result.check} npx vitest run ${file ?? "<this test file>"}`

/**
 * Registers every selected check of the suite against `subject` as a vitest test, grouped in
 * one `describe` per family inside a `describe` named after the subject. A check needing a
 * capability the subject does not claim is listed too, as a test whose name says "NOT CLAIMED"
 * and which only confirms that the suite reports it so (not a skip: nothing that applies to the
 * subject is left out).
 *
 * @since 0.1.0
 * @category registration
 */
export const runConformance = <S>(subject: Subject.Subject<S>, options: Options = {}): void => {
  const settings: Conformance.Options = { ...options, ...fromEnvironment() }
  const selected = Either.getOrThrowWith(Conformance.selectChecks(settings), (error) => new Error(error.message))
  // One seed for the whole suite, chosen now, so that every failure names it.
  const seed = settings.seed ?? Conformance.randomSeed()
  const timeout = options.timeout ?? 120_000
  describe(`conformance: ${subject.name}`, () => {
    for (const family of Conformance.families) {
      const checks = selected.filter((check) => check.family === family.id)
      if (checks.length === 0) continue
      describe(`${family.id}: ${family.title}`, () => {
        for (const check of checks) {
          const notClaimed = check.requires !== undefined && !subject.capabilities[check.requires]
          const name = notClaimed
            ? `${check.name} — NOT CLAIMED: the subject does not declare "${check.requires}", so the check does not run`
            : check.name
          it(name, async (context) => {
            const result = await Effect.runPromise(Conformance.runCheck(subject, check, { ...settings, seed }))
            if (result.status === "failed") {
              throw new Error(`${Conformance.formatFailure(result)}\n${replayHint(result, context.task.file?.filepath)}`)
            }
            if (notClaimed !== (result.status === "not-claimed")) {
              throw new Error(`expected the check to be ${notClaimed ? "not claimed" : "run"}, the suite reported it ${result.status}`)
            }
          }, timeout)
        }
      })
    }
  })
}
