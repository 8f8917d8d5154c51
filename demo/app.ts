/**
 * The demo's application: one stateful singleton (a small ledger) and one fenced cron job. The
 * runner processes run them; the demo process uses the same definitions to read their state and
 * health from the store.
 */
import { FencedCron, SingletonContext, SingletonError, StatefulSingleton } from "@durable-singleton/core"
import { Context, Cron, DateTime, Effect, Schema } from "effect"
import type { RunnerReport } from "./protocol.js"

/** The ledger appends one fresh entry per execution. */
export const ledgerEvery = "300 millis"

/** The longest normal gap between two heartbeats of the ledger, for `SingletonHealth.check`. */
export const ledgerExpectedInterval = "1 second"

/** What a runner process gives the application: its name, a way to report, the freeze request. */
export class Runner extends Context.Tag("demo/Runner")<Runner, {
  readonly name: string
  readonly report: (report: RunnerReport) => void
  /** True once, when the demo asked this runner to freeze before its next ledger write. */
  readonly takeFreezeRequest: () => boolean
}>() {}

const LedgerState = Schema.Struct({
  total: Schema.Number,
  entries: Schema.Array(Schema.String)
})

// Per process: the epoch whose claim was reported, and a counter for entry ids.
let reportedEpoch = 0
let executions = 0

export const Ledger = StatefulSingleton.make({
  name: "ledger",
  schema: LedgerState,
  initial: { total: 0, entries: [] },
  every: ledgerEvery,
  run: (ledger) =>
    Effect.gen(function*() {
      const runner = yield* Runner
      const { epoch } = yield* SingletonContext.SingletonContext
      if (epoch !== reportedEpoch) {
        // The first execution under this claim: the lease still holds the state it claimed.
        const claimed = yield* ledger.get
        runner.report({ type: "claimed", epoch, total: claimed.total, entries: claimed.entries })
        reportedEpoch = epoch
      }
      const entry = `${runner.name}-e${epoch}-${++executions}`
      if (runner.takeFreezeRequest()) {
        // Freeze the whole process right here, between deciding the write and making it, as a
        // stop-the-world pause would; the demo sends SIGCONT once another runner has taken over.
        // Why here: frozen anywhere else (typically while waiting for the next execution), the
        // resumed runner may learn first that it lost its shard lock. Node then fires the
        // overdue timers in due order; if the 1 s lock refresh comes before this singleton's
        // next execution, the cluster interrupts the singleton before it writes again: safe,
        // but no stale write to show (measured: 3 runs in 20 when frozen at a random moment).
        runner.report({ type: "freezing", epoch, entry })
        process.kill(process.pid, "SIGSTOP")
      }
      // Once the write is sent, wait for its outcome even if the cluster stops the singleton
      // meanwhile (with PostgreSQL or Redis the answer arrives after the overdue lock refresh
      // may have asked the cluster to): every acknowledged entry is reported, and so is a
      // rejection.
      yield* Effect.uninterruptible(
        ledger.update(({ entries, total }) => ({ total: total + 1, entries: [...entries, entry] })).pipe(
          Effect.tap(({ total }) => runner.report({ type: "ack", epoch, entry, total })),
          Effect.tapError((error) =>
            Effect.sync(() =>
              runner.report(
                error.reason === "LeaderHandoffFailed"
                  ? { type: "rejected", epoch, entry, ...epochsOf(error) }
                  : { type: "write-failed", epoch, entry, reason: error.reason }
              )
            )
          )
        )
      )
    })
})

const TickerState = Schema.Struct({
  count: Schema.Number,
  /** The scheduled time of every tick that ran, in order. */
  ticks: Schema.Array(Schema.String)
})

export const Ticker = FencedCron.make({
  name: "ticker",
  cron: Cron.unsafeParse("*/2 * * * * *"),
  state: { schema: TickerState, initial: { count: 0, ticks: [] } },
  maxExecutionTime: "3 seconds",
  // A tick whose runner was SIGKILLed keeps the job's slot until its deadline plus this grace:
  // the job's 100 ms executions stop at once when interrupted, so 1 s is plenty.
  interruptionGrace: "1 second",
  execute: (state, tick) =>
    Effect.gen(function*() {
      const runner = yield* Runner
      const { epoch } = yield* SingletonContext.SingletonContext
      const startedAt = Date.now()
      yield* Effect.sleep("100 millis") // the job's work
      const scheduledAt = DateTime.formatIso(tick.scheduledAt)
      const { count } = yield* state.update(({ count, ticks }) => ({ count: count + 1, ticks: [...ticks, scheduledAt] }))
      runner.report({ type: "tick", scheduledAt, epoch, startedAt, finishedAt: Date.now(), count })
    })
})

/** The epochs a `LeaderHandoffFailed` carries. */
export const epochsOf = (error: SingletonError.SingletonError) => ({
  expectedEpoch: error.details?.expectedEpoch,
  actualEpoch: error.details?.actualEpoch
})
