/**
 * Leader-handoff family: several leaders, one client each, claim and write core's
 * `FencedState` over one store with overlapping tenures, in interleavings chosen by
 * `fc.scheduler`. Invariants: every acknowledged write is seen by later claims and reads; no
 * write of a superseded lease is ever accepted (nor one of a lease from before a `clear`);
 * rejected writes never show up; epochs are unique and grow between claims.
 *
 * @since 0.1.0
 */
import * as FencedState from "@durable-singleton/core/FencedState"
import * as SingletonError from "@durable-singleton/core/SingletonError"
import * as Store from "@durable-singleton/core/Store"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as fc from "effect/FastCheck"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import * as Internal from "../internal/check.js"
import * as Hostile from "../internal/hostile.js"

const { attempt, expect, show } = Internal

const stateOf = (key: string) =>
  FencedState.make({ name: "conformance-handoff", schema: Schema.Array(Schema.String), initial: [], key })

type Action = "claim" | "write" | "heartbeat" | "verify" | "read" | "clear"

/**
 * Outcome of a fenced operation: done, refused because another leader took over, or unknown.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome = "ok" | "rejected" | "unknown"

/**
 * @since 0.1.0
 * @category models
 */
export interface Timed {
  readonly leader: string
  readonly start: number
  /** `Infinity` when the outcome is unknown: it may take effect at any later time. */
  readonly end: number
}

/**
 * One operation of a handoff run, as recorded: who, when (milliseconds since the run started)
 * and with what outcome.
 *
 * @since 0.1.0
 * @category models
 */
export type Event =
  | Timed & { readonly kind: "claim"; readonly outcome: "ok"; readonly lease: string; readonly epoch: number; readonly state: ReadonlyArray<string> }
  | Timed & { readonly kind: "claim"; readonly outcome: "unknown"; readonly error: string }
  | Timed & { readonly kind: "write"; readonly lease: string; readonly id: string; readonly outcome: Outcome }
  | Timed & { readonly kind: "heartbeat" | "verify"; readonly lease: string; readonly outcome: Outcome }
  | Timed & { readonly kind: "read"; readonly outcome: "ok"; readonly state: ReadonlyArray<string> | null }
  | Timed & { readonly kind: "read" | "clear"; readonly outcome: "ok" | "unknown" }

type ClaimEvent = Extract<Event, { kind: "claim"; outcome: "ok" }>
type Fenced = Extract<Event, { kind: "write" | "heartbeat" | "verify" }>

const ms = (t: number) => Number.isFinite(t) ? t.toFixed(2).padStart(8) : "       ?"

const describeEvent = (e: Event): string => {
  const what = e.kind === "write" ? `write ${e.id}` : e.kind
  const lease = "lease" in e ? ` (lease ${e.lease})` : ""
  const detail = e.kind === "claim" && e.outcome === "ok"
    ? ` epoch ${e.epoch}, state ${show(e.state)}`
    : e.kind === "read" && "state" in e
    ? ` state ${e.state === null ? "absent" : show(e.state)}`
    : e.kind === "claim"
    ? ` (${e.error})`
    : ""
  return `${e.leader.padEnd(7)} ${what.padEnd(12)} [${ms(e.start)} .. ${ms(e.end)}] ${e.outcome}${detail}${lease}`
}

/**
 * A run's events as text, in order of start.
 *
 * @since 0.1.0
 * @category checking
 */
export const timeline = (events: ReadonlyArray<Event>) =>
  [...events].sort((a, b) => a.start - b.start).map((e) => `  ${describeEvent(e)}`).join("\n")

/**
 * Every broken invariant of a recorded run, as sentences (none for a correct run).
 *
 * @since 0.1.0
 * @category checking
 */
