/**
 * Handoff latency on a real cluster: the demo's three runner processes (@effect/cluster with
 * shard-lock refresh 1 s / expiration 4 s) on a store; once leadership has settled, the
 * leader is killed with SIGKILL, and the latency is the time until the successor's first
 * fenced write is acknowledged.
 */
import { Effect } from "effect"
import * as Backends from "../demo/backends.js"
import * as Cluster from "../demo/cluster.js"

export interface Trial {
  readonly store: Backends.StoreKind
  readonly latencyMs: number
  readonly epochs: readonly [number, number]
}

const trial = (kind: Backends.StoreKind) =>
  Effect.scoped(Effect.gen(function*() {
    const backend = yield* Backends.make(kind)
    const log = new Cluster.EventLog()
    const ports = yield* Cluster.freePorts(3)
    const { joined, runners } = yield* Cluster.start(["A", "B", "C"], ports, backend, log)
    const leader = yield* log.waitFor(
      "a stable leader",
      "40 seconds",
      Cluster.settledLeader(log, { from: joined, writes: 5, ticks: 1, quietMillis: 1500 })
    )
    const victim = runners.find((runner) => runner.name === leader.runner)!
    log.expectExit(victim.name)
    victim.signal("SIGKILL")
    const killedAt = Date.now()
    const successor = yield* log.waitFor("a successor", "40 seconds", () =>
      log.of("claimed").find((claim) => claim.runner !== victim.name && claim.epoch > leader.epoch))
    const firstWrite = yield* log.waitFor("the successor's first write", "10 seconds", () =>
      log.of("ack", { runner: successor.runner }).find((ack) => ack.epoch === successor.epoch))
    for (const runner of runners) log.expectExit(runner.name)
    return { store: kind, latencyMs: firstWrite.at - killedAt, epochs: [leader.epoch, successor.epoch] } satisfies Trial
  }))

export const run = (kinds: ReadonlyArray<Backends.StoreKind>, trials: number): Promise<ReadonlyArray<Trial>> =>
  Effect.runPromise(Effect.forEach(kinds.flatMap((kind) => Array.from({ length: trials }, () => kind)), trial))
