/**
 * @since 0.1.0
 */
export * as Subject from "./Subject.js"

/**
 * @since 0.1.0
 */
export * as Conformance from "./Conformance.js"

/**
 * @since 0.1.0
 */
export * as Linearizability from "./Linearizability.js"

/**
 * @since 0.1.0
 */
export * as BrokenStores from "./BrokenStores.js"

/**
 * @since 0.1.0
 */
export * as MemorySubject from "./MemorySubject.js"

/**
 * @since 0.1.0
 */
export * as TcpProxy from "./TcpProxy.js"