export const invariants = (events: ReadonlyArray<Event>): ReadonlyArray<string> => {
  const problems: Array<string> = []
  const clears = events.filter((e) => e.kind === "clear")
  // A clear that may have taken effect between `after` and `before`.
  const clearedBetween = (after: number, before: number) => clears.some((k) => k.start < before && k.end > after)
  const claims = events.filter((e): e is ClaimEvent => e.kind === "claim" && e.outcome === "ok")
  const claimOf = new Map(claims.map((c) => [c.lease, c]))
  const writes = events.filter((e): e is Extract<Event, { kind: "write" }> => e.kind === "write")
  const writeById = new Map(writes.map((w) => [w.id, w]))

  const observations = events.flatMap((e) =>
    e.kind === "claim" && e.outcome === "ok"
      ? [{ event: e as Event, state: e.state }]
      : e.kind === "read" && "state" in e
      ? [{ event: e as Event, state: e.state }]
      : []
  )
  for (const { event, state } of observations) {
    const who = `the ${event.kind} by ${event.leader} at ${ms(event.start).trim()} ms`
    if (state === null) {
      const earlier = claims.find((c) => c.end < event.start && !clearedBetween(c.start, event.end))
      if (earlier) problems.push(`${who} found no state, although ${earlier.leader} claimed it at ${ms(earlier.start).trim()} ms and nothing cleared it`)
      continue
    }
    const seen = new Set<string>()
    for (const [position, id] of state.entries()) {
      if (seen.has(id)) problems.push(`${who} found write ${id} twice: a write was applied twice`)
      seen.add(id)
      const write = writeById.get(id)
      if (write === undefined) problems.push(`${who} found ${show(id)}, which no leader wrote`)
      else if (write.outcome === "rejected") {
        problems.push(`${who} found write ${id}, which was rejected as stale: a refused write landed`)
      } else if (write.start > event.end) {
        problems.push(`${who} found write ${id}, which started only after it`)
      }
      for (const laterId of state.slice(position + 1)) {
        const later = writeById.get(laterId)
        if (write !== undefined && later !== undefined && later.end < write.start) {
          problems.push(`${who} found ${id} before ${laterId}, though ${laterId} was acknowledged before ${id} started`)
        }
      }
    }
    for (const write of writes) {
      if (
        write.outcome === "ok" && write.end < event.start && !seen.has(write.id) &&
        !clearedBetween(write.start, event.end)
      ) {
        problems.push(`${who} did not see write ${write.id}, acknowledged at ${ms(write.end).trim()} ms: an acknowledged write was lost`)
      }
    }
  }

  for (const op of events.filter((e): e is Fenced => e.kind === "write" || e.kind === "heartbeat" || e.kind === "verify")) {
    const claim = claimOf.get(op.lease)!
    const what = op.kind === "write" ? `write ${op.id}` : op.kind
    if (op.outcome === "ok") {
      const superseding = events.find((e) =>
        ((e.kind === "claim" && e.outcome === "ok" && e.lease !== op.lease) || (e.kind === "clear" && e.outcome === "ok")) &&
        e.start > claim.end && e.end < op.start
      )
      if (superseding !== undefined) {
        problems.push(
          `${what} by ${op.leader} (lease ${op.lease}, epoch ${claim.epoch}) was accepted at ${ms(op.start).trim()} ms, after the ${superseding.kind} by ${superseding.leader} that ended at ${ms(superseding.end).trim()} ms superseded it: a stale write was accepted`
        )
      }
    } else if (op.outcome === "rejected") {
      const possible = events.some((e) =>
        (e.kind === "claim" || e.kind === "clear") && e !== claim && e.start < op.end && e.end > claim.start
      )
      if (!possible) {
        problems.push(`${what} by ${op.leader} (lease ${op.lease}) was rejected as stale, but no other claim or clear could have superseded it`)
      }
    }
  }

  for (const [i, x] of claims.entries()) {
    for (const c of claims.slice(i + 1)) {
      if (clearedBetween(Math.min(x.start, c.start), Math.max(x.end, c.end))) continue
      if (x.epoch === c.epoch) {
        problems.push(`the claims by ${x.leader} (lease ${x.lease}) and ${c.leader} (lease ${c.lease}) both got epoch ${x.epoch}: two leaders won the same claim`)
      } else {
        const [first, second] = x.end < c.start ? [x, c] : c.end < x.start ? [c, x] : [undefined, undefined]
        if (first !== undefined && second.epoch < first.epoch) {
          problems.push(`the claim by ${second.leader} got epoch ${second.epoch}, after the claim by ${first.leader} got epoch ${first.epoch}: epochs went backwards`)
        }
      }
    }
  }
  return problems
}

const classify = (cause: Cause.Cause<unknown>): Outcome | { readonly defect: string } => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (SingletonError.isSingletonError(error)) {
      if (error.reason === "LeaderHandoffFailed") return "rejected"
      if (error.reason === "SchemaDecodeFailed") return { defect: `the stored state could not be decoded (the store corrupted it): ${Internal.describeError(error.cause ?? error)}` }
    }
    return "unknown"
  }
  return { defect: Internal.describeCause(cause) }
}

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 2, arbitrary: fc.constant("claim" as const) },
  { weight: 6, arbitrary: fc.constant("write" as const) },
  { weight: 1, arbitrary: fc.constant("heartbeat" as const) },
  { weight: 1, arbitrary: fc.constant("verify" as const) },
  { weight: 2, arbitrary: fc.constant("read" as const) },
  { weight: 1, arbitrary: fc.constant("clear" as const) }
)

