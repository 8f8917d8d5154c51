/**
 * The `durable-singleton-conformance` command: loads a module whose default export is a subject,
 * runs the suite against it, prints a table per family and every failure with its replay
 * command. Exit status: 0 when every check passed, 1 when one failed, 2 on a usage or load error.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { existsSync } from "node:fs"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { tsImport } from "tsx/esm/api"
import * as Conformance from "./Conformance.js"
import * as Subject from "./Subject.js"

const usage = `usage: durable-singleton-conformance <module> [--runs N] [--seed S] [--only FAMILY[/CHECK],...] [--path P]
       durable-singleton-conformance --list

Loads <module> (TypeScript or JavaScript) whose default export is a subject
(Subject.make from @durable-singleton/conformance), runs the conformance suite against it
and prints a pass/fail table per family.

  --runs N      runs per property, for every check (default: each check's own)
  --seed S      fast-check seed (default: random; printed)
  --only NAMES  families or family/check names, comma-separated (see --list)
  --path P      replay one counterexample: pass it with the --seed and --only of the failure
  --list        list the families and their checks
  -h, --help    show this help

Exit status: 0 when every check passed, 1 when a check failed, 2 on a usage or load error.`

// `usage: false` for errors about the module rather than the command line.
class UsageError extends Error {
  constructor(message: string, readonly usage = true) {
    super(message)
  }
}

const integer = (name: string, raw: string | undefined, positive: boolean): number | undefined => {
  if (raw === undefined) return undefined
  const n = Number(raw)
  if (raw.trim() === "" || !Number.isSafeInteger(n) || (positive && n <= 0)) {
    throw new UsageError(`--${name} must be ${positive ? "a positive integer" : "an integer"}, got ${JSON.stringify(raw)}`)
  }
  return n
}

const load = async (specifier: string): Promise<Subject.Subject<unknown>> => {
  const file = Path.resolve(specifier)
  if (!existsSync(file)) throw new UsageError(`cannot find the subject module ${specifier} (looked for ${file})`, false)
  const url = pathToFileURL(file).href
  let module: unknown
  try {
    module = await import(url).catch((error: unknown) =>
      // TypeScript without a loader in this process (the usual case): load it through tsx.
      (error as { readonly code?: unknown } | undefined)?.code === "ERR_UNKNOWN_FILE_EXTENSION"
        ? tsImport(url, import.meta.url)
        : Promise.reject(error)
    )
  } catch (error) {
    throw new UsageError(
      `could not load the subject module ${specifier}:\n${error instanceof Error ? error.stack ?? error.message : String(error)}`,
      false
    )
  }
  const exported = (module as { readonly default?: unknown }).default
  if (Subject.isSubject(exported)) return exported
  // A CommonJS module compiled from `export default` nests it once more.
  const nested = (exported as { readonly default?: unknown } | undefined)?.default
  if (Subject.isSubject(nested)) return nested
  throw new UsageError(
    `${specifier} does not export a subject as its default export; write \`export default Subject.make({ name, acquire, client })\``,
    false
  )
}

const list = () =>
  Conformance.families.map((family) =>
    [
      `${family.id}: ${family.title} — ${family.description}`,
      ...family.checks.map((check) =>
        `  ${Conformance.checkId(check)}${check.requires === undefined ? "" : ` [requires ${check.requires}]`}: ${check.description}`
      )
    ].join("\n")
  ).join("\n\n")

const progress = (result: Conformance.CheckResult) => {
  const mark = result.status === "passed" ? "ok  " : result.status === "failed" ? "FAIL" : "n/c "
  const detail = result.status === "not-claimed"
    ? `not claimed (capability "${result.capability}")`
    : `${result.runs} run${result.runs === 1 ? "" : "s"}, ${(result.durationMs / 1000).toFixed(1)} s`
  process.stdout.write(`${mark} ${result.family}/${result.check} (${detail})\n`)
}

const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        runs: { type: "string" },
        seed: { type: "string" },
        only: { type: "string" },
        path: { type: "string" },
        list: { type: "boolean" },
        help: { type: "boolean", short: "h" }
      }
    })
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error))
  }
  const { positionals, values } = parsed
  if (values.help) {
    process.stdout.write(`${usage}\n`)
    return 0
  }
  if (values.list) {
    process.stdout.write(`${list()}\n`)
    return 0
  }
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? "missing the subject module" : `expected one subject module, got ${positionals.length}`)
  }
  const runs = integer("runs", values.runs, true)
  const seed = integer("seed", values.seed, false)
  const selected = Conformance.selectChecks({
    ...(values.only === undefined ? {} : { only: values.only }),
    ...(values.path === undefined ? {} : { path: values.path })
  })
  if (Either.isLeft(selected)) throw new UsageError(selected.left.message)
  const subject = await load(positionals[0]!)
  const report = await Effect.runPromise(
    Effect.either(Conformance.run(subject, {
      ...(runs === undefined ? {} : { runs }),
      ...(seed === undefined ? {} : { seed }),
      ...(values.only === undefined ? {} : { only: values.only }),
      ...(values.path === undefined ? {} : { path: values.path }),
      module: positionals[0]!,
      onResult: progress
    }))
  )
  if (Either.isLeft(report)) throw new UsageError(report.left.message)
  process.stdout.write(`\n${Conformance.formatReport(report.right)}\n`)
  return Conformance.passed(report.right) ? 0 : 1
}

main(process.argv.slice(2)).then(
  // Exit explicitly: a subject may leave handles (pools, sockets) open.
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`durable-singleton-conformance: ${error.message}\n${error.usage ? `\n${usage}\n` : ""}`)
    }
    else process.stderr.write(`durable-singleton-conformance: unexpected error: ${error instanceof Error ? error.stack : String(error)}\n`)
    process.exit(2)
  }
)
