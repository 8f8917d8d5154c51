/**
 * Benchmarks across processes: children of a benchmark file that connect first, then start
 * together on the parent's "go", each reporting one line of JSON when it is done.
 *
 * - Parent: {@link run} starts them and returns their reports; {@link combine} merges the
 *   reports of timed children into one measurement.
 * - Child (started as `<file> --child <args>`): {@link ready} once connected, {@link report} at
 *   the end.
 */
import { spawn } from "node:child_process"
import * as path from "node:path"
import * as readline from "node:readline"
import { fileURLToPath } from "node:url"
import type { Measurement } from "./Harness.js"

const root = path.resolve(import.meta.dirname, "..")

/** Whether the module at `moduleUrl` (its `import.meta.url`) is the program node was started with. */
export const isMain = (moduleUrl: string): boolean =>
  process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(moduleUrl)

/**
 * Starts `processes` children running `moduleUrl --child ...args`, waits until every one is
 * ready (connected), tells them all to go at once and returns what each reported. A child that
 * fails, or exits before it is ready, fails the run; the others are killed.
 */
export const run = async <A>(moduleUrl: string, processes: number, args: ReadonlyArray<string>): Promise<Array<A>> => {
  const file = fileURLToPath(moduleUrl)
  const children = Array.from({ length: processes }, (_, i) => {
    const child = spawn(
      process.execPath,
      ["--conditions=@durable-singleton/source", "--import", "tsx", file, "--child", ...args],
      { cwd: root, stdio: ["pipe", "pipe", "inherit"] }
    )
    const name = `${path.basename(file)} child ${i}`
    let out = ""
    // "close", not "exit": only then has all of the child's output been read.
    const closed = new Promise<number | null>((resolve, reject) => {
      child.on("error", reject)
      child.on("close", resolve)
    })
    const started = new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (chunk) => {
        out += chunk
        if (out.includes("ready\n")) resolve()
      })
      closed.then((code) => reject(new Error(`${name} exited with ${code} before it was ready: ${out}`)), reject)
    })
    const result = (code: number | null): A => {
      if (code !== 0) throw new Error(`${name} failed with exit code ${code}: ${out}`)
      return JSON.parse(out.trim().split("\n").pop()!) as A
    }
    return { child, started, closed, result }
  })
  try {
    await Promise.all(children.map(({ started }) => started))
    for (const { child } of children) child.stdin.end("go\n")
    const codes = await Promise.all(children.map(({ closed }) => closed))
    return children.map(({ result }, i) => result(codes[i]!))
  } finally {
    for (const { child } of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    }
  }
}

/** In a child: says it is ready, then waits for the parent's "go". */
export const ready = async (): Promise<void> => {
  const lines = readline.createInterface({ input: process.stdin })
  console.log("ready")
  await new Promise((resolve) => lines.once("line", resolve))
  lines.close()
}

/** In a child: reports its result to the parent (the last line it prints). */
export const report = (result: unknown): void => {
  console.log(JSON.stringify(result))
}

/** What a timed child reports: its measurement, and how many of its increments were acknowledged. */
export interface Timed {
  readonly measurement: Measurement
  readonly acked: number
}

/**
 * The children of one timed run as one measurement: operations and throughputs add up,
 * `perWorker` holds each process's operations, and latencies are those of the worst process (an
 * upper bound of the combined quantiles).
 */
export const combine = (reports: ReadonlyArray<Timed>): Timed => {
  const ms = reports.map((r) => r.measurement)
  const ops = ms.reduce((n, m) => n + m.ops, 0)
  const worst = (f: (m: Measurement) => number) => Math.max(...ms.map(f))
  return {
    measurement: {
      ops,
      seconds: worst((m) => m.seconds),
      opsPerSec: ms.reduce((n, m) => n + m.opsPerSec, 0),
      p50Ms: worst((m) => m.p50Ms),
      p99Ms: worst((m) => m.p99Ms),
      p999Ms: worst((m) => m.p999Ms),
      maxMs: worst((m) => m.maxMs),
      retriesPerOp: ops === 0 ? 0 : ms.reduce((n, m) => n + m.retriesPerOp * m.ops, 0) / ops,
      perWorker: ms.map((m) => m.ops)
    },
    acked: reports.reduce((n, r) => n + r.acked, 0)
  }
}
