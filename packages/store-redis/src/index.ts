/**
 * @since 0.1.0
 */
export * as RedisStore from "./RedisStore.js"

/**
 * @since 0.1.0
 */
export * as RedisPersistence from "./RedisPersistence.js"
