// The machinery shared by every family: a check is a fast-check property whose every run gets
// fresh storage and its own clients; failures become readable reports.
import * as Store from "@durable-singleton/core/Store"
import type { PlatformError } from "@effect/platform/Error"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as fc from "effect/FastCheck"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import type * as Scope from "effect/Scope"
import type * as Subject from "../Subject.js"

export type FamilyId = "model" | "fidelity" | "namespaces" | "atomicity" | "linearizability" | "handoff" | "errors"

export type Capability = Subject.Capability

/** A broken promise of the contract, found by a check. */
export class Violation extends Data.TaggedError("Violation")<{ readonly message: string }> {}

export const violation = (message: string) => new Violation({ message })

/** The subject could not provide storage or a client: no input is to blame, so no shrinking. */
class SetupFailure extends Data.TaggedError("SetupFailure")<{ readonly message: string }> {}

export const fail = (message: string): Effect.Effect<never, Violation> => Effect.fail(violation(message))

export const expect = (condition: boolean, message: () => string): Effect.Effect<void, Violation> =>
  condition ? Effect.void : Effect.fail(violation(message()))

/** Fresh storage of one run, from which independent clients are opened. */
export interface Session {
  readonly client: (namespace: string) => Effect.Effect<Store.Store, SetupFailure, Scope.Scope>
  /** The subject's disruption of this storage, until the scope closes (checks needing it require "disruption"). */
  readonly disrupt: Effect.Effect<void, SetupFailure, Scope.Scope>
}

export interface RunContext {
  readonly session: Session
  /** How long one store operation may take before it counts as hung. */
  readonly operationTimeout: Duration.Duration
}

export interface Property<T> {
  readonly family: FamilyId
  readonly name: string
  /** What the check asserts, in one sentence. */
  readonly description: string
  readonly requires?: Capability
  readonly defaultRuns: number
  /** `commands` is the replay path of `fc.commands` arbitraries, when replaying one. */
  readonly arbitrary: (replay: { readonly commands: string | undefined }) => fc.Arbitrary<T>
  /** Inputs tried before the generated ones, so that known-hostile cases are always covered. */
  readonly examples?: ReadonlyArray<T>
  readonly run: (input: T, context: RunContext) => Effect.Effect<void, unknown, Scope.Scope>
}

export interface Settings {
  readonly seed: number
  readonly runs: number | undefined
  readonly path: string | undefined
  readonly runTimeout: Duration.Duration
  readonly operationTimeout: Duration.Duration
  readonly shrinkTimeLimit: Duration.Duration
}

export type Outcome =
  | { readonly failed: false; readonly runs: number }
  | {
    readonly failed: true
    readonly runs: number
    readonly shrinks: number
    readonly path: string | undefined
    readonly counterexample: string | undefined
    readonly message: string
  }

export interface Check {
  readonly family: FamilyId
  readonly name: string
  readonly description: string
  readonly requires: Capability | undefined
  readonly defaultRuns: number
  readonly run: <S>(subject: Subject.Subject<S>, settings: Settings) => Promise<Outcome>
}

export const check = <T>(property: Property<T>): Check => ({
  family: property.family,
  name: property.name,
  description: property.description,
  requires: property.requires,
  defaultRuns: property.defaultRuns,
  run: (subject, settings) => runProperty(property, subject, settings)
})

// The path of a counterexample found through `fc.commands` carries the commands' own replay
// path after this separator (neither fast-check format uses it).
const commandsSeparator = "@"

