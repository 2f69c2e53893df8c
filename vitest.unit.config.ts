import { defineProject } from "vitest/config";

/**
 * Fast unit tests (`test/**\/*.unit.test.ts`): pure modules, no store, no
 * server, no child process. `npm run test:unit` runs this config alone;
 * vitest.config.ts runs it as one of its projects.
 */
export default defineProject({
  test: {
    name: "unit",
    include: ["test/**/*.unit.test.ts"],
    // No global setup: nothing here needs Postgres or ClickHouse.
    pool: "threads",
    // The modules under test keep no state between files, so each worker imports them once.
    isolate: false,
    testTimeout: 10_000,
  },
});
