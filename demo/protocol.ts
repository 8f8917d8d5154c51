/**
 * What the demo and its runner processes tell each other over the IPC channel of
 * `child_process.fork`.
 */

/** Where a runner keeps the durable-singleton state (every runner and the demo use the same). */
export type StoreConfig =
  | { readonly kind: "sqlite"; readonly filename: string }
  | { readonly kind: "postgres"; readonly url: string; readonly schema: string }
  | { readonly kind: "redis"; readonly url: string; readonly namespace: string }

/** Where the cluster keeps its runner and message storage. */
export type ClusterStorageConfig =
  | { readonly kind: "sqlite"; readonly filename: string }
  | { readonly kind: "postgres"; readonly url: string }

/** Handed to each runner in the `DEMO_RUNNER` environment variable (JSON). */
export interface RunnerConfig {
  readonly name: string
  readonly port: number
  readonly cluster: ClusterStorageConfig
  readonly store: StoreConfig
}

/** What a runner reports (see {@link RunnerEvent}). */
export type RunnerReport =
  /** Loaded its code; waits for `join`. */
  | { readonly type: "loaded" }
  /** Joined the cluster: its runner is registered and our singletons are registered with it. */
  | { readonly type: "ready"; readonly address: string }
  /** The cluster started or stopped one of our singletons on this runner (its own debug log). */
  | { readonly type: "singleton-started"; readonly singleton: string }
  | { readonly type: "singleton-stopped"; readonly singleton: string }
  /** The ledger's first execution under a new claim: the state the claim saw. */
  | {
    readonly type: "claimed"
    readonly epoch: number
    readonly total: number
    readonly entries: ReadonlyArray<string>
  }
  | { readonly type: "ack"; readonly epoch: number; readonly entry: string; readonly total: number }
  /** A fenced write of the ledger refused with `LeaderHandoffFailed`. */
  | {
    readonly type: "rejected"
    readonly epoch: number
    readonly entry: string
    readonly expectedEpoch: number | undefined
    readonly actualEpoch: number | undefined
  }
  /** Any other failed write (store unreachable, …). */
  | { readonly type: "write-failed"; readonly epoch: number; readonly entry: string; readonly reason: string }
  /** The runtime's "stepping down" warning, with the epochs of the `LeaderHandoffFailed` it carries. */
  | {
    readonly type: "stepping-down"
    readonly singleton: string
    readonly expectedEpoch: number | undefined
    readonly actualEpoch: number | undefined
  }
  /** About to stop itself with SIGSTOP, right before the ledger write of `entry`. */
  | { readonly type: "freezing"; readonly epoch: number; readonly entry: string }
  /** A cron tick executed (and its fenced state write acknowledged). */
  | {
    readonly type: "tick"
    readonly scheduledAt: string
    readonly epoch: number
    readonly startedAt: number
    readonly finishedAt: number
    readonly count: number
  }
  /** The cron's tick ledger skipped a delivery of a tick (logged by the runtime). */
  | { readonly type: "tick-skipped"; readonly scheduledAt: string; readonly outcome: string }
  /** Any other warning or error the runtime or the cluster logged. */
  | { readonly type: "log"; readonly level: string; readonly message: string }

/** A report as the demo receives it: `at` is the runner's wall-clock time in milliseconds. */
export type RunnerEvent = RunnerReport & { readonly at: number }

/** What the demo asks of a runner. */
export type RunnerCommand =
  | { readonly type: "join" }
  | { readonly type: "freeze-before-next-write" }