// Every leader starts by claiming; a clear is rare enough that tenures usually overlap.
const script = fc.array(action, { minLength: 0, maxLength: 7 }).map((rest): ReadonlyArray<Action> => ["claim", ...rest])

interface Lease {
  readonly id: string
  readonly lease: FencedState.Lease<ReadonlyArray<string>>
}

/**
 * @since 0.1.0
 * @category checks
 */
export const checks: ReadonlyArray<Internal.Check> = [
  Internal.check({
    family: "handoff",
    name: "scheduled-leaders",
    description:
      "leaders with overlapping tenures, interleaved by fc.scheduler: acknowledged writes survive handoff, stale and pre-clear leases never write, epochs are unique and grow",
    defaultRuns: 40,
    arbitrary: () =>
      fc.record({
        namespace: Hostile.namespace,
        key: fc.oneof(fc.constant("singleton/conformance"), Hostile.key),
        scripts: fc.array(script, { minLength: 2, maxLength: 4 }),
        scheduler: fc.scheduler()
      }),
    run: (input, { session }) =>
      Effect.gen(function*() {
        const state = stateOf(input.key)
        const stores = yield* Effect.all(input.scripts.map(() => session.client(input.namespace)))
        const auditor = yield* session.client(input.namespace)
        const runtime = yield* Effect.runtime<never>()
        const origin = performance.now()
        const events: Array<Event> = []
        const defects: Array<string> = []
        const timed = async <A>(store: Store.Store, effect: Effect.Effect<A, unknown, Store.Store>) => {
          const start = performance.now() - origin
          const exit = await Runtime.runPromiseExit(runtime)(Effect.provideService(effect, Store.Store, store))
          return { start, end: performance.now() - origin, exit }
        }
        const outcomeOf = (leader: string, exit: Exit.Exit<unknown, unknown>): Outcome => {
          if (Exit.isSuccess(exit)) return "ok"
          const outcome = classify(exit.cause)
          if (typeof outcome === "string") return outcome
          defects.push(`${leader}: ${outcome.defect}`)
          return "unknown"
        }
        const claim = async (leader: string, store: Store.Store, n: number): Promise<Lease | undefined> => {
          const { end, exit, start } = await timed(
            store,
            Effect.flatMap(state.claim({ holder: leader }), (lease) => Effect.map(lease.get, (current) => ({ lease, current })))
          )
          const id = `${leader}#${n}`
          if (Exit.isSuccess(exit)) {
            const { current, lease } = exit.value
            events.push({ kind: "claim", leader, start, end, outcome: "ok", lease: id, epoch: lease.epoch, state: current })
            return { id, lease }
          }
          outcomeOf(leader, exit)
          events.push({ kind: "claim", leader, start, end: Number.POSITIVE_INFINITY, outcome: "unknown", error: Internal.describeCause(exit.cause) })
          return undefined
        }
        const runLeader = async (index: number, actions: ReadonlyArray<Action>) => {
          const leader = `L${index}`
          const store = stores[index]!
          let current: Lease | undefined
          let claims = 0
          let writes = 0
          for (const action of actions) {
            await input.scheduler.schedule(Promise.resolve(), `${leader} ${action}`)
            if (action === "claim") current = await claim(leader, store, ++claims)
            else if (action === "read") {
              const { end, exit, start } = await timed(store, state.read)
              outcomeOf(leader, exit)
              if (Exit.isSuccess(exit)) {
                events.push({ kind: "read", leader, start, end, outcome: "ok", state: Option.getOrNull(Option.map(exit.value, (s) => s.state)) })
              } else events.push({ kind: "read", leader, start, end: Number.POSITIVE_INFINITY, outcome: "unknown" })
            } else if (action === "clear") {
              const { end, exit, start } = await timed(store, Effect.flatMap(Store.Store, (s) => s.clear))
              const outcome = outcomeOf(leader, exit)
              events.push({ kind: "clear", leader, start, end: outcome === "ok" ? end : Number.POSITIVE_INFINITY, outcome: outcome === "ok" ? "ok" : "unknown" })
            } else if (current !== undefined) {
              const lease = current
              const id = `${leader}.${++writes}`
              const effect = action === "write"
                ? lease.lease.update((s) => [...s, id])
                : action === "heartbeat"
                ? lease.lease.heartbeat
                : lease.lease.verify
              const { end, exit, start } = await timed(store, effect)
              const outcome = outcomeOf(leader, exit)
              const until = outcome === "unknown" ? Number.POSITIVE_INFINITY : end
              if (action === "write") events.push({ kind: "write", leader, lease: lease.id, id, start, end: until, outcome })
              else events.push({ kind: action, leader, lease: lease.id, start, end: until, outcome })
            }
          }
        }
        yield* Effect.promise(() => input.scheduler.waitFor(Promise.all(input.scripts.map((actions, i) => runLeader(i, actions)))))
        const final = yield* Effect.promise(() => claim("auditor", auditor, 1))
        const problems = [
          ...defects.map((d) => `an operation died instead of failing with a typed error: ${d}`),
          ...(final === undefined ? ["the final claim by a fresh client failed"] : []),
          ...invariants(events)
        ]
        yield* expect(
          problems.length === 0,
          () =>
            `${problems.slice(0, 5).join("\n")}${problems.length > 5 ? `\n(and ${problems.length - 5} more)` : ""}\n` +
            `timeline (ms since the run started; end ? = outcome unknown):\n${timeline(events)}`
        )
      })
  }),
  Internal.check({
    family: "handoff",
    name: "clear-fences-old-leases",
    description:
      "after clear, a lease claimed before it can neither write nor recreate the state, and the next claim starts afresh at epoch 1",
    defaultRuns: 10,
    arbitrary: () =>
      fc.record({
        namespace: Hostile.namespace,
        key: fc.oneof(fc.constant("singleton/conformance"), Hostile.key),
        writes: fc.integer({ min: 0, max: 3 }),
        writeBeforeReclaim: fc.boolean()
      }),
    examples: [
      { namespace: "conformance", key: "singleton/conformance", writes: 2, writeBeforeReclaim: false },
      { namespace: "conformance", key: "singleton/conformance", writes: 1, writeBeforeReclaim: true }
    ],
    run: (input, { session }) =>
      Effect.gen(function*() {
        const state = stateOf(input.key)
        const [a, b, c, admin] = yield* Effect.all([
          session.client(input.namespace),
          session.client(input.namespace),
          session.client(input.namespace),
          session.client(input.namespace)
        ])
        const on = <A, E>(store: Store.Store, effect: Effect.Effect<A, E, Store.Store>) => Effect.provideService(effect, Store.Store, store)
        const old = yield* attempt("claim by the old leader", on(a, state.claim({ holder: "old" })))
        for (let i = 1; i <= input.writes; i++) {
          yield* attempt("write by the old leader", old.update((s) => [...s, `old.${i}`]))
        }
        yield* attempt("clear", admin.clear)
        const expectRejected = (when: string) =>
          Effect.gen(function*() {
            const exit = yield* Effect.exit(old.update((s) => [...s, "stale"]))
            yield* expect(
              Exit.isFailure(exit) && classify(exit.cause) === "rejected",
              () =>
                `a write by a lease claimed before clear, ${when}, ${
                  Exit.isSuccess(exit) ? "was accepted" : `failed with ${Internal.describeCause(exit.cause)} instead of LeaderHandoffFailed`
                }`
            )
          })
        if (input.writeBeforeReclaim) {
          yield* expectRejected("made before anyone claimed again")
          const raw = yield* attempt("get", admin.get(input.key))
          yield* expect(Option.isNone(raw), () => `the state was recreated by a stale lease after clear: ${show(raw)}`)
        }
        const fresh = yield* attempt("claim after clear", on(b, state.claim({ holder: "fresh" })))
        yield* expect(fresh.epoch === 1, () => `the first claim after clear got epoch ${fresh.epoch}, expected 1: clear left the state behind`)
        const freshState = yield* attempt("get", fresh.get)
        yield* expect(freshState.length === 0, () => `the first claim after clear found state ${show(freshState)}, expected the initial []`)
        yield* expectRejected("made after a new leader claimed")
        yield* attempt("write by the new leader", fresh.update((s) => [...s, "fresh.1"]))
        const next = yield* attempt("claim by a third leader", on(c, state.claim({ holder: "next" })))
        const nextState = yield* attempt("get", next.get)
        yield* expect(
          next.epoch === 2 && nextState.length === 1 && nextState[0] === "fresh.1",
          () => `the next claim got epoch ${next.epoch} and state ${show(nextState)}, expected epoch 2 and ["fresh.1"]`
        )
      })
  })
]
