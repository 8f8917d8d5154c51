/**
 * The entry point of the project's command-line programs (the demo, the benchmarks): usage
 * errors exit 2, `--help` prints the usage, the program's number is the exit code, Ctrl-C and
 * SIGTERM interrupt it (its finalizers run: servers and child processes are stopped) and exit 130.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Either, Exit } from "effect"

export const run = <O>(options: {
  readonly parse: (args: ReadonlyArray<string>) => Either.Either<O | "help", string>
  readonly usage: string
  readonly program: (options: O) => Effect.Effect<number>
}): void => {
  // `… | head`: once the reader is gone, a write fails with EPIPE, an uncaught error that would
  // end the process before its finalizers run. Stop as on Ctrl-C instead; what is written after
  // that goes nowhere. If a Ctrl-C already arrived (it reaches the whole pipeline, reader
  // included), the program is stopping: the runtime's handler is gone, and a second SIGINT
  // would kill the process in the middle of its finalizers.
  let stdoutGone = false
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (stdoutGone) return
    if (error.code !== "EPIPE") throw error
    stdoutGone = true
    if (process.listenerCount("SIGINT") > 0) process.kill(process.pid, "SIGINT")
  })

  const main = Either.match(options.parse(process.argv.slice(2)), {
    onLeft: (message) =>
      Effect.sync(() => {
        process.stderr.write(`${message}\n\n${options.usage}\n`)
        return 2
      }),
    onRight: (parsed) =>
      parsed === "help"
        ? Effect.sync(() => {
          process.stdout.write(`${options.usage}\n`)
          return 0
        })
        : options.program(parsed)
  })

  NodeRuntime.runMain(main, {
    disablePrettyLogger: true,
    teardown: (exit) => {
      if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) {
        process.stderr.write(`${Cause.pretty(exit.cause)}\n`)
      }
      const code = Exit.isSuccess(exit) ? exit.value as number : Cause.isInterruptedOnly(exit.cause) ? 130 : 1
      process.exitCode = code
      // Everything is closed by now: exit even if some handle was left behind.
      setTimeout(() => process.exit(code), 2000).unref()
    }
  })
}