const runProperty = async <T, S>(
  property: Property<T>,
  subject: Subject.Subject<S>,
  settings: Settings
): Promise<Outcome> => {
  const [path, commandsPath] = splitPath(settings.path)
  const setupFailure = (message: string) => Effect.fail(new SetupFailure({ message }))
  const session: Effect.Effect<Session, SetupFailure, Scope.Scope> = Effect.map(
    Effect.catchAllCause(subject.acquire, (cause) =>
      setupFailure(`could not acquire storage for subject "${subject.name}": ${describeCause(cause)}`)),
    (storage) => ({
      client: (namespace) =>
        Effect.catchAllCause(subject.client(storage, { namespace }), (cause) =>
          setupFailure(`could not open a client (namespace ${show(namespace)}): ${describeCause(cause)}`)),
      disrupt: subject.disrupt === undefined
        ? setupFailure(`subject "${subject.name}" has no disrupt`)
        : Effect.catchAllCause(subject.disrupt(storage), (cause) =>
          setupFailure(`could not disrupt the backend: ${describeCause(cause)}`))
    })
  )
  const runTimeoutMs = Duration.toMillis(settings.runTimeout)
  const once = (input: T) =>
    Effect.scoped(Effect.flatMap(session, (session) =>
      property.run(input, { session, operationTimeout: settings.operationTimeout }))).pipe(
        // A hung run must not hang the suite: stop waiting for it, even if it ignores interruption.
        Effect.disconnect,
        Effect.timeoutFail({
          duration: settings.runTimeout,
          onTimeout: () =>
            violation(`the run did not finish within ${runTimeoutMs} ms: a store operation hung (or is far too slow)`)
        })
      )

  // Shrinking re-runs the property on smaller inputs, each on fresh storage: on a slow store that
  // can take long, so past the time limit every further candidate counts as passing, which ends
  // shrinking with the smallest counterexample found so far.
  let failingSince: number | undefined
  const shrinkLimitMs = Duration.toMillis(settings.shrinkTimeLimit)
  const predicate = fc.asyncProperty(property.arbitrary({ commands: commandsPath }), async (input) => {
    if (failingSince !== undefined && performance.now() - failingSince > shrinkLimitMs) return true
    const exit = await Effect.runPromiseExit(once(input))
    if (Exit.isSuccess(exit)) return true
    const setup = Cause.failureOption(exit.cause).pipe(Option.filter((error) => error instanceof SetupFailure))
    failingSince = Option.isSome(setup) ? Number.NEGATIVE_INFINITY : failingSince ?? performance.now()
    throw new PropertyFailure(describeCause(exit.cause))
  })
  const parameters: fc.Parameters<[T]> = {
    seed: settings.seed,
    numRuns: settings.runs ?? property.defaultRuns,
    ...(path === undefined ? {} : { path }),
    ...(property.examples === undefined ? {} : { examples: property.examples.map((example) => [example] as [T]) })
  }
  let details: fc.RunDetails<[T]>
  try {
    details = await fc.check(predicate, parameters)
  } catch (error) {
    return {
      failed: true,
      runs: 0,
      shrinks: 0,
      path: settings.path,
      counterexample: undefined,
      message: `could not run the property: ${error instanceof Error ? error.message : String(error)}`
    }
  }
  if (!details.failed) return { failed: false, runs: details.numRuns }
  if (details.counterexample === null) {
    return {
      failed: true,
      runs: details.numRuns,
      shrinks: details.numShrinks,
      path: undefined,
      counterexample: undefined,
      message: details.interrupted ? "the run was interrupted" : "too many inputs were skipped"
    }
  }
  const counterexample = fc.stringify(details.counterexample[0])
  const replay = /replayPath="([^"]*)"/.exec(counterexample)?.[1]
  return {
    failed: true,
    runs: details.numRuns,
    shrinks: details.numShrinks,
    path: replay === undefined ? details.counterexamplePath : `${details.counterexamplePath}${commandsSeparator}${replay}`,
    counterexample,
    message: details.errorInstance instanceof PropertyFailure
      ? details.errorInstance.message
      : details.errorInstance instanceof Error
      ? details.errorInstance.message
      : String(details.error)
  }
}

class PropertyFailure extends Error {}

const splitPath = (path: string | undefined): readonly [string | undefined, string | undefined] => {
  if (path === undefined) return [undefined, undefined]
  const at = path.indexOf(commandsSeparator)
  return at === -1 ? [path, undefined] : [path.slice(0, at), path.slice(at + 1)]
}

// messages

