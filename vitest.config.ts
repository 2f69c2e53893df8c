import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    reporters: ["default"],
    maxWorkers: 2,
    projects: [
      "vitest.unit.config.ts",
      {
        test: {
          name: "stores",
          include: ["test/**/*.test.ts"],
          exclude: ["test/**/*.unit.test.ts"],
          // Starts the stores, once, when a test file of this project runs.
          globalSetup: ["test/support/global-setup.ts"],
          // One process per test file: each holds its own embedded ClickHouse engine.
          pool: "forks",
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
