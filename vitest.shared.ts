import { defineConfig } from "vitest/config"

// Tests run against the workspace sources (the `@durable-singleton/source` export condition),
// so `pnpm test` needs no build step.
const conditions = ["@durable-singleton/source", "module", "node", "development|production"]

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000
  }
})
