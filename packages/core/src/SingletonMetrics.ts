/**
 * The metrics of stateful singletons and fenced cron jobs, Prometheus-style (times in seconds).
 *
 * Every metric carries the tag `singleton` = the singleton's (or cron job's) name.
 *
 * | name | type | extra tag | meaning |
 * |---|---|---|---|
 * | `durable_singleton_execution_duration_seconds` | histogram | | how long each execution of `run` (or a cron tick's `execute`) took |
 * | `durable_singleton_executions_total` | counter | `outcome` = `success` \| `failure` \| `superseded` | executions by how they ended (`superseded`: another leader took over) |
 * | `durable_singleton_last_success_timestamp_seconds` | gauge | | Unix time of the last persisted heartbeat; seeded from the store when a leader takes over |
 * | `durable_singleton_state_errors_total` | counter | `reason` = a `SingletonError` reason | failed state operations |
 * | `durable_singleton_state_operations_total` | counter | `operation` = `claim` \| `read` \| `update` \| `heartbeat` \| `verify` | state operations through the runtime's handle |
 * | `durable_singleton_cron_ticks_total` | counter | `outcome` = `completed` \| `failed` \| `skipped_duplicate` \| `skipped_overlap` \| `skipped_late` | cron ticks by what became of them |
 *
 * The accessors below return a metric already tagged, e.g. to read it in a test:
 *
 * @example
 * ```ts
 * import { SingletonMetrics } from "@durable-singleton/core"
 * import { Effect, Metric } from "effect"
 *
 * const successes = Metric.value(SingletonMetrics.executionsOf("billing", "success"))
 * // Effect<MetricState.Counter<number>>: successes.count
 * ```
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as MetricKeyType from "effect/MetricKeyType"
import type * as MetricState from "effect/MetricState"
import type * as SingletonError from "./SingletonError.js"

/**
 * @since 0.1.0
 * @category models
 */
export type ExecutionOutcome = "success" | "failure" | "superseded"

/**
 * @since 0.1.0
 * @category models
 */
export type Operation = "claim" | "read" | "update" | "heartbeat" | "verify"

/**
 * @since 0.1.0
 * @category models
 */
export type CronOutcome = "completed" | "failed" | "skipped_duplicate" | "skipped_overlap" | "skipped_late"

/**
 * @since 0.1.0
 * @category models
 */
export type Counter = Metric.Metric<
  MetricKeyType.MetricKeyType.Counter<number>,
  number,
  MetricState.MetricState.Counter<number>
>

/**
 * @since 0.1.0
 * @category models
 */
export type Gauge = Metric.Metric<MetricKeyType.MetricKeyType.Gauge<number>, number, MetricState.MetricState.Gauge<number>>

/**
 * @since 0.1.0
 * @category models
 */
export type Histogram = Metric.Metric<
  MetricKeyType.MetricKeyType.Histogram,
  number,
  MetricState.MetricState.Histogram
>

/**
 * Execution durations in seconds; buckets from 5 ms doubling up to about 11 minutes.
 *
 * @since 0.1.0
 * @category metrics
 */
export const executionDuration: Histogram = Metric.histogram(
  "durable_singleton_execution_duration_seconds",
  MetricBoundaries.exponential({ start: 0.005, factor: 2, count: 18 }),
  "Duration of each execution of a singleton's run or a cron tick, in seconds"
)

/**
 * @since 0.1.0
 * @category metrics
 */
export const executions: Counter = Metric.counter("durable_singleton_executions_total", {
  description: "Executions of a singleton's run or a cron tick, by outcome",
  incremental: true
})

/**
 * @since 0.1.0
 * @category metrics
 */
export const lastSuccess: Gauge = Metric.gauge("durable_singleton_last_success_timestamp_seconds", {
  description: "Unix time in seconds of the last persisted heartbeat"
})

/**
 * @since 0.1.0
 * @category metrics
 */
export const stateErrors: Counter = Metric.counter("durable_singleton_state_errors_total", {
  description: "Failed state operations, by SingletonError reason",
  incremental: true
})

/**
 * @since 0.1.0
 * @category metrics
 */
export const stateOperations: Counter = Metric.counter("durable_singleton_state_operations_total", {
  description: "State operations, by operation",
  incremental: true
})

/**
 * @since 0.1.0
 * @category metrics
 */
export const cronTicks: Counter = Metric.counter("durable_singleton_cron_ticks_total", {
  description: "Cron ticks, by outcome",
  incremental: true
})

/**
 * @since 0.1.0
 * @category accessors
 */
export const executionDurationOf = (singleton: string): Histogram => Metric.tagged(executionDuration, "singleton", singleton)

/**
 * @since 0.1.0
 * @category accessors
 */
export const executionsOf = (singleton: string, outcome: ExecutionOutcome): Counter =>
  executions.pipe(Metric.tagged("singleton", singleton), Metric.tagged("outcome", outcome))

/**
 * @since 0.1.0
 * @category accessors
 */
export const lastSuccessOf = (singleton: string): Gauge => Metric.tagged(lastSuccess, "singleton", singleton)

/**
 * @since 0.1.0
 * @category accessors
 */
export const stateErrorsOf = (singleton: string, reason: SingletonError.Reason): Counter =>
  stateErrors.pipe(Metric.tagged("singleton", singleton), Metric.tagged("reason", reason))

/**
 * @since 0.1.0
 * @category accessors
 */
export const stateOperationsOf = (singleton: string, operation: Operation): Counter =>
  stateOperations.pipe(Metric.tagged("singleton", singleton), Metric.tagged("operation", operation))

/**
 * @since 0.1.0
 * @category accessors
 */
export const cronTicksOf = (singleton: string, outcome: CronOutcome): Counter =>
  cronTicks.pipe(Metric.tagged("singleton", singleton), Metric.tagged("outcome", outcome))
