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
  /**
   * The execution holding the job's slot, if any. If it never records its end, the slot is
   * free again at `expiresAt` (its deadline plus the interruption grace).
   */
  running: Schema.NullOr(Schema.Struct({
    tick: Schema.Number,
    token: Schema.String,
    startedAt: Schema.Number,
    expiresAt: Schema.Number
  })),
  /** The token of the last execution whose end was recorded: a retried `finish` counts once. */
  finished: Schema.NullOr(Schema.String),
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
  finished: null,
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

/** @internal */
export interface Begun {
  readonly outcome: "run" | Skip
  /** The tick of an execution whose slot had expired without its end recorded: counted as failed. */
  readonly abandoned: Option.Option<number>
}

/**
 * Whether the delivery of `tick` may run, and the ledger after deciding (skips are counted):
 *
 * - an execution holds the slot (until its `expiresAt`): the same tick is a duplicate, another
 *   tick would overlap it;
 * - an execution whose slot expired never recorded its end (its runner crashed, or it did not
 *   stop within its deadline and grace): it is counted as failed and the slot is free;
 * - the tick is not newer than the last tick that began: a duplicate (a tick runs at most once,
 *   even when it is delivered again after its execution was cut short);
 * - the tick is late: skipped (and remembered, so that a redelivery counts as a duplicate);
 * - otherwise it begins: `running` is set with this execution's token, until `expiresAt`.
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
    readonly expiresAt: number
  }
): readonly [begun: Begun, next: Ledger] => {
  const running = ledger.running
  if (running !== null && running.expiresAt > request.now) {
    const skip = running.tick === request.tick ? "skipped_duplicate" : "skipped_overlap"
    return [{ outcome: skip, abandoned: Option.none() }, counted(ledger, skip)]
  }
  const abandoned = Option.map(Option.fromNullable(running), (running) => running.tick)
  const free = running === null ? ledger : counted({ ...ledger, running: null }, "failed")
  if (free.lastTick !== null && request.tick <= free.lastTick) {
    return [{ outcome: "skipped_duplicate", abandoned }, counted(free, "skipped_duplicate")]
  }
  if (request.late) {
    return [{ outcome: "skipped_late", abandoned }, counted({ ...free, lastTick: request.tick }, "skipped_late")]
  }
  return [{ outcome: "run", abandoned }, {
    ...free,
    lastTick: request.tick,
    running: { tick: request.tick, token: request.token, startedAt: request.now, expiresAt: request.expiresAt }
  }]
}

/**
 * Records how the execution of `token` ended and frees the slot, only if that execution still
 * holds it (one that outlived its slot may have been replaced since, and was then counted as
 * failed by the next `begin`). Idempotent: a retry after a lost acknowledgement changes nothing
 * and still answers `"recorded"`. `"not held"` also answers a release after a `begin` that did
 * not land. `Option.none()`: nothing to write.
 *
 * @internal
 */
export const finish = (
  ledger: Ledger,
  token: string,
  outcome: "completed" | "failed"
): readonly [result: "recorded" | "not held", next: Option.Option<Ledger>] => {
  if (ledger.running?.token === token) {
    return ["recorded", Option.some(counted({ ...ledger, running: null, finished: token }, outcome))]
  }
  return [ledger.finished === token ? "recorded" : "not held", Option.none()]
}
