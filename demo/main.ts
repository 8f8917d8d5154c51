/**
 * `pnpm demo`: a real three-process `@effect/cluster` running a stateful singleton and a fenced
 * cron job on a shared store, through a crash (SIGKILL) and a freeze (SIGSTOP / SIGCONT) of its
 * leader, with checks that no acknowledged write was lost or applied twice, that the stale
 * write of the frozen leader was rejected, and that no cron tick ran twice. See demo/README.md.
 */
import { SingletonHealth } from "@durable-singleton/core"
import { DateTime, Duration, Effect, Either, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Ledger, ledgerExpectedInterval, Ticker } from "./app.js"
import * as Cli from "../support/Cli.js"
import * as Backends from "./backends.js"
import * as Cluster from "./cluster.js"
import type { RunnerEvent } from "./protocol.js"
import * as Timeline from "./timeline.js"

const usage = `Usage: pnpm demo [--store sqlite|postgres|redis] [--json <file>]

Starts three @effect/cluster runner processes sharing a store, runs a stateful singleton (a
ledger that appends one entry every 300 ms) and a fenced cron job (every 2 s) on them, then:
kills the leader (SIGKILL), freezes the next one right before a write (SIGSTOP) until another
runner has taken over, resumes it (SIGCONT) and shows its stale write rejected. Ends with checks;
the exit code is 0 only if every check held.

Options:
  --store sqlite     SQLite files in a temporary directory, no server (default)
  --store postgres   PostgreSQL: DATABASE_URL, or the project's throwaway server
                     (bash scripts/servers.sh); store and runner storage in a fresh schema
  --store redis      Redis: REDIS_URL, or the project's throwaway server; runner storage
                     stays on SQLite
  --json <file>      also write every event and the checks to <file>
  -h, --help         this help

Colour is used only when stdout is a terminal (and NO_COLOR is unset).`

interface Options {
  readonly store: Backends.StoreKind
  readonly json: string | undefined
}

const parseArguments = (args: ReadonlyArray<string>): Either.Either<Options | "help", string> => {
  let store: Backends.StoreKind = "sqlite"
  let json: string | undefined
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!
    const [name, inline] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined]
    const value = () => inline ?? args[++index]
    if (name === "-h" || name === "--help") return Either.right("help")
    if (name === "--") continue
    if (name === "--store") {
      const kind = value()
      if (!Backends.storeKinds.includes(kind as Backends.StoreKind)) {
        return Either.left(`--store takes one of ${Backends.storeKinds.join(", ")}, got ${kind ?? "nothing"}`)
      }
      store = kind as Backends.StoreKind
    } else if (name === "--json") {
      json = value()
      if (json === undefined || json === "") return Either.left("--json takes a file name")
    } else {
      return Either.left(`unknown argument: ${arg}`)
    }
  }
  return Either.right({ store, json })
}

interface Check {
  readonly name: string
  readonly ok: boolean
  readonly details: string
}

const names = ["A", "B", "C"] as const

const seconds = (millis: number) => `${(millis / 1000).toFixed(1)} s`

const lastOf = (entries: ReadonlyArray<string>) => entries.length === 0 ? "none" : entries[entries.length - 1]

