/**
 * The PostgreSQL and Redis servers of programs that start what they need themselves (the demo,
 * the benchmarks): the URL from the environment, or the project's throwaway server
 * (scripts/servers.sh) started for the scope and stopped with it, unless it was already running.
 */
import { Data, Effect, type Scope } from "effect"
import { execFile } from "node:child_process"
import * as path from "node:path"

export type ServerKind = "postgres" | "redis"

/** The environment variable that names each server. */
export const envName = { postgres: "DATABASE_URL", redis: "REDIS_URL" } as const satisfies Record<ServerKind, string>

/** The variable is not set and the project's server could not be started; `message` says why. */
export class ServerUnavailable extends Data.TaggedError("ServerUnavailable")<{
  readonly kind: ServerKind
  readonly message: string
}> {}

const repoRoot = path.resolve(import.meta.dirname, "..")

/**
 * The server URL from the environment, or the project's throwaway server, started for this scope
 * (`bash scripts/servers.sh start <kind>`) and stopped when it closes, unless it was already
 * running.
 */
export const serverUrl = (kind: ServerKind): Effect.Effect<string, ServerUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    const variable = envName[kind]
    const fromEnv = process.env[variable]
    if (fromEnv !== undefined && fromEnv !== "") return fromEnv
    const script = path.join(repoRoot, "scripts", "servers.sh")
    const cannot = (why: string) =>
      new ServerUnavailable({
        kind,
        message: `${variable} is not set and the project's ${kind} server could not be started (${why}).\n` +
          `Set ${variable}, or install the servers once with: bash scripts/setup.sh`
      })
    process.stderr.write(`${variable} is not set: starting the project's throwaway ${kind} server (scripts/servers.sh)\n`)
    // Stops only a server this scope started (`start` says which it started and which it reused).
    const exports = yield* Effect.acquireRelease(
      Effect.mapError(run("bash", [script, "start", kind]), (error) => cannot(error)),
      (exports) => exports.includes(`# started ${kind}`) ? Effect.ignore(run("bash", [script, "stop", kind])) : Effect.void
    )
    const line = exports.split("\n").find((line) => line.startsWith(`export ${variable}=`))
    if (line === undefined) return yield* Effect.fail(cannot("scripts/servers.sh printed no URL"))
    return line.slice(`export ${variable}=`.length).trim()
  })

const run = (command: string, args: ReadonlyArray<string>) =>
  Effect.async<string, string>((resume) => {
    const child = execFile(command, args, { cwd: repoRoot, timeout: 120_000 }, (error, stdout, stderr) => {
      if (error) resume(Effect.fail(`${error.message.split("\n")[0]}${stderr ? `: ${stderr.trim().split("\n").slice(-3).join(" / ")}` : ""}`))
      else resume(Effect.succeed(stdout))
    })
    return Effect.sync(() => child.kill())
  })
