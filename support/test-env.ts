/**
 * Server URLs for backend tests: `DATABASE_URL` / `REDIS_URL`, as `pnpm test` (scripts/test.sh)
 * or the caller sets them. Under CI=true a missing URL throws: no backend test may skip there.
 * Locally it warns loudly and returns `undefined`, and the caller registers its tests as
 * skipped with the reason in their names.
 */
export const serverUrl = (variable: "DATABASE_URL" | "REDIS_URL"): string | undefined => {
  const url = process.env[variable]
  if (url !== undefined && url !== "") return url
  if (process.env.CI === "true") {
    throw new Error(`CI=true but ${variable} is not set: backend tests must not skip. Run them with \`pnpm test\`.`)
  }
  console.warn(`\n!!! ${variable} is not set: these backend tests are SKIPPED. Run them with \`pnpm test\`.\n`)
  return undefined
}