/** The scenario. Fails with `DemoFailure` when something does not happen in time. */
const scenario = (backend: Backends.Backend, log: Cluster.EventLog, timeline: Timeline.Timeline) =>
  Effect.gen(function*() {
    const checks: Array<Check> = []
    // Checks made during the run are also printed when they are made.
    let printChecks = true
    const check = (name: string, ok: boolean, details: string) => {
      checks.push({ name, ok, details })
      if (printChecks) timeline.line(Date.now(), "check", ok ? "✓ holds" : "✗ FAILED", `${name}: ${details}`, ok ? "good" : "bad")
    }
    const demo = (action: string, details: string) => {
      const at = Date.now()
      log.add({ at, type: "demo", action, details })
      timeline.line(at, "demo", action, details)
      return at
    }
    const phase = (title: string) => {
      timeline.blank()
      process.stdout.write(`${Timeline.style.bold(title)}\n`)
    }

    // 1. Three runners join.
    phase("1. Three runner processes join the cluster")
    const ports = yield* Cluster.freePorts(names.length)
    demo("start", `${names.length} runners on 127.0.0.1 ports ${ports.join(", ")}`)
    // Health, read from the store by this process, printed when it changes.
    yield* Effect.forkScoped(monitorHealth(log, timeline))
    // Runs of acknowledged writes are printed every few seconds.
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep("1 second"), Effect.sync(() => timeline.flush(4000)))))
    const { joined, runners } = yield* Cluster.start(names, ports, backend, log)
    const runner = (name: string) => runners.find((runner) => runner.name === name)!

    // 2. Leadership settles.
    const stable = yield* log.waitFor(
      "a stable leader (5 writes in a row, 2 cron ticks, no move for 1.5 s)",
      "30 seconds",
      Cluster.settledLeader(log, { from: joined, writes: 5, ticks: 2, quietMillis: 1500 })
    )
    demo("stable", `${stable.runner} leads the ledger under epoch ${stable.epoch}`)

    // 3. The leader crashes.
    phase(`2. SIGKILL the leader (${stable.runner}): a successor must resume from the last acknowledged write`)
    const victim = runner(stable.runner)
    log.expectExit(victim.name)
    victim.signal("SIGKILL")
    const killedAt = Date.now()
    // Everything acknowledged before the kill (a write of the victim acknowledged just before it
    // died may be reported a moment later).
    const ackedBeforeKill = () => log.of("ack").filter((ack) => ack.at <= killedAt || ack.runner === victim.name)
    const lastBeforeKill = ackedBeforeKill().at(-1)
    demo(
      `SIGKILL ${victim.name}`,
      `pid ${victim.pid}; last acknowledged write: ${lastBeforeKill?.entry ?? "none"}, total ${lastBeforeKill?.total ?? 0}`
    )
    const successor = yield* log.waitFor(
      `another runner to claim the ledger after ${victim.name} was killed`,
      "30 seconds",
      () => log.of("claimed").find((claim) => claim.runner !== victim.name && claim.epoch > stable.epoch)
    )
    const successorWrite = yield* log.waitFor(
      `the first write of ${successor.runner}`,
      "10 seconds",
      () => log.of("ack", { runner: successor.runner }).find((ack) => ack.epoch === successor.epoch)
    )
    demo("taken over", `${successor.runner} wrote ${seconds(successorWrite.at - killedAt)} after the kill`)
    const acked = ackedBeforeKill()
    const missing = acked.filter((ack) => !successor.entries.includes(ack.entry))
    const highest = Math.max(0, ...acked.map((ack) => ack.total))
    check(
      "the successor resumed from the last acknowledged write",
      successor.epoch > stable.epoch && successor.total >= highest && missing.length === 0,
      `${successor.runner} claimed epoch ${successor.epoch} > ${stable.epoch}, saw total ${successor.total} ≥ ${highest}, ` +
        (missing.length === 0 ? `with all ${acked.length} acknowledged entries` : `but not ${missing.map((ack) => ack.entry).join(", ")}`)
    )

    // 4. The next leader freezes right before a write.
    phase(`3. SIGSTOP the new leader (${successor.runner}) right before a write, SIGCONT it after a takeover`)
    // The cluster goes on: the new leader writes and the cron job ticks again.
    const leading = yield* log.waitFor(
      "the new leader to write 5 times and the cron job to tick again",
      "20 seconds",
      Cluster.settledLeader(log, { from: successor.index, writes: 5, ticks: 1, quietMillis: 0 })
    )
    const frozen = runner(leading.runner)
    const askedAt = log.events.length
    frozen.send({ type: "freeze-before-next-write" })
    demo("freeze", `asks ${frozen.name} to stop itself (SIGSTOP) right before its next ledger write`)
    const freezing = yield* log.waitFor(
      `${frozen.name} to freeze`,
      "10 seconds",
      () => log.of("freezing", { runner: frozen.name, from: askedAt })[0]
    )
    const takeover = yield* log.waitFor(
      `another runner to claim the ledger while ${frozen.name} is frozen`,
      "30 seconds",
      () => log.of("claimed", { from: freezing.index }).find((claim) => claim.runner !== frozen.name && claim.epoch > freezing.epoch)
    )
    const takeoverWrite = yield* log.waitFor(
      `the first write of ${takeover.runner}`,
      "10 seconds",
      () => log.of("ack", { runner: takeover.runner, from: takeover.index }).find((ack) => ack.epoch === takeover.epoch)
    )
    demo("taken over", `${takeover.runner} wrote ${seconds(takeoverWrite.at - freezing.at)} after ${frozen.name} froze`)
    const resumedAt = demo(
      `SIGCONT ${frozen.name}`,
      `after ${seconds(Date.now() - freezing.at)} frozen; its next step is the write of ${freezing.entry} under epoch ${freezing.epoch}`
    )
    frozen.signal("SIGCONT")
    const rejected = yield* log.waitFor(
      `the write of ${freezing.entry} to be rejected`,
      "10 seconds",
      () => {
        const write = log.of("ack", { runner: frozen.name, from: freezing.index }).find((ack) => ack.entry === freezing.entry)
        if (write !== undefined) return write
        return log.of("rejected", { runner: frozen.name, from: freezing.index }).find((event) => event.entry === freezing.entry)
      }
    )
    yield* log.waitFor(
      `${frozen.name} to step down`,
      "10 seconds",
      () =>
        log.of("stepping-down", { runner: frozen.name, from: freezing.index }).find((event) => event.singleton === Ledger.name) ??
          log.of("singleton-stopped", { runner: frozen.name, from: freezing.index }).find((event) => event.singleton === Ledger.name)
    )
    check(
      "the frozen leader's stale write was rejected",
      rejected.type === "rejected" && rejected.expectedEpoch === freezing.epoch && (rejected.actualEpoch ?? 0) > freezing.epoch,
      rejected.type === "rejected"
        ? `${freezing.entry}: LeaderHandoffFailed, its epoch ${rejected.expectedEpoch}, the store's ${rejected.actualEpoch ?? "none"}`
        : `${freezing.entry} was ACCEPTED under a superseded epoch`
    )
    const afterResume = log.events.length
    // The cluster goes on. Once the resumed runner has rejoined, the ledger's shard may move back
    // to it: it then leads again, under a new epoch. Wait until leadership has settled.
    const settled = yield* log.waitFor(
      "a stable leader after the resume (3 writes, a cron tick, no move for 1.5 s)",
      "25 seconds",
      Cluster.settledLeader(log, { from: afterResume, writes: 3, ticks: 1, quietMillis: 1500 })
    )
    demo("stable", `${settled.runner} leads the ledger under epoch ${settled.epoch}`)
    const staleWrites = log.of("ack", { runner: frozen.name, from: freezing.index }).filter((ack) => ack.epoch === freezing.epoch)
    const since = (event: { readonly at: number } | undefined) => event && `${event.at - resumedAt} ms after SIGCONT`
    const runtimeStepDown = since(
      log.of("stepping-down", { runner: frozen.name, from: freezing.index }).find((event) => event.singleton === Ledger.name)
    )
    const clusterStop = since(
      log.of("singleton-stopped", { runner: frozen.name, from: freezing.index }).find((event) => event.singleton === Ledger.name)
    )
    check(
      `${frozen.name} stepped down`,
      staleWrites.length === 0,
      [
        runtimeStepDown && `the runtime logged "stepping down" ${runtimeStepDown}`,
        clusterStop && `the cluster stopped its singleton ${clusterStop}`,
        `${staleWrites.length === 0 ? "no" : staleWrites.length} write${staleWrites.length === 1 ? "" : "s"} under epoch ${freezing.epoch} since`
      ].filter(Boolean).join("; ")
    )

    // 5. Graceful stop.
    phase("4. SIGTERM the runners (graceful shutdown) and read the final state")
    const remaining = runners.filter((runner) => runner.alive())
    for (const runner of remaining) {
      log.expectExit(runner.name)
      runner.signal("SIGTERM")
    }
    demo("SIGTERM", remaining.map((runner) => runner.name).join(", "))
    const exits = yield* Effect.forEach(remaining, (runner) =>
      Effect.timeoutFail(runner.exited, {
        duration: "30 seconds",
        onTimeout: () => new Cluster.DemoFailure({ message: `runner ${runner.name} did not stop within 30 s of SIGTERM` })
      }).pipe(Effect.map((exit) => ({ runner: runner.name, ...exit }))))

    // 6. The final state, as the store has it.
    const final = yield* Effect.mapError(
      Effect.all({ ledger: Ledger.state.read, ticker: Ticker.state.read, status: Ticker.status }),
      (error) => new Cluster.DemoFailure({ message: `cannot read the final state: ${error.message}` })
    )
    const ledger = Option.getOrUndefined(final.ledger)
    const ticker = Option.getOrUndefined(final.ticker)
    if (ledger === undefined || ticker === undefined) {
      return yield* new Cluster.DemoFailure({ message: "the final state is missing from the store" })
    }
    demo(
      "final state",
      `ledger epoch ${ledger.epoch}, total ${ledger.state.total}, ${ledger.state.entries.length} entries (last ${lastOf(ledger.state.entries)}); ` +
        `the cron job ran ${ticker.state.count} tick${ticker.state.count === 1 ? "" : "s"}`
    )

    // 7. The checks on the final state.
    printChecks = false
    const entries = ledger.state.entries
    const stored = new Set(entries)
    const acks = log.of("ack")
    const lost = acks.filter((ack) => !stored.has(ack.entry))
    check(
      "no acknowledged write was lost",
      lost.length === 0,
      lost.length === 0
        ? `all ${acks.length} acknowledged entries are in the final state` +
          (entries.length > acks.length ? ` (plus ${entries.length - acks.length} whose acknowledgement died with ${victim.name})` : "")
        : `missing: ${lost.map((ack) => ack.entry).join(", ")}`
    )
    check(
      "no write was applied twice",
      stored.size === entries.length && ledger.state.total === entries.length,
      `${entries.length} entries, ${stored.size} distinct, total ${ledger.state.total}`
    )
    const claims = log.of("claimed")
    const grew = claims.every((claim, index) => index === 0 || claim.epoch > claims[index - 1]!.epoch)
    check(
      "the epoch grew at every change of leader",
      grew && ledger.epoch >= (claims.at(-1)?.epoch ?? 0),
      claims.map((claim) => `${claim.runner}:${claim.epoch}`).join(" → ")
    )
    check(
      "the stale write never landed",
      !stored.has(freezing.entry),
      `${freezing.entry} is ${stored.has(freezing.entry) ? "IN" : "not in"} the final state`
    )
    const ticks = log.of("tick")
    const ran = ticker.state.ticks
    const ranOnce = new Set(ran).size === ran.length && ticker.state.count === ran.length &&
      new Set(ticks.map((tick) => tick.scheduledAt)).size === ticks.length
    const counts = final.status.counts
    check(
      "no cron tick ran twice",
      ranOnce,
      `${ran.length} ticks in its state, ${new Set(ran).size} distinct; tick ledger: ${counts.completed} completed, ` +
        `${counts.failed} failed, skipped ${counts.skippedDuplicate} duplicate, ${counts.skippedOverlap} overlapping, ` +
        `${counts.skippedLate} late`
    )
    const executions = [...ticks].sort((a, b) => a.startedAt - b.startedAt)
    const overlaps = executions.filter((tick, index) => index > 0 && tick.startedAt < executions[index - 1]!.finishedAt)
    check(
      "cron executions never overlapped",
      overlaps.length === 0,
      overlaps.length === 0
        ? `${executions.length} reported executions, one after the other`
        : `overlapping: ${overlaps.map((tick) => tick.scheduledAt).join(", ")}`
    )
    check(
      "the runners stopped gracefully",
      exits.every((exit) => exit.code === 0),
      exits.map((exit) => `${exit.runner} exited ${exit.signal ?? `with ${exit.code}`}`).join(", ")
    )
    return {
      checks,
      runners: runners.map(({ name, pid, port }) => ({ name, pid, port })),
      final: {
        ledger: { epoch: ledger.epoch, total: ledger.state.total, entries: ledger.state.entries },
        ticker: { epoch: ticker.epoch, count: ticker.state.count, ticks: ticker.state.ticks },
        tickLedger: final.status.counts
      }
    }
  })

