/**
 * The secure layer (src/secure/peers.ts) between two nodes, with the data path's key
 * tables as maps and the network as a list of messages: who gets keys, when send keys
 * switch, what an unlisted key, a replay and a flood get (nothing, or a cookie).
 */
import { describe, expect, it } from 'vitest';
import { generatePrivateKey, identityOf, type Identity } from '../../src/secure/keys.js';
import { SecureLayer, LOAD_PER_S, PREVIOUS_KEEP_MS, type Endpoint, type Peer, type PeerSpec, type SecureDatapath } from '../../src/secure/peers.js';
import { INIT, RESPONSE, COOKIE, handshakeType } from '../../src/secure/handshake.js';

interface Sent {
  to: Endpoint;
  payload: Buffer;
}

/** The data path's key tables, and what went out on the underlay. */
class KeyTables implements SecureDatapath {
  rx = new Map<number, { vtep: number; key: Buffer }>();
  tx = new Map<number, { remote: number; key: Buffer }>();
  sent: Sent[] = [];
  sendControl(address: string, port: number, payload: Buffer): void {
    this.sent.push({ to: { address, port }, payload });
  }
  keyRxSet(index: number, vtep: number, key: Buffer): void {
    this.rx.set(index, { vtep, key });
  }
  keyRxDel(index: number): void {
    this.rx.delete(index);
  }
  keyTxSet(vtep: number, remote: number, key: Buffer): void {
    this.tx.set(vtep, { remote, key });
  }
  keyTxDel(vtep: number): void {
    this.tx.delete(vtep);
  }
  take(): Sent[] {
    const s = this.sent;
    this.sent = [];
    return s;
  }
}

const id = (): Identity => identityOf(generatePrivateKey());
const b64 = (i: Identity) => i.publicKey.toString('base64');

function node(me: Identity, specs: PeerSpec[], clock: { now: number }, vtep = 7, staleMs?: number) {
  const dp = new KeyTables();
  const events: string[] = [];
  const layer = new SecureLayer(
    me,
    dp,
    {
      bind: () => vtep,
      up: (p: Peer, first: boolean) => events.push(`${first ? 'up' : 'rekeyed'} ${p.spec.name}`),
      down: (p: Peer, why: string) => events.push(`down ${p.spec.name} ${why}`),
    },
    { rekeyMs: 120_000, clock: () => clock.now, ...(staleMs ? { staleMs } : {}) },
  );
  layer.setPeers(specs);
  return { dp, layer, events };
}

const SPOKE_AT = { address: '192.0.2.1', port: 4789 };
const HUB_AT = { address: '192.0.2.10', port: 4789 };

function pair() {
  const clock = { now: 1_000_000 };
  const hubId = id();
  const spokeId = id();
  const spoke = node(spokeId, [{ publicKey: b64(hubId), name: 'hub', endpoint: HUB_AT, initiator: true }], clock, 3, 3000);
  const hub = node(hubId, [{ publicKey: b64(spokeId), name: 'spoke', endpoint: null, initiator: false }], clock, 9);
  /** Deliver everything each side sent to the other, until quiet. */
  const exchange = () => {
    for (let i = 0; i < 10; i++) {
      const a = spoke.dp.take();
      const b = hub.dp.take();
      if (!a.length && !b.length) return;
      for (const m of a) hub.layer.onHandshake(m.payload, SPOKE_AT);
      for (const m of b) spoke.layer.onHandshake(m.payload, HUB_AT);
    }
  };
  /** The data path saw the first packet under the hub's newest receive index. */
  const confirm = () => {
    const p = hub.layer.all()[0]!;
    if (p.next) hub.layer.onKeyUsed(9, p.next.localIndex);
  };
  return { clock, hubId, spokeId, spoke, hub, exchange, confirm };
}

