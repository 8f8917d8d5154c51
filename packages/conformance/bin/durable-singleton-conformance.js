#!/usr/bin/env node
// Committed launcher, so that installing the package links a bin that exists before `pnpm build`.
import("../dist/bin.js").catch((error) => {
  if (error?.code === "ERR_MODULE_NOT_FOUND" && String(error.message).includes("dist/bin.js")) {
    process.stderr.write("durable-singleton-conformance: dist/bin.js is missing; build the package first (pnpm build)\n")
  } else {
    process.stderr.write(`durable-singleton-conformance: ${error?.stack ?? error}\n`)
  }
  process.exit(2)
})
