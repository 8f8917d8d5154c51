/**
 * Helpers for tests against the shared Redis server (REDIS_URL).
 */
import { it } from "@effect/vitest"
import { Effect } from "effect"
import type * as Scope from "effect/Scope"
import { Redis, type RedisOptions } from "ioredis"
import { randomUUID } from "node:crypto"
import { serverUrl } from "../../../../support/test-env.js"
import * as KeySpace from "../../src/internal/keySpace.js"

export const url = serverUrl("REDIS_URL")

// Registers a live, scoped test against the shared server, or, without REDIS_URL, a test that
// says in its name that it is skipped (serverUrl has already warned, and throws under CI=true).
export const redisTest = (
  name: string,
  self: (url: string) => Effect.Effect<unknown, unknown, Scope.Scope>,
  timeout?: number
) =>
  url === undefined
    ? it(`${name} (SKIPPED: REDIS_URL is not set)`, (ctx) => ctx.skip())
    : it.scopedLive(name, () => self(url), timeout)

// A raw ioredis client, quit with the scope.
export const rawClient = (url: string, options: RedisOptions = {}) =>
  Effect.acquireRelease(Effect.sync(() => new Redis(url, options)), (client) => Effect.promise(() => client.quit()))

// A client a store accepts (`fromClient` refuses one that resends unanswered commands).
export const storeClient = (url: string, options: RedisOptions = {}) =>
  rawClient(url, { ...options, autoResendUnfulfilledCommands: false })

// Deletes every key starting with `prefix` (exactly: the MATCH pattern is escaped).
export const deleteKeysUnder = (url: string, prefix: string) =>
  Effect.scoped(Effect.flatMap(rawClient(url), (client) =>
    Effect.promise(async () => {
      const pattern = Buffer.concat([KeySpace.escapeGlob(Buffer.from(prefix)), Buffer.from("*")])
      let cursor = "0"
      do {
        const [next, keys] = await client.callBuffer("SCAN", cursor, "MATCH", pattern, "COUNT", "1000") as [
          Buffer,
          Array<Buffer>
        ]
        cursor = next.toString()
        if (keys.length > 0) await client.callBuffer("UNLINK", ...keys)
      } while (cursor !== "0")
    })))

// Storage for one test: a unique prefix, whose keys are deleted when the scope closes.
export const uniquePrefix = (url: string) =>
  Effect.acquireRelease(
    Effect.sync(() => `durable-singleton-test:${randomUUID()}:`),
    (prefix) => deleteKeysUnder(url, prefix)
  )
