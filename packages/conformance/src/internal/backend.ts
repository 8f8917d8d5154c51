// Backends built from other backends: the fault switch of the reference subject and the flaws
// of the broken stores change every operation the same way.
import type * as Store from "@durable-singleton/core/Store"
import type * as PlatformError from "@effect/platform/Error"
import type * as Effect from "effect/Effect"

/** `backend` with every operation passed through `change` (with the operation's name). */
export const mapOperations = (
  backend: Store.Backend,
  change: <A>(method: string, effect: Effect.Effect<A, PlatformError.PlatformError>) => Effect.Effect<A, PlatformError.PlatformError>
): Store.Backend => ({
  namespace: backend.namespace,
  get: (key) => change("get", backend.get(key)),
  set: (key, value) => change("set", backend.set(key, value)),
  remove: (key) => change("remove", backend.remove(key)),
  ...(backend.has === undefined ? {} : { has: (key: string) => change("has", backend.has!(key)) }),
  size: change("size", backend.size),
  clear: change("clear", backend.clear),
  modifyOrInit: (key, f) => change("modifyOrInit", backend.modifyOrInit(key, f))
})