/** A value for messages: strings quoted and escaped, bytes as hex, long ones cut. */
export const show = (value: unknown): string => {
  if (typeof value === "string") {
    const quoted = JSON.stringify(value.length > 64 ? value.slice(0, 64) : value)
    return value.length > 64 ? `${quoted}…(${value.length} chars)` : quoted
  }
  if (value instanceof Uint8Array) {
    const hex = Array.from(value.subarray(0, 24), (b) => b.toString(16).padStart(2, "0")).join("")
    return `bytes(${value.length})[${hex}${value.length > 24 ? "…" : ""}]`
  }
  if (Option.isOption(value)) return Option.isSome(value) ? `Some(${show(value.value)})` : "None"
  if (typeof value === "number" || typeof value === "boolean" || value === undefined || value === null) {
    return String(value)
  }
  if (Array.isArray(value)) return `[${value.map(show).join(", ")}]`
  return describeError(value)
}

export const describeError = (error: unknown): string => {
  if (Predicate.hasProperty(error, "_tag") && typeof error._tag === "string") {
    const message = Predicate.hasProperty(error, "message") && typeof error.message === "string" ? error.message : ""
    return message === "" ? error._tag : `${error._tag}: ${message}`
  }
  if (error instanceof Error) return `${error.name}: ${error.message}`
  return String(error)
}

export const describeCause = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    return failure.value instanceof Violation || failure.value instanceof SetupFailure
      ? failure.value.message
      : `unexpected error: ${describeError(failure.value)}`
  }
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect)) return `defect (a thrown error, not a typed failure): ${describeError(defect.value)}`
  if (Cause.isInterruptedOnly(cause)) return "interrupted"
  return Cause.pretty(cause)
}

/**
 * Runs a store operation that must succeed; a failure or defect becomes a violation naming the
 * operation.
 */
export const attempt = <A, E, R>(label: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, Violation, R> =>
  Effect.catchAllCause(effect, (cause) =>
    Cause.isInterruptedOnly(cause) ? Effect.failCause(cause as Cause.Cause<never>) : fail(`${label}: ${describeCause(cause)}`))

/** The value under `key` exactly as stored, kind included (through `modifyOrInit`, writing nothing). */
export const readExact = (store: Store.Store, key: string): Effect.Effect<Option.Option<Store.Value>, PlatformError> =>
  store.modifyOrInit(key, (current) => [current, Option.none()])

/**
 * `keys` are every key that can be present in `store`'s namespace: `has` agrees with `get` for
 * each, and `size` and `isEmpty` with how many are present (a size kept apart from the data
 * drifts under concurrent writes).
 */
export const expectSizeAgrees = (store: Store.Store, keys: ReadonlyArray<string>, when: string): Effect.Effect<void, Violation> =>
  Effect.gen(function*() {
    const present: Array<string> = []
    for (const key of new Set(keys)) {
      const value = yield* attempt(`get(${show(key)})`, store.get(key))
      const has = yield* attempt(`has(${show(key)})`, store.has(key))
      yield* expect(has === Option.isSome(value), () => `${when}: has(${show(key)}) is ${has}, but get returned ${show(value)}`)
      if (has) present.push(key)
    }
    const size = yield* attempt("size", store.size)
    yield* expect(
      size === present.length,
      () => `${when}: size is ${size}, but ${present.length} key(s) are present: ${show(present)}`
    )
    const empty = yield* attempt("isEmpty", store.isEmpty)
    yield* expect(empty === (present.length === 0), () => `${when}: isEmpty is ${empty}, but ${present.length} key(s) are present`)
  })

/** Whether two optional values are equal, kind (string or bytes) included. */
export const sameValue = (a: Option.Option<Store.Value>, b: Option.Option<Store.Value>): boolean =>
  Option.isNone(a) ? Option.isNone(b) : Option.isSome(b) && Store.valueEquals(a.value, b.value)

/** How long to let an operation run before interrupting it: scheduler turns, or milliseconds. */
export type Delay = { readonly yields: number } | { readonly millis: number }

export const delay = (d: Delay): Effect.Effect<void> =>
  "yields" in d ? Effect.replicateEffect(Effect.yieldNow(), d.yields, { discard: true }) : Effect.sleep(Duration.millis(d.millis))

export const delayArbitrary: fc.Arbitrary<Delay> = fc.oneof(
  fc.record({ yields: fc.integer({ min: 0, max: 4 }) }),
  fc.record({ millis: fc.integer({ min: 0, max: 3 }) })
)

