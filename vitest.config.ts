import { defineConfig } from 'vitest/config';

// Three tiers, one run (`npm test`): the unit tier's files run in parallel; then the
// native tier (the real addon) one file at a time, then the netns tier (namespaces, daemons,
// real peers) two files at a time, in that order. See CONTRIBUTING.md.
const serial = {
  // One file at a time: native files share loopback addresses and the addon's process-wide
  // state. (The netns tier overrides singleFork below.)
  poolOptions: { forks: { singleFork: true } },
  testTimeout: 60_000,
  hookTimeout: 60_000,
};

export default defineConfig({
  test: {
    // At most two files at once (unit and netns; native runs one at a time), on any machine.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      {
        // No root, no addon, no network: pure logic against in-memory fakes.
        // A few start a tool (tshark, python3, bash): tshark alone took 9 s to start beside a
        // benchmark on 2 vCPUs, so the guard against a hung test is 30 s, not vitest's 5.
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], sequence: { groupOrder: 0 }, testTimeout: 30_000 },
      },
      {
        test: { name: 'native', include: ['test/native/**/*.test.ts'], sequence: { groupOrder: 1 }, ...serial },
      },
      {
        // Two files at a time: each makes its own namespaces (unique names), daemons and
        // peers, and most of a file's time is waiting (boots, sessions, pings).
        test: {
          name: 'netns',
          include: ['test/netns/**/*.test.ts'],
          sequence: { groupOrder: 2 },
          ...serial,
          poolOptions: { forks: { singleFork: false } },
        },
      },
    ],
  },
});