/** Prints the ledger's health (from the store, as any node would read it) whenever it changes. */
const monitorHealth = (log: Cluster.EventLog, timeline: Timeline.Timeline) =>
  Effect.gen(function*() {
    let previous: string | undefined
    while (true) {
      const health = yield* Effect.either(SingletonHealth.check(Ledger, { expectedInterval: ledgerExpectedInterval }))
      const [tag, details] = Either.match(health, {
        onLeft: (error) => ["Unreachable", error.message] as const,
        onRight: SingletonHealth.Health.$match({
          NeverRan: () => ["NeverRan", "no heartbeat yet"] as const,
          Healthy: ({ age }) => ["Healthy", `last heartbeat ${Duration.format(age)} ago`] as const,
          Late: ({ age }) => ["Late", `last heartbeat ${Duration.format(age)} ago (> ${ledgerExpectedInterval})`] as const,
          Dead: ({ age }) => ["Dead", `last heartbeat ${Duration.format(age)} ago (> 2 × ${ledgerExpectedInterval})`] as const,
          Unreadable: ({ error }) => ["Unreadable", error.message] as const
        })
      })
      if (tag !== previous) {
        previous = tag
        const at = Date.now()
        log.add({ at, type: "health", health: tag, details })
        timeline.line(at, "check", `health: ${tag}`, `ledger (SingletonHealth.check from the demo): ${details}`, tag === "Healthy" ? "good" : "warn")
      }
      yield* Effect.sleep("200 millis")
    }
  })

