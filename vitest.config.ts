import { defineConfig } from 'vitest/config';

// Three tiers, one run (`npm test`): the unit tier's files run in parallel; then the
// native tier (the real addon) and the netns tier (namespaces, daemons, real peers) run one
// file at a time, in that order. See CONTRIBUTING.md.
const serial = {
  // One file at a time: netns files create hosts and daemons; native files share loopback
  // addresses and the addon's process-wide state.
  poolOptions: { forks: { singleFork: true } },
  testTimeout: 60_000,
  hookTimeout: 60_000,
};

export default defineConfig({
  test: {
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      {
        // No root, no addon, no network: pure logic against in-memory fakes.
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], sequence: { groupOrder: 0 } },
      },
      {
        test: { name: 'native', include: ['test/native/**/*.test.ts'], sequence: { groupOrder: 1 }, ...serial },
      },
      {
        test: { name: 'netns', include: ['test/netns/**/*.test.ts'], sequence: { groupOrder: 2 }, ...serial },
      },
    ],
  },
});
