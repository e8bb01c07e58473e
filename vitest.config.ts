import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration suites start real registries; keep the two cores busy but not oversubscribed.
    maxWorkers: 2,
    globalSetup: ["test/global-setup.ts"],
  },
});
