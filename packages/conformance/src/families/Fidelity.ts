/**
 * Fidelity family: hostile keys and values (DESIGN.md §2) round-trip exactly between clients and
 * never alias: empty, NUL, LIKE/glob/SQL/Lua metacharacters, precomposed vs decomposed Unicode,
 * case, keys at the length limit, 1 MiB values, bytes (read back as plain `Uint8Array`s).
 *
 * @since 0.1.0
 */
import * as Store from "@durable-singleton/core/Store"
import * as Effect from "effect/Effect"
import * as fc from "effect/FastCheck"
import * as Option from "effect/Option"
import * as Internal from "../internal/check.js"
import * as Hostile from "../internal/hostile.js"

const { attempt, expect, show } = Internal

// Writes each key through one client and reads all of them back through another, then removes
// one and checks that no other key went with it.
const distinctKeys = (keys: ReadonlyArray<string>, writer: Store.Store, reader: Store.Store) =>
  Effect.gen(function*() {
    const valueOf = (i: number) => `#${i}`
    for (const [i, key] of keys.entries()) {
      yield* attempt(`set(${show(key)})`, writer.set(key, valueOf(i)))
    }
    const size = yield* attempt("size", reader.size)
    yield* expect(
      size === keys.length,
      () => `after setting ${keys.length} distinct keys, size is ${size}: some keys aliased or were lost`
    )
    yield* readBack(keys, reader, valueOf, -1)
    yield* attempt(`remove(${show(keys[0])})`, writer.remove(keys[0]!))
    const removed = yield* attempt(`get(${show(keys[0])})`, reader.get(keys[0]!))
    yield* expect(Option.isNone(removed), () => `get(${show(keys[0])}) after remove returned ${show(removed)}`)
    yield* readBack(keys, reader, valueOf, 0)
    const after = yield* attempt("size", reader.size)
    yield* expect(after === keys.length - 1, () => `after removing ${show(keys[0])}, size is ${after}, expected ${keys.length - 1}`)
  })

const readBack = (keys: ReadonlyArray<string>, reader: Store.Store, valueOf: (i: number) => string, removed: number) =>
  Effect.forEach(keys.entries(), ([i, key]) =>
    i === removed ? Effect.void : Effect.gen(function*() {
      const got = yield* attempt(`get(${show(key)})`, reader.get(key))
      yield* expect(
        Option.isSome(got) && got.value === valueOf(i),
        () => {
          const other = Option.isSome(got) ? keys[Number(got.value.slice(1))] : undefined
          return `get(${show(key)}) returned ${show(got)}, expected ${show(valueOf(i))}` +
            (other === undefined ? "" : `: the key aliases ${show(other)}`) +
            (removed >= 0 ? ` (after removing ${show(keys[removed])})` : "")
        }
      )
      const present = yield* attempt(`has(${show(key)})`, reader.has(key))
      yield* expect(present, () => `has(${show(key)}) returned false after get found it`)
    }), { discard: true })

const twoClients = (session: Internal.Session, namespace: string) =>
  Effect.all([session.client(namespace), session.client(namespace)])

// The first index where two values differ, for messages about large values.
const firstDifference = (a: Store.Value, b: Store.Value): string => {
  if (typeof a !== typeof b) return `stored as ${typeof a === "string" ? "a string" : "bytes"}, read back as ${typeof b === "string" ? "a string" : "bytes"}`
  const length = Math.min(a.length, b.length)
  for (let i = 0; i < length; i++) {
    if (a[i] !== b[i]) return `first difference at index ${i} (of ${a.length} written, ${b.length} read)`
  }
  return `lengths differ: ${a.length} written, ${b.length} read`
}

const similarPair: fc.Arbitrary<readonly [string, string]> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...Hostile.similarKeys) },
  {
    weight: 1,
    arbitrary: Hostile.wellFormedString({ minLength: 1, maxLength: 6 })
      .map((s) => [s, s.toUpperCase()] as const)
      .filter(([a, b]) => a !== b)
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom("\u00e9t\u00e9", "\u00c5ngstr\u00f6m", "\u1e9b\u0323", "\uac00", "\u00f1o")
      .map((s) => [s.normalize("NFC"), s.normalize("NFD")] as const)
  }
)

const uniqueKeysOfPairs = (pairs: ReadonlyArray<readonly [string, string]>) => [...new Set(pairs.flat())]

// Bytes are read back as a plain Uint8Array: a Node Buffer (what drivers hand out) is a subclass
// whose `slice` is a view of the same memory, not a copy.
const expectPlainBytes = (label: string, read: Option.Option<Store.Value>) =>
  expect(
    Option.isNone(read) || typeof read.value === "string" || Object.getPrototypeOf(read.value) === Uint8Array.prototype,
    () =>
      `${label} returned bytes as a ${
        Option.getOrThrow(read).constructor.name
      }, expected a plain Uint8Array (a Node Buffer's slice is a view of the same memory, not a copy)`
  )

