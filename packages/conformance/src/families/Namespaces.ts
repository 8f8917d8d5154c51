/**
 * Namespace isolation family: two namespaces whose names are prefixes of each other or contain
 * metacharacters never see each other's keys; `size`, `isEmpty`, `remove` and `clear` in one
 * never touch the other; clients of the same namespace share it.
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

// Stores that keep every namespace in one flat key space store a key at a prefix + the key:
// the namespace and a separator, the namespace as is or with the separator doubled (a tempting
// escape). Two namespaces collide when one's prefix extends the other's by some rest: the
// shorter one's key rest + k is stored where the longer one's k is.
const maxSeparatorLength = 8

// Keys of namespace `own` that such a store maps onto keys of namespace `other`. Joined as is,
// `other` = `own` + s + r collides for the separator s whatever it is: every start of what
// `other` adds is tried. With the separator doubled, the common separators are.
const collidingKeys = (own: string, other: string, keys: ReadonlyArray<string>): ReadonlyArray<string> => {
  const prefixes: Array<readonly [string, string]> = []
  if (other.startsWith(own)) {
    const added = other.slice(own.length)
    for (let length = 0; length <= Math.min(added.length, maxSeparatorLength); length++) {
      const separator = added.slice(0, length)
      prefixes.push([own + separator, other + separator])
    }
  }
  for (const separator of Hostile.separators) {
    if (separator === "") continue
    const doubled = (namespace: string) => namespace.replaceAll(separator, separator + separator) + separator
    prefixes.push([doubled(own), doubled(other)])
  }
  const colliding = new Set<string>()
  for (const [mine, theirs] of prefixes) {
    if (theirs.length <= mine.length || !theirs.startsWith(mine)) continue
    for (const key of keys) {
      const crafted = theirs.slice(mine.length) + key
      if (Store.keyProblem(crafted) === undefined) colliding.add(crafted)
    }
  }
  return [...colliding].filter((key) => !keys.includes(key))
}

interface Side {
  readonly namespace: string
  /** Key → value written in this namespace. */
  readonly entries: ReadonlyMap<string, string>
  readonly writer: Store.Store
  readonly reader: Store.Store
}

const expectExactly = (side: Side, other: Side, when: string) =>
  Effect.gen(function*() {
    const label = `namespace ${show(side.namespace)}`
    const size = yield* attempt(`size in ${label}`, side.reader.size)
    yield* expect(
      size === side.entries.size,
      () => `${when}: size in ${label} is ${size}, expected ${side.entries.size} (namespace ${show(other.namespace)} holds ${other.entries.size})`
    )
    const empty = yield* attempt(`isEmpty in ${label}`, side.reader.isEmpty)
    yield* expect(empty === (side.entries.size === 0), () => `${when}: isEmpty in ${label} is ${empty}, expected ${side.entries.size === 0}`)
    for (const [key, value] of side.entries) {
      const got = yield* attempt(`get(${show(key)}) in ${label}`, side.reader.get(key))
      yield* expect(
        Option.isSome(got) && got.value === value,
        () => `${when}: get(${show(key)}) in ${label} returned ${show(got)}, expected ${show(value)}`
      )
    }
    for (const key of other.entries.keys()) {
      if (side.entries.has(key)) continue
      const got = yield* attempt(`get(${show(key)}) in ${label}`, side.reader.get(key))
      yield* expect(
        Option.isNone(got),
        () => `${when}: get(${show(key)}) in ${label} returned ${show(got)}, but only namespace ${show(other.namespace)} has that key`
      )
      const present = yield* attempt(`has(${show(key)}) in ${label}`, side.reader.has(key))
      yield* expect(!present, () => `${when}: has(${show(key)}) in ${label} is true, but only namespace ${show(other.namespace)} has that key`)
    }
  })

const namespacePair: fc.Arbitrary<readonly [string, string]> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...Hostile.similarNamespaces) },
  {
    weight: 2,
    arbitrary: fc.tuple(
      Hostile.namespace,
      fc.oneof(fc.constantFrom(...Hostile.separators), fc.string({ minLength: 1, maxLength: 3 })),
      fc.constantFrom("", "b", "b:c", "%")
    ).map(([a, separator, rest]) => [a, a + separator + rest] as const)
  },
  {
    weight: 1,
    arbitrary: fc.tuple(Hostile.namespace, fc.constantFrom(...Hostile.metacharacters, "b", ":b"))
      .map(([a, rest]) => [a, a + rest] as const)
  },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom("%", "_", "*", "?", "[a]"), fc.constantFrom("a", "ab", "x"))
      .map(([meta, plain]) => [plain.slice(0, 1) + meta, plain] as const)
  },
  {
    // Long namespaces differing only in their last character, up to the limit every store accepts.
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 2, max: Store.maxKeyBytes }), fc.nat(), fc.constantFrom(["a", "b"] as const, ["a", "A"] as const, ["\u00e9", "e"] as const))
      .map(([bytes, seed, [x, y]]) => {
        const prefix = Hostile.patternString(bytes - Store.keyBytes(x), seed)
        return [prefix + x, prefix + y] as const
      })
  }
).map(([a, b]) => a === b ? [a, `${b}!`] as const : [a, b] as const)

