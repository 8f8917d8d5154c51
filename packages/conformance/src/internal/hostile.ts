// Hostile inputs from the store contract (DESIGN.md §2): keys, values and namespaces that break
// stores which escape, normalise, truncate, case-fold or pattern-match them.
import * as Store from "@durable-singleton/core/Store"
import * as fc from "effect/FastCheck"

/** Characters with a meaning in SQL, LIKE, glob, Lua patterns, Redis or shells. */
export const metacharacters = ["%", "_", "*", "?", "[", "]", "^", "$", ":", "'", "\"", "`", "\\", "/", ".", "-", "{", "}", "(", ")", "\u0000", "\n", "\r", "\t", " ", ";", "#", "|"] as const

/** Keys that must round-trip exactly and never alias each other. */
export const hostileKeys: ReadonlyArray<string> = [
  "",
  " ",
  "a",
  "A",
  "a ",
  " a",
  "\u0000",
  "a\u0000",
  "a\u0000b",
  "a\u0000c",
  "%",
  "_",
  "a%",
  "a_",
  "*",
  "a*",
  "a?",
  "[a-z]",
  "[a]",
  "[",
  "]",
  "a[",
  "\\",
  "\\*",
  "a\\%",
  ":",
  "a:b",
  "1:a:",
  "'",
  "''",
  "\"",
  "`",
  "'; DROP TABLE kv; --",
  "' OR '1'='1",
  "$1",
  "?",
  "%s",
  "${a}",
  "{a}b",
  "a{b}",
  "KEYS *",
  "return redis.call('FLUSHALL')",
  "%a+",
  "..",
  "../a",
  "a/b",
  "a.b",
  "\n",
  "\r\n",
  "\t",
  "line\nbreak",
  "\u00e9",
  "e\u0301",
  "\u00df",
  "SS",
  "\ufb01",
  "fi",
  "\u0130",
  "i\u0307",
  "\u200b",
  "\ufeff",
  "\u2028",
  "\u0085",
  "\ud835\udcb3",
  "\ud83d\ude00",
  "\u{10ffff}",
  "\u{fffd}"
]

/**
 * Pairs of different keys that a store which normalises, case-folds, trims, truncates at NUL,
 * collates or pattern-matches would confuse.
 */
export const similarKeys: ReadonlyArray<readonly [string, string]> = [
  ["\u00e9", "e\u0301"],
  ["a", "A"],
  ["\u00df", "SS"],
  ["\u00df", "ss"],
  ["\ufb01", "fi"],
  ["\u0130", "i\u0307"],
  ["\u0130", "i"],
  ["a", "a "],
  ["a", " a"],
  ["a", "a\u0000"],
  ["a\u0000b", "a\u0000c"],
  ["a", "a\u200b"],
  ["a", "\ufeffa"],
  ["a%", "ab"],
  ["a_", "ab"],
  ["a*", "ab"],
  ["a?", "ab"],
  ["[ab]", "a"],
  ["a\\", "a\\\\"],
  ["'", "''"],
  ["a\n", "a\r\n"],
  ["", " "],
  ["", "\u0000"],
  ["\ud83d\ude00", "\ud83d\ude01"],
  ["\u{fffd}", "\ud83d\ude00"]
]

/** A deterministic pseudo-random string of exactly `bytes` UTF-8 bytes, mixing 1- to 4-byte characters and NUL. */
export const patternString = (bytes: number, seed: number): string => {
  const units = ["a", "\u0000", "\u00e9", "\u20ac", "\ud83d\ude00", "Z", "%", "\n"]
  const sizes = units.map((u) => Store.keyBytes(u))
  let state = seed >>> 0 || 1
  let out = ""
  let size = 0
  while (size < bytes) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    const index = state % units.length
    const unit = sizes[index]! <= bytes - size ? index : 0
    out += units[unit]
    size += sizes[unit]!
  }
  return out
}

/**
 * What stores commonly put between a namespace and a key when they join them into one key.
 * (The namespace check tries a pair for each on every seed, within its default runs; random
 * runs try random separators.)
 */
export const separators: ReadonlyArray<string> = ["", " ", "\u0000", ":", "::", "/", ".", "|", "#", "-", "_", ",", ";", "@", "\\", "~", "$"]

/** A namespace `a` and `a` + separator + `b`, for every separator: joined naively, they share keys. */
export const joinedNamespaces: ReadonlyArray<readonly [string, string]> = separators.map((separator) => ["a", `a${separator}b`])

/**
 * Namespaces longer than a column or identifier limit (32, 64, 255 characters, …) and up to
 * the 1024 UTF-8 bytes every store accepts, differing only in their last character: a store
 * that truncates namespaces merges them.
 */
