/**
 * The trunk rows' table (bench/trunk.ts): each path both ways, its CPU per GB, the trunk's
 * figure divided by each reference's of the same direction, and the gateway's drops.
 */
import { describe, expect, it } from 'vitest';
import { trunkTable, type TrunkFigures, type TrunkRow } from '../../bench/trunk.js';

const row = (path: TrunkRow['path'], dir: TrunkRow['dir'], gbps: number, cpuSecPerGB: number): TrunkRow => ({
  path,
  dir,
  gbps,
  rounds: [gbps],
  cpuSecPerGB,
  cpu: [],
});

const figures = (gatewayDrops: Record<string, number>): TrunkFigures => ({
  rows: [
    row('TAP', 'to the VM', 5, 1.6),
    row('TAP', 'from the VM', 6, 1.7),
    row('access', 'to the VM', 3.2, 3.3),
    row('access', 'from the VM', 2.5, 3.6),
    row('trunk', 'to the VM', 3, 3.4),
    row('trunk', 'from the VM', 2.7, 3.6),
    row('OVS alone', 'to the VM', 4, 1.9),
  ],
  gatewayDrops,
  gatewayCounters: {},
});

describe('bench trunk table', () => {
  it('shows each path both ways and the trunk divided by each of the others, per direction', () => {
    const lines = trunkTable(figures({})).split('\n');
    expect(lines[0]).toContain("target: trunk ≥ 0.7× the TAP VM; the gateway's drops over the run: none");
    const cells = lines.slice(3).map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );
    expect(cells).toEqual([
      ['TAP VM on the gateway host (reference)', '5.00', '6.00', '1.60 / 1.70', '0.60× / 0.45×'],
      ['bare metal, OVS access port, attached port', '3.20', '2.50', '3.30 / 3.60', '0.94× / 1.08×'],
      ['bare metal, OVS VLAN 100, trunk', '3.00', '2.70', '3.40 / 3.60', ''],
      ['OVS alone, bare metal to bare metal', '4.00', '-', '1.90 / -', '0.75× / -'],
    ]);
  });

  it("names the gateway's drops that rose during the run", () => {
    expect(trunkTable(figures({ vlan_unmapped: 3, tap_tx_busy: 1 })).split('\n')[0]).toContain('drops over the run: vlan_unmapped 3, tap_tx_busy 1');
  });
});
