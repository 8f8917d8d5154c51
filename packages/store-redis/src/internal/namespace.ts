/**
 * Walking one namespace's keys with `SCAN`: an escaped `MATCH` pattern, and every returned key's
 * prefix checked again, so that nothing of another namespace is ever counted or deleted.
 *
 * @internal
 */
import type { Connection } from "./connection.js"
import type { KeySpace } from "./keySpace.js"

// Calls `onPage` with each page's keys of the namespace, as the server names them (with the
// client's keyPrefix). SCAN may return a key more than once.
const forEachPage = async (
  connection: Connection,
  keySpace: KeySpace,
  onPage: (keys: Array<Buffer>) => Promise<void>
): Promise<void> => {
  const { matchPattern, serverPrefix } = keySpace
  let cursor = "0"
  do {
    const [next, keys] = await connection.call(() =>
      connection.client.callBuffer("SCAN", cursor, "MATCH", matchPattern, "COUNT", "1000")
    ) as [Buffer, Array<Buffer>]
    cursor = next.toString()
    const ours = keys.filter((key) =>
      key.length >= serverPrefix.length && serverPrefix.compare(key, 0, serverPrefix.length) === 0
    )
    if (ours.length > 0) await onPage(ours)
  } while (cursor !== "0")
}

/** @internal */
export const size = async (connection: Connection, keySpace: KeySpace): Promise<number> => {
  const seen = new Set<string>()
  await forEachPage(connection, keySpace, async (keys) => {
    for (const key of keys) seen.add(key.toString("latin1"))
  })
  return seen.size
}

/** @internal */
export const clear = (connection: Connection, keySpace: KeySpace): Promise<void> =>
  forEachPage(connection, keySpace, async (keys) => {
    // Our commands get the client's keyPrefix added back.
    const withoutClientPrefix = keys.map((key) => key.subarray(keySpace.clientPrefixLength))
    await connection.call(() => connection.client.callBuffer("UNLINK", ...withoutClientPrefix))
  })