export const longNamespaces: ReadonlyArray<readonly [string, string]> = [
  ...[33, 65, 256, 1024].map((length) => "n".repeat(length - 1)),
  patternString(Store.maxKeyBytes - 1, 7)
].map((prefix) => [`${prefix}a`, `${prefix}b`])

/** Namespace pairs that naive prefixing, LIKE or glob matching, normalising or truncating confuse. */
export const similarNamespaces: ReadonlyArray<readonly [string, string]> = [
  ...joinedNamespaces,
  ["a", "a."],
  ["a", "a:"],
  ["a", "a\u0000"],
  ["a%", "ab"],
  ["a_", "ab"],
  ["a*", "ab"],
  ["a?", "ab"],
  ["a[b]", "ab"],
  ["a\\", "a\\\\"],
  ["a", "A"],
  ["\u00e9", "e\u0301"],
  ["", "a"],
  ["a'", "a''"],
  ["{a}", "{a}b"],
  ["%", "_"],
  ...longNamespaces
]

/** Hostile namespaces for checks that do not compare namespaces. */
export const hostileNamespaces: ReadonlyArray<string> = [
  "conformance",
  "",
  "a:b",
  "ns%_*?[",
  "ns'\"`;--",
  "ns\\",
  "{tag}",
  "\u00e9",
  "e\u0301",
  "ns\u0000x",
  "\ud83d\ude00"
]

/** Well-formed strings of any code points (fast-check's `binary` unit can produce lone surrogates). */
export const wellFormedString = (constraints?: { readonly minLength?: number; readonly maxLength?: number }) =>
  fc.string({ unit: "binary", ...constraints }).filter((s) => s.isWellFormed())

const fragment = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...metacharacters) },
  { weight: 2, arbitrary: fc.constantFrom("a", "A", "b", "\u00e9", "e\u0301", "\ud83d\ude00") },
  { weight: 1, arbitrary: wellFormedString({ maxLength: 3 }) }
)

/** A key: one from the hostile list, or hostile fragments glued together. */
export const key: fc.Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom(...hostileKeys) },
  { weight: 2, arbitrary: fc.array(fragment, { maxLength: 5 }).map((parts) => parts.join("")) },
  { weight: 1, arbitrary: wellFormedString({ maxLength: 12 }) }
)

/** A namespace for checks that use one per run. */
export const namespace: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...hostileNamespaces) },
  { weight: 1, arbitrary: fc.array(fragment, { minLength: 1, maxLength: 4 }).map((parts) => parts.join("")) }
)

/** Strings that stores mangle: empty, NUL, BOM, line ends, decomposed, astral, text that looks like encodings. */
export const hostileStrings: ReadonlyArray<string> = [
  "",
  "\u0000",
  "a\u0000b",
  "\ufeff",
  "\ufeffa",
  " ",
  "\r\n",
  "\u00e9",
  "e\u0301",
  "\ud83d\ude00",
  "\ud83d\ude42 \u00e9 e\u0301",
  "AAE=",
  "\u0000\u0001",
  "null",
  "undefined",
  "{}",
  "'\\\"%_*",
  "\u{10ffff}"
]

/**
 * Byte values that stores mangle: empty, invalid UTF-8, what looks like a kind tag, NUL, and a
 * Node `Buffer` (a `Uint8Array` whose `slice` is a view: it must be read back as a plain copy).
 */
export const hostileBytes: ReadonlyArray<Uint8Array> = [
  Buffer.from("buffer"),
  new Uint8Array([]),
  new Uint8Array([0]),
  new Uint8Array([0, 1]),
  new Uint8Array([1]),
  new Uint8Array([0xff, 0xfe, 0xfd]),
  new Uint8Array([0xc3]),
  new Uint8Array([0, 0xff, 1, 0xc3, 0x28]),
  new Uint8Array([0xef, 0xbb, 0xbf]),
  new Uint8Array([0x41, 0x41, 0x45, 0x3d])
]

/** A stored value: a string or bytes. */
export const value: fc.Arbitrary<Store.Value> = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom(...hostileStrings) },
  { weight: 1, arbitrary: fc.constantFrom(...hostileBytes).map((bytes) => bytes.slice()) },
  { weight: 2, arbitrary: wellFormedString({ maxLength: 24 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 24 }) }
)

/** Deterministic pseudo-random bytes (all 256 values occur). */
export const patternBytes = (length: number, seed: number): Uint8Array => {
  const out = new Uint8Array(length)
  let state = seed >>> 0 || 1
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    out[i] = state >>> 24
  }
  return out
}
