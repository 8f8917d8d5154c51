/**
 * @since 0.1.0
 */
export * as MemoryStore from "./MemoryStore.js"

/**
 * @since 0.1.0
 */
export * as SingletonError from "./SingletonError.js"

/**
 * @since 0.1.0
 */
export * as Store from "./Store.js"

/**
 * @since 0.1.0
 */
export * as FencedState from "./FencedState.js"

/**
 * @since 0.1.0
 */
export * as StateEnvelope from "./StateEnvelope.js"
