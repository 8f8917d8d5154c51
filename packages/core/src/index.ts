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

/**
 * @since 0.1.0
 */
export * as StatefulSingleton from "./StatefulSingleton.js"

/**
 * @since 0.1.0
 */
export * as SingletonContext from "./SingletonContext.js"

/**
 * @since 0.1.0
 */
export * as SingletonHealth from "./SingletonHealth.js"

/**
 * @since 0.1.0
 */
export * as SingletonMetrics from "./SingletonMetrics.js"

/**
 * @since 0.1.0
 */
export * as TestKit from "./TestKit.js"

/**
 * @since 0.1.0
 */
export * as FencedCron from "./FencedCron.js"

/**
 * @since 0.1.0
 */
export * as Snowflake from "./Snowflake.js"
