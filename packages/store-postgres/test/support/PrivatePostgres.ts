/**
 * A PostgreSQL server of a test's own (initdb in a temp dir, a free loopback port, fsync off):
 * tests that stop, freeze and restart a server must not do it to the shared one. Run as the
 * `postgres` user when we are root, as scripts/servers.sh does.
 */
import { Effect } from "effect"
import type * as Scope from "effect/Scope"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as net from "node:net"

export interface PrivatePostgres {
  readonly url: string
  /** `pg_ctl stop -m fast`: sessions are terminated (57P01), the data is kept. */
  readonly stop: Effect.Effect<void>
  /** Starts the server again on the same port and data. */
  readonly start: Effect.Effect<void>
  /** SIGSTOP to the server and its backends: connections stay open, nothing is answered. */
  readonly freeze: Effect.Effect<void>
  /** SIGCONT: the frozen server carries on. */
  readonly thaw: Effect.Effect<void>
  /** Sends a signal to one backend of this server (by `pg_backend_pid()`); fails if it is not one. */
  readonly signalBackend: (pid: number, signal: NodeJS.Signals) => Effect.Effect<void, Error>
}

/** A loopback port nothing listens on (at the time of asking). */
export const freePort: Effect.Effect<number> = Effect.async((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

const binDir = (): string => {
  if (process.env.PG_BIN) return process.env.PG_BIN
  const versions = fs.existsSync("/usr/lib/postgresql")
    ? fs.readdirSync("/usr/lib/postgresql").filter((v) => fs.existsSync(`/usr/lib/postgresql/${v}/bin/initdb`))
    : []
  versions.sort((a, b) => Number(b) - Number(a))
  if (versions[0] === undefined) throw new Error("PostgreSQL server binaries not found; run: bash scripts/setup.sh")
  return `/usr/lib/postgresql/${versions[0]}/bin`
}

const isRoot = process.getuid?.() === 0

// initdb and postgres refuse to run as root.
const run = (command: string, args: ReadonlyArray<string>, cwd: string) =>
  Effect.async<string, Error>((resume) => {
    const [file, argv] = isRoot ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, args]
    execFile(file, argv, { cwd, timeout: 60_000 }, (error, stdout, stderr) => {
      resume(error ? Effect.fail(new Error(`${command} failed: ${error.message}\n${stderr}`)) : Effect.succeed(stdout))
    })
  })

export const make: Effect.Effect<PrivatePostgres, never, Scope.Scope> = Effect.gen(function*() {
  const bin = binDir()
  const port = yield* freePort
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "durable-singleton-pgstore-"))
      fs.chmodSync(dir, 0o755)
      fs.mkdirSync(path.join(dir, "run"))
      if (isRoot) {
        const [uid, gid] = postgresIds()
        fs.chownSync(dir, uid, gid)
        fs.chownSync(path.join(dir, "run"), uid, gid)
      }
      return dir
    }),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  const data = path.join(dir, "data")
  const log = path.join(dir, "postgres.log")
  yield* Effect.orDie(run(`${bin}/initdb`, ["-D", data, "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"], dir))
  fs.appendFileSync(
    path.join(data, "postgresql.conf"),
    `listen_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = '${path.join(dir, "run")}'\n` +
      "max_connections = 50\nfsync = off\n"
  )
  const pgCtl = (...args: ReadonlyArray<string>) => run(`${bin}/pg_ctl`, ["-D", data, ...args], dir)
  const start = Effect.orDie(Effect.asVoid(pgCtl("start", "-w", "-t", "60", "-l", log)))
  const stop = Effect.orDie(Effect.asVoid(pgCtl("stop", "-w", "-t", "60", "-m", "fast")))
  const postmaster = (): number | undefined => {
    const file = path.join(data, "postmaster.pid")
    return fs.existsSync(file) ? Number(fs.readFileSync(file, "utf8").split("\n")[0]) : undefined
  }
  const backends = (parent: number) =>
    fs.readdirSync("/proc").filter((pid) => /^\d+$/.test(pid)).map(Number).filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1] === String(parent)
      } catch {
        return false
      }
    })
  // The postmaster and every backend it forked (nothing when the server is stopped).
  const signal = (name: NodeJS.Signals) =>
    Effect.sync(() => {
      const parent = postmaster()
      if (parent === undefined) return
      for (const pid of [parent, ...backends(parent)]) kill(pid, name)
    })
  const signalBackend = (pid: number, name: NodeJS.Signals) =>
    Effect.suspend(() => {
      const parent = postmaster()
      if (parent === undefined || !backends(parent).includes(pid)) {
        return Effect.fail(new Error(`${pid} is not a backend of this server`))
      }
      kill(pid, name)
      return Effect.void
    })
  yield* Effect.acquireRelease(start, () =>
    Effect.ignore(Effect.zipRight(signal("SIGCONT"), pgCtl("stop", "-w", "-t", "60", "-m", "immediate"))))
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop,
    start,
    freeze: signal("SIGSTOP"),
    thaw: signal("SIGCONT"),
    signalBackend
  }
})

// A process may exit between listing it and signalling it.
const kill = (pid: number, signal: NodeJS.Signals) => {
  try {
    process.kill(pid, signal)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error
  }
}

const postgresIds = (): [number, number] => {
  const line = fs.readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith("postgres:"))
  if (line === undefined) throw new Error("no 'postgres' system user; run: bash scripts/setup.sh")
  const [, , uid, gid] = line.split(":")
  return [Number(uid), Number(gid)]
}
