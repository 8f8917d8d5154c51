/**
 * A virtual clock and a scheduler for simulating a whole cluster in one process.
 *
 * `TestClock` lets a fiber's work settle after each wake-up by waiting on three `setTimeout(0)`
 * round trips (about 3 ms); a simulated cluster wakes up dozens of times per simulated second, so
 * a minute of cluster time costs several seconds. Here the scheduler knows exactly when every
 * fiber that runs on it has nothing left to do, so the clock moves to the next sleeper as soon as
 * the previous one has settled: the same semantics (sleepers woken in deadline order, each
 * allowed to run to quiescence before time moves on) at a small fraction of the cost, and
 * independent of wall-clock time.
 *
 * @internal
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Scheduler from "effect/Scheduler"
import type * as Scope from "effect/Scope"
import type * as TestClock from "effect/TestClock"

// Yield to the event loop now and then so that a fiber that never sleeps cannot starve it
// (vitest's timeouts must still fire).
const roundsBeforeMacrotask = 1024

/** @internal */
export class SimulationScheduler implements Scheduler.Scheduler {
  private tasks = new Scheduler.PriorityBuckets()
  private running = false
  private rounds = 0
  private idleWaiters: Array<() => void> = []

  scheduleTask(task: Scheduler.Task, priority: number): void {
    this.tasks.scheduleTask(task, priority)
    if (!this.running) {
      this.running = true
      queueMicrotask(this.drain)
    }
  }

  shouldYield(fiber: Fiber.RuntimeFiber<unknown, unknown>): number | false {
    return fiber.currentOpCount > fiber.getFiberRef(FiberRef.currentMaxOpsBeforeYield)
      ? fiber.getFiberRef(FiberRef.currentSchedulingPriority)
      : false
  }

  private drain = (): void => {
    const buckets = this.tasks.buckets
    this.tasks.buckets = []
    for (const [, tasks] of buckets) {
      for (const task of tasks) task()
    }
    if (this.tasks.buckets.length > 0) {
      this.rounds++
      if (this.rounds % roundsBeforeMacrotask === 0) setImmediate(this.drain)
      else queueMicrotask(this.drain)
      return
    }
    this.running = false
    this.rounds = 0
    const waiters = this.idleWaiters
    this.idleWaiters = []
    for (const wake of waiters) wake()
  }

  /** Completes once every fiber on this scheduler is suspended. */
  readonly idle: Effect.Effect<void> = Effect.async<void>((resume) => {
    this.idleWaiters.push(() => resume(Effect.void))
    // The caller may not be running on this scheduler: make sure a drain happens.
    if (!this.running) this.scheduleTask(noop, 0)
  })
}

const noop = () => {}

interface Sleeper {
  readonly at: number
  readonly order: number
  readonly wake: () => void
}

/**
 * Implements the `TestClock` interface, so `TestClock.adjust` and friends drive it once it is
 * installed as the clock.
 *
 * @internal
 */
export class SimulationClock implements TestClock.TestClock {
  readonly [Clock.ClockTypeId]: Clock.ClockTypeId = Clock.ClockTypeId
  private now: number
  private order = 0
  private sleepers: Array<Sleeper> = []

  constructor(start: number, readonly scheduler: SimulationScheduler) {
    this.now = start
  }

  unsafeCurrentTimeMillis(): number {
    return this.now
  }

  unsafeCurrentTimeNanos(): bigint {
    return BigInt(Math.floor(this.now * 1_000_000))
  }

  readonly currentTimeMillis: Effect.Effect<number> = Effect.sync(() => this.now)

  readonly currentTimeNanos: Effect.Effect<bigint> = Effect.sync(() => this.unsafeCurrentTimeNanos())

  sleep(duration: Duration.DurationInput): Effect.Effect<void> {
    const millis = Duration.toMillis(Duration.decode(duration))
    return Effect.async<void>((resume) => {
      if (!(millis > 0)) return resume(Effect.void)
      const sleeper: Sleeper = { at: this.now + millis, order: this.order++, wake: () => resume(Effect.void) }
      this.sleepers.push(sleeper)
      return Effect.sync(() => {
        const index = this.sleepers.indexOf(sleeper)
        if (index >= 0) this.sleepers.splice(index, 1)
      })
    })
  }

  adjust(duration: Duration.DurationInput): Effect.Effect<void> {
    return Effect.suspend(() => this.runUntil(this.now + Duration.toMillis(Duration.decode(duration))))
  }

  adjustWith(duration: Duration.DurationInput) {
    return <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.zipLeft(effect, this.adjust(duration), { concurrent: true })
  }

  readonly save: Effect.Effect<Effect.Effect<void>> = Effect.sync(() => {
    const saved = this.now
    return Effect.sync(() => {
      this.now = saved
    })
  })

  setTime(time: number): Effect.Effect<void> {
    return this.runUntil(time)
  }

  readonly sleeps: Effect.Effect<Chunk.Chunk<number>> = Effect.sync(() =>
    Chunk.fromIterable(this.sleepers.map((sleeper) => sleeper.at))
  )

  // Wakes sleepers in (deadline, registration) order, letting everything settle after each.
  private runUntil(target: number): Effect.Effect<void> {
    const self = this
    return Effect.gen(function*() {
      yield* self.scheduler.idle
      while (true) {
        const next = self.earliest()
        if (next === undefined || next.at > target) break
        self.sleepers.splice(self.sleepers.indexOf(next), 1)
        if (next.at > self.now) self.now = next.at
        next.wake()
        yield* self.scheduler.idle
      }
      self.now = target
      yield* self.scheduler.idle
    })
  }

  private earliest(): Sleeper | undefined {
    let best: Sleeper | undefined
    for (const sleeper of this.sleepers) {
      if (best === undefined || sleeper.at < best.at || (sleeper.at === best.at && sleeper.order < best.order)) {
        best = sleeper
      }
    }
    return best
  }
}

/**
 * Installs a simulation clock (starting at the current time) and its scheduler for the rest of
 * the calling fiber's scope; reuses the installed one when there is already one.
 *
 * @internal
 */
export const install: Effect.Effect<SimulationClock, never, Scope.Scope> = Effect.gen(function*() {
  const current = yield* Effect.clock
  if (current instanceof SimulationClock) return current
  const scheduler = new SimulationScheduler()
  const clock = new SimulationClock(current.unsafeCurrentTimeMillis(), scheduler)
  yield* Effect.locallyScoped(FiberRef.currentScheduler, scheduler)
  yield* Effect.withClockScoped(clock)
  return clock
})
