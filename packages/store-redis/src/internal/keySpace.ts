/**
 * Where a store's keys live in Redis.
 *
 * A store key `k` in namespace `ns` under prefix `p` is the Redis key
 * `p + byteLength(ns) + ":" + ns + ":" + k` (lengths in UTF-8 bytes). The decimal length ends at
 * the first `:` and exactly that many bytes follow as the namespace, so the part before `k`
 * names exactly one namespace: no namespace's keys can start with another namespace's part,
 * whatever characters either contains (`a` → `1:a:`, `a:b` → `3:a:b:`).
 *
 * @internal
 */

/** @internal */
export interface KeySpace {
  /** Prepended to every store key in our commands (the client may add its own `keyPrefix`). */
  readonly keyPrefix: string
  /** The bytes every Redis key of this namespace starts with on the server. */
  readonly serverPrefix: Buffer
  /** The length of the client's own `keyPrefix`: SCAN returns it, commands add it back. */
  readonly clientPrefixLength: number
  /** SCAN MATCH pattern of the namespace: the server prefix, glob-escaped, then `*`. */
  readonly matchPattern: Buffer
}

/** @internal */
export const make = (options: {
  readonly prefix: string
  readonly namespace: string
  readonly clientKeyPrefix: string | Buffer
}): KeySpace => {
  const keyPrefix = `${options.prefix}${Buffer.byteLength(options.namespace)}:${options.namespace}:`
  const clientPrefix = Buffer.from(options.clientKeyPrefix)
  const serverPrefix = Buffer.concat([clientPrefix, Buffer.from(keyPrefix)])
  return {
    keyPrefix,
    serverPrefix,
    clientPrefixLength: clientPrefix.length,
    matchPattern: Buffer.concat([escapeGlob(serverPrefix), star])
  }
}

const star = Buffer.from("*")
const backslash = 0x5c
const globMeta = new Set([0x2a, 0x3f, 0x5b, 0x5d, backslash]) // * ? [ ] \

/**
 * Escapes Redis glob metacharacters (`*?[]\`) with a backslash, byte by byte: the pattern
 * matches exactly these bytes. UTF-8 multi-byte sequences never contain ASCII bytes, so only
 * real metacharacters are escaped.
 *
 * @internal
 */
export const escapeGlob = (bytes: Uint8Array): Buffer => {
  const out: Array<number> = []
  for (const byte of bytes) {
    if (globMeta.has(byte)) out.push(backslash)
    out.push(byte)
  }
  return Buffer.from(out)
}
