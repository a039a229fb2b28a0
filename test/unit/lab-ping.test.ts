import { describe, expect, it } from 'vitest';
import { parsePing, pingDeadline } from '../../lab/netns.js';

describe('lab: a counted ping waits for every reply until a deadline', () => {
  it('adds -w: 3 × count × interval + the per-reply wait, whole seconds', () => {
    expect(pingDeadline(['-c', '2', '-i', '0.01', '-W', '2', '10.1.0.2'])).toEqual(['-c', '2', '-i', '0.01', '-W', '2', '10.1.0.2', '-w', '3']);
    expect(pingDeadline(['-c', '3', '10.1.0.2'])).toEqual(['-c', '3', '10.1.0.2', '-w', '11']);
    expect(pingDeadline(['-i', '0.01', '-c', '300', '-W', '1', '10.1.0.2']).slice(-2)).toEqual(['-w', '10']);
  });
  it('leaves a ping alone that has a deadline already or no count', () => {
    const given = ['-i', '0.2', '-w', '40', '-c', '150', '10.1.0.2'];
    expect(pingDeadline(given)).toBe(given);
    const endless = ['-i', '0.5', '10.9.0.2'];
    expect(pingDeadline(endless)).toBe(endless);
  });
  it('reads the summary ping prints', () => {
    const out = '2 packets transmitted, 1 received, 50% packet loss, time 1010ms\nrtt min/avg/max/mdev = 0.210/0.210/0.210/0.000 ms\n';
    expect(parsePing(out)).toEqual({ sent: 2, received: 1, avgMs: 0.21 });
  });
  it('with the count, counts the replies to the first count probes only (a deadline ping sends on after a loss)', () => {
    const reply = (seq: number) => `64 bytes from 10.1.0.2: icmp_seq=${seq} ttl=64 time=0.2 ms\n`;
    const out = `${reply(1)}${reply(3)}${reply(3)}${reply(4)}4 packets transmitted, 3 received, +1 duplicates, 25% packet loss, time 30ms\n`;
    expect(parsePing(out, 3)).toEqual({ sent: 3, received: 2, avgMs: null });
    expect(parsePing(out)).toMatchObject({ sent: 4, received: 3 });
    // lab.exec's line after a ping it gave a deadline stands for the count.
    expect(parsePing(`${out}(lab: a deadline added to ping: -c 3 -w 5)\n`)).toEqual({ sent: 3, received: 2, avgMs: null });
  });
});
