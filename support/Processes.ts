/**
 * Child processes that start together, for benchmarks and multi-process tests: each connects
 * first, then all start on the parent's "go", and each reports one line of JSON when it is done.
 *
 * - Parent: {@link run} starts them and returns their reports.
 * - Child (started as `<file> --child <args>`): {@link ready} once connected, {@link report} at
 *   the end.
 */
import { spawn } from "node:child_process"
import * as path from "node:path"
import * as readline from "node:readline"
import { fileURLToPath } from "node:url"

const root = path.resolve(import.meta.dirname, "..")

/** Whether the module at `moduleUrl` (its `import.meta.url`) is the program node was started with. */
export const isMain = (moduleUrl: string): boolean =>
  process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(moduleUrl)

/**
 * Starts `processes` children running `moduleUrl --child ...args`, waits until every one is
 * ready (connected), tells them all to go at once and returns what each reported. A child that
 * fails, or exits before it is ready, fails the run; the others are killed, as all are when
 * `signal` aborts.
 */
export const run = async <A>(
  moduleUrl: string,
  processes: number,
  args: ReadonlyArray<string>,
  signal?: AbortSignal
): Promise<Array<A>> => {
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
  const killRunning = () => {
    for (const { child } of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    }
  }
  signal?.addEventListener("abort", killRunning)
  try {
    await Promise.all(children.map(({ started }) => started))
    for (const { child } of children) child.stdin.end("go\n")
    const codes = await Promise.all(children.map(({ closed }) => closed))
    return children.map(({ result }, i) => result(codes[i]!))
  } finally {
    signal?.removeEventListener("abort", killRunning)
    killRunning()
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
