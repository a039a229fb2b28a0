/**
 * The pure parts of the directory's MAC layer (src/directory/macs.ts): IP and MAC
 * normalization, the stored JSON of records and pins, and the freeze counter of duplicate
 * detection (time passed in, no clock).
 */
import { describe, expect, it } from 'vitest';
import { decodeMacValue, encodeMacValue, FreezeCounter, normalizeIp, normalizeIps, normalizeMac, parseMacKey } from '../../src/directory/macs.js';

describe('MAC layer: normalization', () => {
  it('IPv6 in RFC 5952 form, IPv4 as is, junk left out; sorted IPv4 first, deduplicated', () => {
    expect(normalizeIp('FD00:0:0:0:0:0:0:1')).toBe('fd00::1');
    expect(normalizeIp('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(normalizeIp('10.1.0.1')).toBe('10.1.0.1');
    expect(normalizeIp('10.1.0.300')).toBeNull();
    expect(normalizeIp('fe80::1%eth0')).toBeNull();
    expect(normalizeIps(['fd00::1', '10.1.0.2', 'FD00::0:1', 'nope', '10.1.0.1'])).toEqual(['10.1.0.1', '10.1.0.2', 'fd00::1']);
  });

  it('MACs lower case with colons; multicast and malformed refused; keys parsed strictly', () => {
    expect(normalizeMac('02-AA-BB-CC-DD-EE')).toBe('02:aa:bb:cc:dd:ee');
    expect(normalizeMac('01:00:5e:00:00:01')).toBeNull();
    expect(normalizeMac('02:aa:bb')).toBeNull();
    expect(parseMacKey('5001/02:aa:bb:cc:dd:ee')).toEqual({ vni: 5001, mac: '02:aa:bb:cc:dd:ee' });
    expect(parseMacKey('5001/02:AA:bb:cc:dd:ee')).toBeNull();
    expect(parseMacKey('05001/02:aa:bb:cc:dd:ee')).toBeNull();
    expect(parseMacKey('16777216/02:aa:bb:cc:dd:ee')).toBeNull();
    expect(parseMacKey('5001/02:aa:bb:cc:dd:ee/x')).toBeNull();
  });

  it('records and pins round-trip through their JSON; a malformed value is null', () => {
    const v = encodeMacValue({ owner: '10.0.0.1', port: 4789, ips: ['10.1.0.1'], seq: 3 });
    expect(JSON.parse(v)).toEqual({ owner: '10.0.0.1', port: 4789, ips: ['10.1.0.1'], seq: 3 });
    expect(decodeMacValue(7, '02:00:00:00:00:01', v, false)).toEqual({
      vni: 7,
      mac: '02:00:00:00:00:01',
      owner: '10.0.0.1',
      port: 4789,
      ips: ['10.1.0.1'],
      seq: 3,
    });
    const pin = encodeMacValue({ owner: 'FD00::9', port: 8472, ips: [] });
    expect(decodeMacValue(7, '02:00:00:00:00:01', pin, true)).toEqual({
      vni: 7,
      mac: '02:00:00:00:00:01',
      owner: 'fd00::9',
      port: 8472,
      ips: [],
      seq: 0,
      pinned: true,
    });
    expect(decodeMacValue(7, '02:00:00:00:00:01', pin, false)).toBeNull(); // a record needs its seq
    expect(decodeMacValue(7, '02:00:00:00:00:01', '{"owner":"x","seq":1}', false)).toBeNull();
    expect(decodeMacValue(7, '02:00:00:00:00:01', 'not json', false)).toBeNull();
  });
});

describe('MAC layer: duplicate detection', () => {
  const opts = { moves: 5, windowMs: 10_000, holdMs: 60_000 };

  it('the 6th move inside the window freezes, once; the hold ends after holdMs', () => {
    const f = new FreezeCounter(opts);
    const got = [0, 1, 2, 3, 4, 5].map((i) => f.move('k', 1000 + i * 1000));
    expect(got).toEqual([false, false, false, false, false, true]);
    expect(f.isFrozen('k', 6000)).toBe(true);
    expect(f.move('k', 7000)).toBe(false); // already frozen: no second report
    expect(f.isFrozen('k', 6000 + 59_999)).toBe(true);
    expect(f.isFrozen('k', 6000 + 60_000)).toBe(false);
    expect(f.move('k', 70_000)).toBe(false); // counting starts afresh
    expect(f.isFrozen('other', 6000)).toBe(false);
  });

  it('moves spread wider than the window never freeze, and old keys are forgotten', () => {
    const f = new FreezeCounter(opts);
    for (let i = 0; i < 50; i++) expect(f.move('k', i * 2001)).toBe(false);
    for (let i = 0; i < 3000; i++) f.move(`m${i}`, 0);
    f.move('late', 100_000);
    expect(f.size).toBeLessThan(3000);
  });
});
