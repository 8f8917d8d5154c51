/**
 * An in-memory `RunnerStorage` that several runners in one process can share: shard locks with
 * an owner and an expiry, and runner heartbeats, both on the Effect `Clock`. (The cluster's own
 * `RunnerStorage.layerMemory` does not lock: two runners on it both run every singleton.)
 *
 * It behaves like the SQL runner storage: a lock is taken when free, owned by the caller, or
 * expired; `refresh` extends the caller's locks (even expired ones nobody took, as SQL does) and
 * is the runner's heartbeat; `getRunners`
 * lists only runners whose heartbeat is fresh, so a runner that stopped refreshing loses its
 * place in the hash ring and its shards move after their locks expire.
 *
 * @internal
 */
import * as MachineId from "@effect/cluster/MachineId"
import type { Runner } from "@effect/cluster/Runner"
import type * as RunnerAddress from "@effect/cluster/RunnerAddress"
import * as RunnerStorage from "@effect/cluster/RunnerStorage"
import type { ShardId } from "@effect/cluster/ShardId"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"

interface Lock {
  readonly owner: string
  at: number
}

/** @internal */
export const make = (expirationMillis: number): Effect.Effect<RunnerStorage.RunnerStorage["Type"]> =>
  Effect.map(Effect.clock, (clock: Clock.Clock) => {
    const now = () => clock.unsafeCurrentTimeMillis()
    const keyOf = (address: RunnerAddress.RunnerAddress) => `${address.host}:${address.port}`
    const runners = new Map<string, { runner: Runner; healthy: boolean; heartbeat: number }>()
    const machineIds = new Map<string, number>()
    const locks = new Map<string, Lock>()
    const isLive = (lock: Lock) => now() - lock.at <= expirationMillis

    return RunnerStorage.RunnerStorage.of({
      register: (runner, healthy) =>
        Effect.sync(() => {
          const key = keyOf(runner.address)
          runners.set(key, { runner, healthy, heartbeat: now() })
          let id = machineIds.get(key)
          if (id === undefined) {
            id = machineIds.size
            machineIds.set(key, id)
          }
          return MachineId.make(id)
        }),
      unregister: (address) =>
        Effect.sync(() => {
          runners.delete(keyOf(address))
        }),
      getRunners: Effect.sync(() =>
        Array.from(runners.values())
          .filter((entry) => now() - entry.heartbeat <= expirationMillis)
          .map((entry) => [entry.runner, entry.healthy] as const)
      ),
      setRunnerHealth: (address, healthy) =>
        Effect.sync(() => {
          const entry = runners.get(keyOf(address))
          if (entry !== undefined) entry.healthy = healthy
        }),
      acquire: (address, shardIds) =>
        Effect.sync(() => {
          const owner = keyOf(address)
          const acquired: Array<ShardId> = []
          for (const shardId of shardIds) {
            const lock = locks.get(shardId.toString())
            if (lock === undefined || lock.owner === owner || !isLive(lock)) {
              locks.set(shardId.toString(), { owner, at: now() })
              acquired.push(shardId)
            }
          }
          return acquired
        }),
      refresh: (address, shardIds) =>
        Effect.sync(() => {
          const owner = keyOf(address)
          const entry = runners.get(owner)
          if (entry !== undefined) entry.heartbeat = now()
          const refreshed: Array<ShardId> = []
          for (const shardId of shardIds) {
            const lock = locks.get(shardId.toString())
            if (lock !== undefined && lock.owner === owner) {
              lock.at = now()
              refreshed.push(shardId)
            }
          }
          return refreshed
        }),
      release: (address, shardId) =>
        Effect.sync(() => {
          const lock = locks.get(shardId.toString())
          if (lock?.owner === keyOf(address)) locks.delete(shardId.toString())
        }),
      releaseAll: (address) =>
        Effect.sync(() => {
          const owner = keyOf(address)
          for (const [shard, lock] of locks) {
            if (lock.owner === owner) locks.delete(shard)
          }
        })
    })
  })