/** Prints what the runners report, one line each. */
const printEvents = (log: Cluster.EventLog, timeline: Timeline.Timeline) =>
  log.onEvent((event) => {
    if (event.type === "demo" || event.type === "health") return
    if (event.type === "exit") {
      return timeline.line(event.at, event.runner, "exited", event.signal !== null ? `killed by ${event.signal}` : `code ${event.code}`, "dim")
    }
    const line = (name: string, details: string, tone?: Timeline.Tone) => timeline.line(event.at, event.runner, name, details, tone)
    const e = event as RunnerEvent & { readonly runner: string }
    switch (e.type) {
      case "loaded":
        return line("process up", "waiting to join", "dim")
      case "ready":
        return line("joined", `runner ${e.address}`)
      case "singleton-started":
      case "singleton-stopped":
        return line(
          `${e.type === "singleton-started" ? "starts" : "stops"} ${e.singleton === Ledger.name ? "ledger" : "cron schedule"}`,
          e.type === "singleton-started" ? "the cluster gave it the shard" : "the shard moved away",
          "dim"
        )
      case "claimed":
        return line(
          "claims the ledger",
          `epoch ${e.epoch}; sees total ${e.total} (last entry ${lastOf(e.entries)})`,
          "good"
        )
      case "ack":
        return timeline.ack(e.at, e.runner, e.epoch, e.entry, e.total)
      case "rejected":
        return line(
          "write REJECTED",
          `${e.entry}: LeaderHandoffFailed (its epoch ${e.expectedEpoch ?? "?"}, the store has epoch ${e.actualEpoch ?? "none"})`,
          "bad"
        )
      case "write-failed":
        return line("write failed", `${e.entry}: ${e.reason}`, "warn")
      case "stepping-down":
        return line(
          "steps down",
          `runtime: another leader claimed the ${e.singleton === Ledger.name ? "ledger" : e.singleton} (epoch ${e.expectedEpoch ?? "?"} < ${
            e.actualEpoch ?? "?"
          })`,
          "warn"
        )
      case "freezing":
        return line("SIGSTOP itself", `frozen right before writing ${e.entry} (epoch ${e.epoch})`, "warn")
      case "tick":
        return line(
          "cron tick",
          `${e.scheduledAt.slice(11, 19)} ran in ${e.finishedAt - e.startedAt} ms (its epoch ${e.epoch}, count ${e.count})`
        )
      case "tick-skipped":
        return line("cron tick skipped", `${e.scheduledAt.slice(11, 19)}: ${e.outcome} delivery`, "dim")
      case "log":
        return line(e.level.toLowerCase(), e.message.replace(/\s+/g, " ").slice(0, 140), "dim")
    }
  })