// The same value with its first character (code point) or byte moved to the end: as long, and
// only right if all of it was seen.
const rotate = <V extends Store.Value>(value: V): V => {
  if (typeof value === "string") {
    const [first = ""] = value
    return (value.slice(first.length) + first) as V
  }
  const out = new Uint8Array(value.length)
  out.set(value.subarray(1))
  out[value.length - 1] = value[0]!
  return out as V
}

const mib = 1024 * 1024

const largeValue = (kind: "string" | "bytes", seed: number): Store.Value =>
  kind === "string" ? Hostile.patternString(mib, seed) : Hostile.patternBytes(mib, seed)

/** The longest key every store accepts, ending in `last`, built from `unit`. */
const keyAtLimit = (unit: string, last: string): string => {
  const room = Store.maxKeyBytes - Store.keyBytes(last)
  const unitBytes = Store.keyBytes(unit)
  const base = unit.repeat(Math.floor(room / unitBytes))
  return base + "a".repeat(room - Store.keyBytes(base)) + last
}

/**
 * @since 0.1.0
 * @category checks
 */
export const checks: ReadonlyArray<Internal.Check> = [
  Internal.check({
    family: "fidelity",
    name: "hostile-keys",
    description: "keys with metacharacters, NUL, Unicode and whitespace round-trip between clients and never alias",
    defaultRuns: 30,
    arbitrary: () =>
      fc.record({
        namespace: Hostile.namespace,
        keys: fc.uniqueArray(Hostile.key, { minLength: 1, maxLength: 16 })
      }),
    examples: [{ namespace: "conformance", keys: Hostile.hostileKeys }],
    run: (input, { session }) =>
      Effect.flatMap(twoClients(session, input.namespace), ([writer, reader]) => distinctKeys(input.keys, writer, reader))
  }),
  Internal.check({
    family: "fidelity",
    name: "similar-keys",
    description:
      "keys differing only by normalisation, case, trailing space, NUL, zero-width characters or a metacharacter stay distinct",
    defaultRuns: 20,
    arbitrary: () =>
      fc.record({
        namespace: Hostile.namespace,
        pairs: fc.array(similarPair, { minLength: 1, maxLength: 6 })
      }),
    examples: [{ namespace: "conformance", pairs: Hostile.similarKeys }],
    run: (input, { session }) =>
      Effect.flatMap(
        twoClients(session, input.namespace),
        ([writer, reader]) => distinctKeys(uniqueKeysOfPairs(input.pairs), writer, reader)
      )
  }),
  Internal.check({
    family: "fidelity",
    name: "hostile-values",
    description:
      "string values (empty, NUL, BOM, any Unicode) and bytes (empty, invalid UTF-8) round-trip with their kind, bytes as plain Uint8Arrays, also when written back through modifyOrInit; get and getUint8Array follow platform semantics",
    defaultRuns: 30,
    arbitrary: () =>
      fc.record({
        namespace: Hostile.namespace,
        values: fc.array(Hostile.value, { minLength: 1, maxLength: 12 })
      }),
    examples: [{ namespace: "conformance", values: [...Hostile.hostileStrings, ...Hostile.hostileBytes] }],
    run: (input, { session }) =>
      Effect.gen(function*() {
        const [writer, reader] = yield* twoClients(session, input.namespace)
        const keyOf = (i: number) => `value/${i}`
        for (const [i, value] of input.values.entries()) {
          // Both write paths: plain set, and creation through modifyOrInit.
          if (i % 2 === 0) yield* attempt(`set(${show(keyOf(i))}, ${show(value)})`, writer.set(keyOf(i), value))
          else {
            yield* attempt(
              `modifyOrInit(${show(keyOf(i))}) creating ${show(value)}`,
              writer.modifyOrInit(keyOf(i), (current) => [undefined, Option.isNone(current) ? Option.some(value) : Option.none()])
            )
          }
        }
        for (const [i, value] of input.values.entries()) {
          const key = keyOf(i)
          const exact = yield* attempt(`modifyOrInit(${show(key)}) reading`, Internal.readExact(reader, key))
          yield* expect(
            Internal.sameValue(exact, Option.some(value)),
            () => `wrote ${show(value)}, another client read ${show(exact)} (through modifyOrInit)`
          )
          yield* expectPlainBytes(`modifyOrInit(${show(key)}) reading`, exact)
          const asString = yield* attempt(`get(${show(key)})`, reader.get(key))
          yield* expect(
            Internal.sameValue(asString, Option.some(Store.asString(value))),
            () => `get(${show(key)}) of ${show(value)} returned ${show(asString)}, expected ${show(Store.asString(value))}`
          )
          const asBytes = yield* attempt(`getUint8Array(${show(key)})`, reader.getUint8Array(key))
          yield* expect(
            Internal.sameValue(asBytes, Option.some(Store.asBytes(value))),
            () => `getUint8Array(${show(key)}) of ${show(value)} returned ${show(asBytes)}, expected ${show(Store.asBytes(value))}`
          )
          yield* expectPlainBytes(`getUint8Array(${show(key)})`, asBytes)
          // Written back as read, through the compare-and-set of a present key.
          yield* attempt(`modifyOrInit(${show(key)}) writing back`, reader.modifyOrInit(key, (current) => [undefined, current]))
          const again = yield* attempt(`modifyOrInit(${show(key)}) reading`, Internal.readExact(writer, key))
          yield* expect(
            Internal.sameValue(again, Option.some(value)),
            () => `${show(value)} written back as read through modifyOrInit, read back as ${show(again)}`
          )
        }
        const size = yield* attempt("size", reader.size)
        yield* expect(size === input.values.length, () => `wrote ${input.values.length} keys, size is ${size}`)
      })
  }),
  Internal.check({
    family: "fidelity",
    name: "large-values",
    description:
      "1 MiB strings (multi-byte, NUL) and 1 MiB byte arrays round-trip between clients, bytes as plain Uint8Arrays, through set, modifyOrInit and modify / modifyUint8Array",
    defaultRuns: 4,
    arbitrary: () =>
      fc.record({
        namespace: Hostile.namespace,
        kind: fc.constantFrom<"string" | "bytes">("string", "bytes"),
        seed: fc.nat()
      }),
    examples: [
      { namespace: "conformance", kind: "string" as const, seed: 1 },
      { namespace: "conformance", kind: "bytes" as const, seed: 2 }
    ],
    run: (input, { session }) =>
      Effect.gen(function*() {
        const [writer, reader] = yield* twoClients(session, input.namespace)
        const first = largeValue(input.kind, input.seed)
        yield* attempt(`set of a 1 MiB ${input.kind}`, writer.set("large", first))
        const read = yield* attempt("modifyOrInit reading a 1 MiB value", Internal.readExact(reader, "large"))
        yield* expect(
          Internal.sameValue(read, Option.some(first)),
          () => `a 1 MiB ${input.kind} did not round-trip: ${Option.isNone(read) ? "absent" : firstDifference(first, read.value)}`
        )
        yield* expectPlainBytes("modifyOrInit reading a 1 MiB value", read)
        const second = largeValue(input.kind, input.seed + 1)
        yield* attempt(
          "modifyOrInit replacing a 1 MiB value",
          reader.modifyOrInit("large", () => [undefined, Option.some(second)])
        )
        const again = yield* attempt("modifyOrInit reading a 1 MiB value", Internal.readExact(writer, "large"))
        yield* expect(
          Internal.sameValue(again, Option.some(second)),
          () =>
            `a 1 MiB ${input.kind} written through modifyOrInit did not round-trip: ${
              Option.isNone(again) ? "absent" : firstDifference(second, again.value)
            }`
        )
        yield* expectPlainBytes("modifyOrInit reading a 1 MiB value", again)
        // The platform's modify, whose f must see all of the value.
        const method = input.kind === "string" ? "modify" : "modifyUint8Array"
        yield* attempt(
          `${method} of a 1 MiB value`,
          typeof second === "string"
            ? Effect.asVoid(writer.modify("large", rotate))
            : Effect.asVoid(writer.modifyUint8Array("large", rotate))
        )
        const third = rotate(second)
        const modified = yield* attempt("modifyOrInit reading a 1 MiB value", Internal.readExact(reader, "large"))
        yield* expect(
          Internal.sameValue(modified, Option.some(third)),
          () =>
            `a 1 MiB ${input.kind} updated through ${method} did not round-trip: ${
              Option.isNone(modified) ? "absent" : firstDifference(third, modified.value)
            }`
        )
        yield* expectPlainBytes("modifyOrInit reading a 1 MiB value", modified)
      })
  }),
  Internal.check({
    family: "fidelity",
    name: "long-keys",
    description: `keys of exactly ${Store.maxKeyBytes} UTF-8 bytes (1- to 4-byte characters) round-trip and differ by their last character`,
    defaultRuns: 8,
    arbitrary: () =>
      fc.record({
        namespace: Hostile.namespace,
        unit: fc.constantFrom("a", "\u00e9", "\u20ac", "\ud83d\ude00", "%_", "\u0000"),
        last: fc.constantFrom(["x", "y"] as const, ["x", "X"] as const, ["%", "_"] as const, ["\u0000", "\u0001"] as const)
      }),
    examples: [
      { namespace: "conformance", unit: "a", last: ["x", "y"] },
      { namespace: "conformance", unit: "\ud83d\ude00", last: ["x", "X"] }
    ],
    run: (input, { session }) =>
      Effect.flatMap(twoClients(session, input.namespace), ([writer, reader]) =>
        distinctKeys([keyAtLimit(input.unit, input.last[0]), keyAtLimit(input.unit, input.last[1])], writer, reader))
  })
]
