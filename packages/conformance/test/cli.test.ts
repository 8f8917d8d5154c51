// The CLI, run as a user runs it: a child process on a subject module. (In this repository it runs
// from the TypeScript sources; the published bin runs the built JavaScript.)
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const bin = fileURLToPath(new URL("../src/bin.ts", import.meta.url))
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))

const cli = (args: ReadonlyArray<string>) =>
  new Promise<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ["--conditions=@durable-singleton/source", "--import", "tsx", bin, ...args], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => (stdout += chunk))
    child.stderr.on("data", (chunk) => (stderr += chunk))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

describe("durable-singleton-conformance", () => {
  it("passes MemoryStore: exit 0 and a table of every family", async () => {
    const { code, stderr, stdout } = await cli([fixture("memory-subject.ts"), "--runs", "5", "--seed", "7"])
    expect(stderr).toBe("")
    expect(code).toBe(0)
    expect(stdout).toContain(`conformance of "memory" · seed 7 · 5 runs per property`)
    for (const family of ["model", "fidelity", "namespaces", "atomicity", "linearizability", "handoff", "errors"]) {
      expect(stdout).toMatch(new RegExp(`^${family}\\s+\\d+/\\d+\\s+[\\d.]+ s\\s+passed$`, "m"))
    }
    expect(stdout).toMatch(/20 checks in [\d.]+ s: 20 passed, 0 failed, 0 not claimed/)
  })

  it("rejects a broken store: exit 1, the seed and a replay command that reproduces the failure", async () => {
    const first = await cli([fixture("broken-subject.ts"), "--only", "atomicity/concurrent-modify"])
    expect(first.code).toBe(1)
    expect(first.stdout).toContain("FAILED atomicity/concurrent-modify")
    expect(first.stdout).toContain("counterexample:")
    const replay = /replay: durable-singleton-conformance (\S+) --seed (\d+) --path (\S+) --only (\S+)/.exec(first.stdout)
    expect(replay, first.stdout).not.toBeNull()
    const [, module, seed, path, only] = replay!
    expect(module).toBe(fixture("broken-subject.ts"))
    expect(first.stdout).toContain(`seed ${seed}`)
    const again = await cli([module!, "--seed", seed!, "--path", path!, "--only", only!])
    expect(again.code).toBe(1)
    expect(again.stdout).toContain(`after 1 run`)
  })

  it("exits 2 with a clear message on a missing module, a module without a subject, or bad options", async () => {
    const [missing, notSubject, badOnly, noModule] = await Promise.all([
      cli(["does-not-exist.ts"]),
      cli([fixture("not-a-subject.ts")]),
      cli([fixture("memory-subject.ts"), "--only", "nonsense"]),
      cli(["--runs", "3"])
    ])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain("cannot find the subject module does-not-exist.ts")
    expect(notSubject.code).toBe(2)
    expect(notSubject.stderr).toContain("does not export a subject as its default export")
    expect(badOnly.code).toBe(2)
    expect(badOnly.stderr).toContain(`unknown family or check "nonsense"`)
    expect(noModule.code).toBe(2)
    expect(noModule.stderr).toContain("missing the subject module")
    expect(noModule.stderr).toContain("usage: durable-singleton-conformance <module>")
  })

  it("lists families and checks", async () => {
    const { code, stdout } = await cli(["--list"])
    expect(code).toBe(0)
    expect(stdout).toContain("linearizability/concurrent-histories")
    expect(stdout).toContain("namespaces/isolation [requires namespaces]")
  })
})