// Tried first on every seed: the longest namespaces (which any truncation merges), a pair for
// every separator, and LIKE metacharacters.
const examplePairs: ReadonlyArray<readonly [string, string]> = [
  Hostile.longNamespaces[Hostile.longNamespaces.length - 1]!,
  ...Hostile.joinedNamespaces,
  ["a", "a:"],
  ["a%", "ab"],
  ["a_", "ab"]
]

/**
 * @since 0.1.0
 * @category checks
 */
export const checks: ReadonlyArray<Internal.Check> = [
  Internal.check({
    family: "namespaces",
    name: "isolation",
    description:
      "namespaces that are prefixes of each other, contain metacharacters or are long (up to 1024 UTF-8 bytes) never see each other's keys, even keys crafted to collide when namespace and key are joined with a separator; size, isEmpty, remove and clear stay inside one",
    requires: "namespaces",
    defaultRuns: 30,
    arbitrary: () =>
      fc.record({
        namespaces: namespacePair,
        keys: fc.uniqueArray(fc.constantFrom("k", "", "b", "b:k", "%", "\u00e9"), { minLength: 1, maxLength: 3 }),
        swap: fc.boolean()
      }),
    examples: examplePairs.map((namespaces) => ({ namespaces, keys: ["k", ""], swap: false })),
    run: (input, { session }) =>
      Effect.gen(function*() {
        const [first, second] = input.swap ? [input.namespaces[1], input.namespaces[0]] : input.namespaces
        const open = (namespace: string, tag: string, keys: ReadonlyArray<string>) =>
          Effect.map(
            Effect.all([session.client(namespace), session.client(namespace)]),
            ([writer, reader]): Side => ({
              namespace,
              writer,
              reader,
              entries: new Map(keys.map((key, i) => [key, `${tag}${i}`]))
            })
          )
        const a = yield* open(first, "first:", [...input.keys, ...collidingKeys(first, second, input.keys)])
        const b = yield* open(second, "second:", [...input.keys, ...collidingKeys(second, first, input.keys)])
        const write = (side: Side) =>
          Effect.forEach(
            side.entries,
            ([key, value]) => attempt(`set(${show(key)}) in namespace ${show(side.namespace)}`, side.writer.set(key, value)),
            { discard: true }
          )
        yield* write(a)
        yield* write(b)
        yield* expectExactly(a, b, "after writing both namespaces")
        yield* expectExactly(b, a, "after writing both namespaces")

        // Remove a key that exists in both namespaces from one only.
        const shared = input.keys[0]!
        yield* attempt(`remove(${show(shared)}) in namespace ${show(a.namespace)}`, a.writer.remove(shared))
        const aAfterRemove: Side = { ...a, entries: new Map([...a.entries].filter(([key]) => key !== shared)) }
        yield* expectExactly(b, aAfterRemove, `after remove(${show(shared)}) in namespace ${show(a.namespace)}`)
        yield* expectExactly(aAfterRemove, b, `after remove(${show(shared)}) in namespace ${show(a.namespace)}`)

        yield* attempt(`clear in namespace ${show(a.namespace)}`, a.writer.clear)
        const aCleared: Side = { ...a, entries: new Map() }
        yield* expectExactly(aCleared, b, `after clear in namespace ${show(a.namespace)}`)
        yield* expectExactly(b, aCleared, `after clear in namespace ${show(a.namespace)}`)

        yield* write(a)
        yield* attempt(`clear in namespace ${show(b.namespace)}`, b.writer.clear)
        const bCleared: Side = { ...b, entries: new Map() }
        yield* expectExactly(a, bCleared, `after rewriting namespace ${show(a.namespace)} and clearing ${show(b.namespace)}`)
        yield* expectExactly(bCleared, a, `after clear in namespace ${show(b.namespace)}`)

        // A client opened later on the same namespace sees the same data.
        const late = yield* session.client(a.namespace)
        yield* expectExactly({ ...a, reader: late }, bCleared, `from a client opened later on namespace ${show(a.namespace)}`)
      })
  })
]
