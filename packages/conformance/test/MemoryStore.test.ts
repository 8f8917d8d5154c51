// The reference store passes the whole suite, registered through the vitest helper exactly as a
// store package does it.
import * as Vitest from "@durable-singleton/conformance/Vitest"
import memory from "./fixtures/memory-subject.js"

Vitest.runConformance(memory)
