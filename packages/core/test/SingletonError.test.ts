import { SingletonError } from "@durable-singleton/core"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Match } from "effect"

const constructors = {
  StateLoadFailed: SingletonError.SingletonError.StateLoadFailed,
  StatePersistFailed: SingletonError.SingletonError.StatePersistFailed,
  SchemaDecodeFailed: SingletonError.SingletonError.SchemaDecodeFailed,
  HeartbeatFailed: SingletonError.SingletonError.HeartbeatFailed,
  LeaderHandoffFailed: SingletonError.SingletonError.LeaderHandoffFailed
} satisfies Record<SingletonError.Reason, unknown>

describe("SingletonError", () => {
  it("has exactly the five reasons, each with its own constructor", () => {
    expect([...SingletonError.reasons].sort()).toEqual(Object.keys(constructors).sort())
    for (const reason of SingletonError.reasons) {
      const error = constructors[reason]({ singletonName: "s" })
      expect(error._tag).toBe("SingletonError")
      expect(error.reason).toBe(reason)
      expect(error.singletonName).toBe("s")
      expect(SingletonError.isSingletonError(error)).toBe(true)
      expect(error).toBeInstanceOf(Error)
    }
  })

  it("retries load, persist and heartbeat failures, never decode or handoff failures", () => {
    const table = Object.fromEntries(
      SingletonError.reasons.map((reason) => [reason, constructors[reason]({ singletonName: "s" }).isRetryable])
    )
    expect(table).toEqual({
      StateLoadFailed: true,
      StatePersistFailed: true,
      SchemaDecodeFailed: false,
      HeartbeatFailed: true,
      LeaderHandoffFailed: false
    })
    expect(SingletonError.isRetryable(SingletonError.SingletonError.StateLoadFailed({ singletonName: "s" }))).toBe(true)
    expect(SingletonError.isRetryable(new Error("not ours"))).toBe(false)
    expect(SingletonError.isSingletonError({ _tag: "SingletonError" })).toBe(false)
  })

  it("is exhaustively matchable on its reason", () => {
    const describeReason = Match.type<SingletonError.SingletonError>().pipe(
      Match.discriminatorsExhaustive("reason")({
        StateLoadFailed: () => "load",
        StatePersistFailed: () => "persist",
        SchemaDecodeFailed: () => "decode",
        HeartbeatFailed: () => "heartbeat",
        LeaderHandoffFailed: () => "handoff"
      })
    )
    expect(SingletonError.reasons.map((reason) => describeReason(constructors[reason]({ singletonName: "s" }))))
      .toEqual(["load", "persist", "decode", "heartbeat", "handoff"])
  })

  it("has a readable message with its details and cause", () => {
    const error = SingletonError.SingletonError.LeaderHandoffFailed({
      singletonName: "ledger",
      details: { description: "another leader claimed the state", expectedEpoch: 3, actualEpoch: 4 }
    })
    expect(error.message).toBe(
      `LeaderHandoffFailed (singleton "ledger"): another leader claimed the state; expected epoch 3, found 4`
    )
    const decode = SingletonError.SingletonError.SchemaDecodeFailed({
      singletonName: "ledger",
      cause: new Error("Expected number"),
      details: { storedVersion: 3, supportedVersion: 2 }
    })
    expect(decode.message).toBe(
      `SchemaDecodeFailed (singleton "ledger"): stored schema version 3, supported up to 2; cause: Expected number`
    )
    expect(SingletonError.SingletonError.StateLoadFailed({ singletonName: "x" }).message).toBe(
      `StateLoadFailed (singleton "x")`
    )
  })

  it.effect("lives in the error channel and can be caught by tag", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(SingletonError.SingletonError.HeartbeatFailed({ singletonName: "s" }))
      expect(Exit.isFailure(exit)).toBe(true)
      const caught = yield* Effect.catchTag(
        Effect.fail(SingletonError.SingletonError.StatePersistFailed({ singletonName: "s" })),
        "SingletonError",
        (e) => Effect.succeed(e.reason)
      )
      expect(caught).toBe("StatePersistFailed")
    }))
})
