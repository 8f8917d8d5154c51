/**
 * The tick ledger of a fenced cron job: one JSON document per job, changed only by atomic
 * `modifyOrInit`, that decides which deliveries of a tick may run.
 *
 * @internal
 */
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as SingletonMetrics from "../SingletonMetrics.js"

const Count = Schema.NonNegativeInt

/** @internal */
export const Ledger = Schema.Struct({
  format: Schema.Literal("durable-singleton/cron-ledger/1"),
  /** The latest tick that began (or was skipped as late), in epoch milliseconds. */
  lastTick: Schema.NullOr(Schema.Number),
  /** The execution in progress, if any. */
  running: Schema.NullOr(Schema.Struct({ tick: Schema.Number, token: Schema.String, startedAt: Schema.Number })),
  counts: Schema.Struct({
    completed: Count,
    failed: Count,
    skippedDuplicate: Count,
    skippedOverlap: Count,
    skippedLate: Count
  })
})

/** @internal */
export interface Ledger extends Schema.Schema.Type<typeof Ledger> {}

/** @internal */
export type Counts = Ledger["counts"]

const empty: Ledger = {
  format: "durable-singleton/cron-ledger/1",
  lastTick: null,
  running: null,
  counts: { completed: 0, failed: 0, skippedDuplicate: 0, skippedOverlap: 0, skippedLate: 0 }
}

const decodeJson = ParseResult.decodeUnknownEither(Schema.parseJson(Ledger))

/** @internal */
export const parse = (raw: Option.Option<string | Uint8Array>): Either.Either<Ledger, ParseResult.ParseError | string> => {
  if (Option.isNone(raw)) return Either.right(empty)
  if (typeof raw.value !== "string") return Either.left("stored ledger is bytes, not JSON")
  return Either.mapLeft(decodeJson(raw.value), (issue) => new ParseResult.ParseError({ issue }))
}

/** @internal */
export const stringify = (ledger: Ledger): string => JSON.stringify(ledger)

/** @internal */
export type Skip = Extract<SingletonMetrics.CronOutcome, `skipped_${string}`>

const countField = {
  skipped_duplicate: "skippedDuplicate",
  skipped_overlap: "skippedOverlap",
  skipped_late: "skippedLate",
  completed: "completed",
  failed: "failed"
} as const satisfies Record<SingletonMetrics.CronOutcome, keyof Counts>

const counted = (ledger: Ledger, outcome: SingletonMetrics.CronOutcome): Ledger => ({
  ...ledger,
  counts: { ...ledger.counts, [countField[outcome]]: ledger.counts[countField[outcome]] + 1 }
})

/**
 * Whether the delivery of `tick` may run, and the ledger after deciding (skips are counted):
 *
 * - an execution is in progress (started less than `maxExecutionMillis` ago): the same tick is a
 *   duplicate, another tick would overlap it;
 * - the tick is not newer than the last tick that began: a duplicate (a tick runs at most once,
 *   even when it is delivered again after its execution was cut short);
 * - the tick is late: skipped (and remembered, so that a redelivery counts as a duplicate);
 * - otherwise it begins: `running` is set with this execution's token.
 *
 * @internal
 */
export const begin = (
  ledger: Ledger,
  request: {
    readonly tick: number
    readonly now: number
    readonly token: string
    readonly late: boolean
    readonly maxExecutionMillis: number
  }
): readonly [outcome: "run" | Skip, next: Ledger] => {
  const running = ledger.running
  if (running !== null && running.startedAt + request.maxExecutionMillis > request.now) {
    const skip = running.tick === request.tick ? "skipped_duplicate" : "skipped_overlap"
    return [skip, counted(ledger, skip)]
  }
  if (ledger.lastTick !== null && request.tick <= ledger.lastTick) {
    return ["skipped_duplicate", counted(ledger, "skipped_duplicate")]
  }
  if (request.late) {
    return ["skipped_late", counted({ ...ledger, lastTick: request.tick }, "skipped_late")]
  }
  return ["run", {
    ...ledger,
    lastTick: request.tick,
    running: { tick: request.tick, token: request.token, startedAt: request.now }
  }]
}

/**
 * Records how an execution ended; only the execution that set `running` clears it (one that
 * outlived `maxExecutionMillis` may have been replaced since).
 *
 * @internal
 */
export const finish = (ledger: Ledger, token: string, outcome: "completed" | "failed"): Ledger =>
  counted(ledger.running?.token === token ? { ...ledger, running: null } : ledger, outcome)
