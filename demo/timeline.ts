/**
 * The timeline people read: aligned columns (elapsed time, who, what, details), one line per
 * event, colour only when stdout is a terminal. Runs of acknowledged ledger writes by one leader
 * are folded into one line; `--json` keeps every event.
 */

const useColor = process.stdout.isTTY === true && process.env.NO_COLOR === undefined && process.env.TERM !== "dumb"

const paint = (code: string) => (text: string) => useColor ? `\x1b[${code}m${text}\x1b[0m` : text

export const style = {
  bold: paint("1"),
  dim: paint("2"),
  red: paint("31"),
  green: paint("32"),
  yellow: paint("33"),
  blue: paint("34"),
  magenta: paint("35"),
  cyan: paint("36")
}

export type Tone = "plain" | "good" | "bad" | "warn" | "dim"

const tones: Record<Tone, (text: string) => string> = {
  plain: (text) => text,
  good: style.green,
  bad: style.red,
  warn: style.yellow,
  dim: style.dim
}

const whoColor: Record<string, (text: string) => string> = {
  A: style.cyan,
  B: style.magenta,
  C: style.blue,
  demo: style.bold,
  check: style.bold
}

const widths = { time: 8, who: 6, event: 20 }

interface AckRun {
  readonly who: string
  readonly epoch: number
  readonly firstAt: number
  lastAt: number
  count: number
  readonly firstEntry: string
  lastEntry: string
  lastTotal: number
}

export interface Timeline {
  readonly header: () => void
  /** Prints one line at `at` (epoch milliseconds). */
  readonly line: (at: number, who: string, event: string, details: string, tone?: Tone) => void
  /** Adds an acknowledged ledger write to the current run of writes. */
  readonly ack: (at: number, who: string, epoch: number, entry: string, total: number) => void
  /** Prints the pending run of writes, if any (and if `olderThan` ms old, when given). */
  readonly flush: (olderThan?: number) => void
  readonly blank: () => void
}

export const make = (startedAt: number): Timeline => {
  let pending: AckRun | undefined

  const elapsed = (at: number) => `${((at - startedAt) / 1000).toFixed(2)}s`

  const print = (at: string, who: string, event: string, details: string, tone: Tone) => {
    const paintWho = whoColor[who] ?? ((text: string) => text)
    process.stdout.write(
      `${style.dim(at.padStart(widths.time))}  ${paintWho(who.padEnd(widths.who))}  ${
        tones[tone](event.padEnd(widths.event))
      }  ${details}\n`
    )
  }

  const flush = (olderThan?: number) => {
    if (pending === undefined) return
    if (olderThan !== undefined && Date.now() - pending.firstAt < olderThan) return
    const run = pending
    pending = undefined
    const entries = run.count === 1 ? run.firstEntry : `${run.firstEntry} … ${run.lastEntry}`
    print(
      elapsed(run.lastAt),
      run.who,
      run.count === 1 ? "write acknowledged" : `${run.count} writes acked`,
      `${entries}  total ${run.lastTotal}  (epoch ${run.epoch})`,
      "dim"
    )
  }

  return {
    header: () => {
      const text = `${"time".padStart(widths.time)}  ${"who".padEnd(widths.who)}  ${"event".padEnd(widths.event)}  details`
      process.stdout.write(`${style.bold(text)}\n`)
    },
    line: (at, who, event, details, tone = "plain") => {
      flush()
      print(elapsed(at), who, event, details, tone)
    },
    ack: (at, who, epoch, entry, total) => {
      if (pending !== undefined && (pending.who !== who || pending.epoch !== epoch)) flush()
      if (pending === undefined) {
        pending = { who, epoch, firstAt: at, lastAt: at, count: 1, firstEntry: entry, lastEntry: entry, lastTotal: total }
      } else {
        pending.count++
        pending.lastAt = at
        pending.lastEntry = entry
        pending.lastTotal = total
      }
    },
    flush,
    blank: () => {
      flush()
      process.stdout.write("\n")
    }
  }
}