const program = (options: Options) =>
  Effect.gen(function*() {
    const startedAt = Date.now()
    const log = new Cluster.EventLog()
    const timeline = Timeline.make(startedAt)
    printEvents(log, timeline)
    process.stdout.write(
      `${Timeline.style.bold("durable-singleton demo")}: 3 @effect/cluster runners, a stateful singleton and a fenced cron job\n`
    )
    const outcome = yield* Effect.scoped(Effect.gen(function*() {
      const backend = yield* Backends.make(options.store)
      process.stdout.write(`store: ${backend.description}\n\n`)
      timeline.header()
      const result = yield* Effect.either(
        Effect.provide(scenario(backend, log, timeline), backend.client).pipe(
          Effect.onInterrupt(() => Effect.sync(() => process.stdout.write("\ninterrupted: stopping the runners\n")))
        )
      )
      timeline.flush()
      // Keep the runners' logs of a failed run.
      const failedRun = Either.isLeft(result) && result.left._tag === "DemoFailure"
      if (failedRun) backend.keepDirectory()
      return { result, backend }
    }))
    const duration = Date.now() - startedAt
    const checks = Either.match(outcome.result, { onLeft: () => [], onRight: (result) => result.checks })
    const ok = Either.isRight(outcome.result) && checks.every((check) => check.ok)
    if (Either.isLeft(outcome.result)) {
      const failure = outcome.result.left
      process.stdout.write(`\n${Timeline.style.red(`✗ the demo failed: ${failure.message}`)}\n`)
      if (failure._tag === "DemoFailure") {
        for (const name of names) {
          const file = `${outcome.backend.directory}/${name}.log`
          process.stdout.write(`\n${Timeline.style.bold(`last lines of ${file}:`)}\n${Cluster.tail(file, 15)}\n`)
        }
      }
    } else {
      const held = checks.filter((check) => check.ok).length
      const verdict = `${held} of ${checks.length} checks held · ${seconds(duration)} · store: ${options.store}`
      process.stdout.write(`\n${Timeline.style.bold("Summary")}: ${ok ? Timeline.style.green(verdict) : Timeline.style.red(verdict)}\n`)
      const width = Math.max(...checks.map((check) => check.name.length))
      for (const check of checks) {
        const mark = check.ok ? Timeline.style.green("✓") : Timeline.style.red("✗")
        process.stdout.write(`  ${mark} ${check.name.padEnd(width)}  ${Timeline.style.dim(check.details)}\n`)
      }
    }
    if (options.json !== undefined) {
      const report = {
        ok,
        store: options.store,
        startedAt: DateTime.formatIso(DateTime.unsafeMake(startedAt)),
        durationMs: duration,
        failure: Either.isLeft(outcome.result) ? outcome.result.left.message : null,
        checks,
        ...Either.getOrElse(Either.map(outcome.result, ({ final, runners }) => ({ runners, final })), () => ({})),
        events: log.events
      }
      // Relative to where `pnpm demo` was typed, not to the package root pnpm runs it in.
      const file = path.resolve(process.env.INIT_CWD ?? process.cwd(), options.json)
      fs.writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`)
      process.stdout.write(`event log written to ${file}\n`)
    }
    return ok ? 0 : 1
  })

Cli.run({
  parse: parseArguments,
  usage,
  program: (options) =>
    Effect.catchTag(program(options), "SetupError", (error) =>
      Effect.sync(() => {
        process.stderr.write(`\n${error.message}\n`)
        return 1
      }))
})
