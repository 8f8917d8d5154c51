// The cron example of the README, as it stands there: keep both the same.
import { FencedCron, Store, TestKit } from "@durable-singleton/core"
import { expect, it } from "@effect/vitest"
import { Cron, DateTime, Effect, Option, Schema } from "effect"

const Report = FencedCron.make({
  name: "report",
  cron: Cron.unsafeParse("*/5 * * * *"), // every 5 minutes
  state: { schema: Schema.Struct({ sent: Schema.Number }), initial: { sent: 0 } },
  execute: (state, tick) =>
    Effect.gen(function*() {
      yield* Effect.log(`report for ${DateTime.formatIso(tick.scheduledAt)}`)
      yield* state.update(({ sent }) => ({ sent: sent + 1 })) // fenced write
    })
})

it.scoped("a tick the scheduler delivers again runs once", () =>
  Effect.gen(function*() {
    const cluster = yield* TestKit.make({ layer: Report, runners: ["a", "b"] })
    yield* cluster.advance("11 minutes") // ticks at 00:05 and 00:10
    // as after a handoff that lost the reply: the cluster delivers the 00:05 tick again
    yield* cluster.redeliver({ entityType: "ClusterCron/report", entityId: "1970-01-01T00:05:00.000Z" })
    yield* cluster.advance("5 minutes") // the redelivery, and the tick at 00:15
    const status = yield* Effect.provideService(Report.status, Store.Store, cluster.store)
    expect(status.counts).toMatchObject({ completed: 3, skippedDuplicate: 1 })
    expect(Option.map(yield* TestKit.stateOf(cluster, Report), (stored) => stored.state)).toEqual(Option.some({ sent: 3 }))
  }))