describe('sessions', () => {
  it("a handshake gives each side the other one's keys, and the responder sends only after the first packet under them", () => {
    const { spoke, hub, exchange, confirm } = pair();
    spoke.layer.tick();
    const [init] = spoke.dp.sent;
    expect(init && handshakeType(init.payload)).toBe(INIT);
    expect(init!.to).toEqual(HUB_AT);
    exchange();
    // The initiator is up: its send key is the responder's receive key, and back.
    expect(spoke.events).toEqual(['up hub']);
    const [sTx] = [...spoke.dp.tx.values()];
    const hubRx = hub.dp.rx.get(sTx!.remote)!;
    expect(hubRx.vtep).toBe(9);
    expect(hubRx.key.equals(sTx!.key)).toBe(true);
    // The responder has a receive key but no send key until its first packet arrives.
    expect(hub.dp.tx.size).toBe(0);
    expect(hub.events).toEqual([]);
    confirm();
    expect(hub.events).toEqual(['up spoke']);
    const [hTx] = [...hub.dp.tx.values()];
    expect(spoke.dp.rx.get(hTx!.remote)!.key.equals(hTx!.key)).toBe(true);
  });

  it('rekeys after rekeyMs, keeps the previous receive key while packets are in flight, then drops it', () => {
    const { clock, spoke, hub, exchange, confirm } = pair();
    spoke.layer.tick();
    exchange();
    confirm();
    const first = [...spoke.dp.rx.keys()];
    clock.now += 120_000;
    spoke.layer.tick();
    exchange();
    confirm();
    expect(spoke.events).toEqual(['up hub', 'rekeyed hub']);
    expect(hub.events).toEqual(['up spoke', 'rekeyed spoke']);
    // Both sessions' receive keys are there; the send keys are the new session's.
    expect(spoke.dp.rx.size).toBe(2);
    expect(hub.dp.rx.size).toBe(2);
    expect(first.every((i) => spoke.dp.rx.has(i))).toBe(true);
    clock.now += PREVIOUS_KEEP_MS + 1;
    spoke.layer.tick();
    hub.layer.tick();
    expect(spoke.dp.rx.size).toBe(1);
    expect(hub.dp.rx.size).toBe(1);
    expect(first.some((i) => spoke.dp.rx.has(i))).toBe(false);
  });

  it('an initiator that hears nothing from its peer for staleMs handshakes again (the peer may have restarted)', () => {
    const { clock, spoke, exchange, confirm } = pair();
    spoke.layer.tick();
    exchange();
    confirm();
    spoke.layer.heard(3);
    clock.now += 2000;
    spoke.layer.tick();
    expect(spoke.dp.take()).toEqual([]);
    clock.now += 1500; // 3.5 s without an authenticated packet
    spoke.layer.tick();
    expect(spoke.dp.take().map((m) => handshakeType(m.payload))).toEqual([INIT]);
  });

  it('revocation (the key leaves the config) deletes every key of the peer at once', () => {
    const { spoke, hub, exchange, confirm } = pair();
    spoke.layer.tick();
    exchange();
    confirm();
    expect(hub.dp.rx.size + hub.dp.tx.size).toBe(2);
    hub.layer.setPeers([]);
    expect(hub.dp.rx.size + hub.dp.tx.size).toBe(0);
    expect(hub.events).toEqual(['up spoke', 'down spoke revoked']);
    // Its next initiation gets no answer.
    spoke.layer.tick(spoke.layer.all()[0]!.current!.createdAt + 120_000);
    const init = spoke.dp.take();
    for (const m of init) hub.layer.onHandshake(m.payload, SPOKE_AT);
    expect(hub.dp.sent).toEqual([]);
  });
});

describe('what an unauthenticated sender gets: nothing', () => {
  it('an initiation from an unlisted key, a replayed initiation and a stray response are dropped unanswered', () => {
    const { clock, hubId, spoke, hub, exchange } = pair();
    // A stranger with its own key who knows the hub's public key.
    const stranger = node(id(), [{ publicKey: b64(hubId), name: 'hub', endpoint: HUB_AT, initiator: true }], clock);
    stranger.layer.tick();
    for (const m of stranger.dp.take()) hub.layer.onHandshake(m.payload, { address: '192.0.2.66', port: 4789 });
    expect(hub.dp.sent).toEqual([]);
    expect(hub.dp.rx.size).toBe(0);
    expect(hub.layer.counters.dropped['initiation: unknown peer']).toBe(1);

    // The real spoke's initiation, captured and replayed after it was answered.
    spoke.layer.tick();
    const [init] = spoke.dp.sent;
    exchange();
    const rx = hub.dp.rx.size;
    hub.layer.onHandshake(init!.payload, { address: '192.0.2.66', port: 4789 });
    expect(hub.dp.take()).toEqual([]);
    expect(hub.dp.rx.size).toBe(rx);
    expect(hub.layer.counters.dropped['initiation: replayed (timestamp not newer)']).toBe(1);

    // A response for an index nobody gave out.
    const junk = Buffer.alloc(92);
    junk.writeUInt32LE(RESPONSE, 0);
    spoke.layer.onHandshake(junk, HUB_AT);
    expect(spoke.layer.counters.dropped['unknown index']).toBe(1);
    expect(spoke.dp.sent).toEqual([]);
  });

  it('under a flood of initiations the hub answers only with cookies, smaller than what it got; a cookie lets the spoke in', () => {
    const { clock, hubId, spoke, hub, exchange, confirm } = pair();
    // Strangers who know the hub's public key flood it with valid-looking initiations.
    const strangers = Array.from({ length: 3 }, () => node(id(), [{ publicKey: b64(hubId), name: 'hub', endpoint: HUB_AT, initiator: true }], clock));
    let received = 0;
    for (let i = 0; i <= LOAD_PER_S; i++) {
      const s = strangers[i % 3]!;
      s.layer.tick(clock.now + i * 1000);
      for (const m of s.dp.take()) {
        received += m.payload.length;
        hub.layer.onHandshake(m.payload, { address: '192.0.2.66', port: 5000 + i });
      }
    }
    const answers = hub.dp.take();
    expect(answers.every((m) => handshakeType(m.payload) === COOKIE)).toBe(true);
    expect(answers.reduce((n, m) => n + m.payload.length, 0)).toBeLessThanOrEqual(received);
    // The spoke, arriving during the flood, gets a cookie, retries with it and gets in.
    spoke.layer.tick();
    exchange();
    spoke.layer.tick();
    exchange();
    confirm();
    expect(spoke.layer.counters.cookiesReceived).toBe(1);
    expect(spoke.events).toEqual(['up hub']);
    expect(hub.events).toEqual(['up spoke']);
  });
});
