/**
 * Lost updates: `processes` processes each run `perProcess` concurrent increments of one counter,
 * once with the platform's default `modify` (what `KeyValueStore.make` derives from `get` and
 * `set`: read, then write) over the very same store, and once with our atomic `modify`. The
 * final counter tells how many acknowledged increments were lost.
 *
 * Child mode (spawned by `run`): `LostUpdates.ts --child <method> <location JSON> <count>`.
 */
import { KeyValueStore } from "@effect/platform"
import { Effect, Option } from "effect"
import { spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Stores from "./Stores.js"

export type Method = "platform default modify" | "durable-singleton modify"

export interface Result {
  readonly store: string
  readonly method: Method
  readonly increments: number
  readonly final: number
  readonly lost: number
}

const thisFile = fileURLToPath(import.meta.url)
const increment = (n: string) => String(Number(n) + 1)
const key = "lost-updates:counter"

// The platform's derived store over the same backend: only get and set are passed, so `modify`
// is the platform's default (get, then set).
const platformDefault = (store: KeyValueStore.KeyValueStore) =>
  KeyValueStore.make({
    get: store.get,
    getUint8Array: store.getUint8Array,
    set: store.set,
    remove: store.remove,
    clear: store.clear,
    size: store.size
  })

const child = (method: Method, location: Stores.Location, count: number) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const ours = yield* Stores.open(location)
    const store = method === "durable-singleton modify" ? ours : platformDefault(ours)
    // Start together: every process connects first, then waits for the parent's "go".
    process.stdout.write("ready\n")
    yield* Effect.promise(() => new Promise((resolve) => process.stdin.once("data", resolve)))
    yield* Effect.forEach(Array.from({ length: count }), () => store.modify(key, increment), {
      concurrency: 8,
      discard: true
    })
  })))

// A child process, started (connected, waiting) when the promise resolves; `go` lets it run.
const startChild = (method: Method, location: Stores.Location, count: number) =>
  new Promise<{ readonly go: () => void; readonly done: Promise<void> }>((started, failed) => {
    const proc = spawn(
      process.execPath,
      ["--conditions=@durable-singleton/source", "--import", "tsx", thisFile, "--child", method, JSON.stringify(location), String(count)],
      { stdio: ["pipe", "pipe", "inherit"] }
    )
    const done = new Promise<void>((resolve, reject) => {
      proc.on("error", reject)
      proc.on("exit", (code) => code === 0 ? resolve() : reject(new Error(`lost-updates child exited with ${code}`)))
    })
    done.catch(failed)
    proc.stdout.once("data", () => started({ go: () => proc.stdin.end("go\n"), done }))
  })

export const run = async (
  location: Stores.Location,
  options: { readonly processes?: number; readonly perProcess?: number } = {}
): Promise<ReadonlyArray<Result>> => {
  const processes = options.processes ?? 4
  const perProcess = options.perProcess ?? 100
  const results: Array<Result> = []
  for (const method of ["platform default modify", "durable-singleton modify"] as const) {
    await Effect.runPromise(Effect.scoped(Effect.flatMap(Stores.open(location), (store) => store.set(key, "0"))))
    const children = await Promise.all(Array.from({ length: processes }, () => startChild(method, location, perProcess)))
    for (const child of children) child.go()
    await Promise.all(children.map((child) => child.done))
    const final = await Effect.runPromise(Effect.scoped(Effect.flatMap(Stores.open(location), (store) => store.get(key))))
    const value = Number(Option.getOrElse(final, () => "0"))
    results.push({ store: location.kind, method, increments: processes * perProcess, final: value, lost: processes * perProcess - value })
  }
  return results
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === thisFile && process.argv[2] === "--child") {
  child(process.argv[3] as Method, JSON.parse(process.argv[4]!), Number(process.argv[5])).catch((error) => {
    console.error(error)
    process.exit(1)
  })
}
