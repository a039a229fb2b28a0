/**
 * One behaviour suite, two data paths. A Harness builds a Switch over either the
 * in-memory FakeDatapath or the real C addon, and gives the tests the same verbs: send a
 * frame into a port or from a remote VTEP, and take what came out of a port or onto the
 * underlay. The native harness uses SOCK_SEQPACKET socketpairs as ports and UDP sockets
 * on loopback addresses (127.0.0.2, 127.0.0.3, …) as remote VTEPs.
 */
import dgram from 'node:dgram';
import { Switch, type TenantSpec } from '../../src/core/switch.js';
import { NativeDatapath, type DpEvent } from '../../src/native/datapath.js';
import { dpProcessPath, native } from '../../src/native/addon.js';
import { testAddon } from './test-addon.js';
import { FakeDatapath, type WirePacket } from './fake-datapath.js';

export interface Harness {
  readonly kind: 'fake' | 'native';
  readonly sw: Switch;
  /** The switch's own underlay address (where remote VTEPs send). */
  readonly local: string;
  addTenant(spec: Partial<TenantSpec> & { name: string; vni: number }): void;
  addPort(tenant: string, name: string): void;
  fromPort(name: string, frame: Buffer): void;
  fromVtep(address: string, vni: number, frame: Buffer): void;
  /** Let the data path and the event loop run. */
  settle(): Promise<void>;
  /** Frames delivered to a port since the last take. */
  takePort(name: string): Promise<Buffer[]>;
  /** VXLAN packets put on the underlay since the last take. */
  takeWire(): Promise<WirePacket[]>;
  /** Let `ms` of time pass (the fake's clock, or real time). */
  advance(ms: number): Promise<void>;
  dropCount(reason: string): number;
  close(): Promise<void>;
}

export function tenantSpec(p: Partial<TenantSpec> & { name: string; vni: number }): TenantSpec {
  return { learning: true, ageingMs: 300_000, maxMacs: 8192, flood: [], fdb: [], ...p };
}

/** Remote VTEP addresses the suite uses. */
export const VTEP_A = '127.0.0.2';
export const VTEP_B = '127.0.0.3';
export const VTEP_C = '127.0.0.4';

export class FakeHarness implements Harness {
  readonly kind = 'fake' as const;
  readonly dp = new FakeDatapath();
  readonly sw = new Switch(this.dp, { vxlanPort: 4789, maxMacsTotal: 100000, clock: () => this.dp.now });
  readonly local = '127.0.0.1';

  constructor() {
    this.sw.start();
  }
  addTenant(spec: Partial<TenantSpec> & { name: string; vni: number }): void {
    this.sw.addTenant(tenantSpec(spec));
  }
  addPort(tenant: string, name: string): void {
    this.sw.addPort(tenant, name, -1);
  }
  fromPort(name: string, frame: Buffer): void {
    this.dp.fromPort(this.sw.portId(name)!, frame);
  }
  fromVtep(address: string, vni: number, frame: Buffer): void {
    this.dp.fromUnderlay(address, vni, frame);
  }
  async settle(): Promise<void> {}
  async takePort(name: string): Promise<Buffer[]> {
    const id = this.sw.portId(name)!;
    const q = this.dp.portOut.get(id) ?? [];
    this.dp.portOut.set(id, []);
    return q;
  }
  async takeWire(): Promise<WirePacket[]> {
    return this.dp.wire.splice(0);
  }
  async advance(ms: number): Promise<void> {
    this.dp.now += ms;
  }
  dropCount(reason: string): number {
    return this.dp.drops[reason] ?? 0;
  }
  async close(): Promise<void> {
    this.sw.stop();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The real data path, counting the learn and miss records it has handed to the Switch. */
class CountingDatapath extends NativeDatapath {
  delivered = 0;
  override start(onEvents: (events: DpEvent[]) => void): void {
    super.start((events) => {
      for (const e of events) if (e.type === 'learn' || e.type === 'miss') this.delivered++;
      onEvents(events);
    });
  }
}

/** How long settle() waits for the data path to go quiet before it says what is still moving. */
const SETTLE_DEADLINE_MS = 10_000;

export class NativeHarness implements Harness {
  readonly kind = 'native' as const;
  readonly sw: Switch;
  readonly local = '127.0.0.1';
  private readonly n = native();
  private readonly t = testAddon();
  private readonly peerFd = new Map<string, number>();
  private readonly fds: number[] = [];
  private readonly remotes = new Map<string, dgram.Socket>();
  private readonly wire: WirePacket[] = [];
  readonly dp: CountingDatapath;
  /** What the test put in: frames written into ports, datagrams sent from remote VTEPs. */
  private sentByPorts = 0;
  private sentByVteps = 0;
  /** Datagrams the remote VTEPs have received, ever (the wire is emptied by takeWire). */
  private wireTotal = 0;

  private constructor(
    readonly port: number,
    ownProcess: boolean,
  ) {
    this.dp = new CountingDatapath({ local: this.local, port, sourcePorts: 4, ...(ownProcess ? { process: dpProcessPath() } : {}) });
    this.sw = new Switch(this.dp, { vxlanPort: port, maxMacsTotal: 100000 });
    this.sw.start();
  }

  /**
   * A switch on a free loopback UDP port, with remote VTEP sockets on 127.0.0.2..4 at the same
   * port. ownProcess: its data path in a process of its own (vtepd-dp), as the daemon runs it.
   */
  static async create(opts: { ownProcess?: boolean } = {}): Promise<NativeHarness> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = 20000 + Math.floor(Math.random() * 20000);
      let h: NativeHarness | undefined;
      try {
        h = new NativeHarness(port, opts.ownProcess ?? false);
        for (const a of [VTEP_A, VTEP_B, VTEP_C]) await h.bindRemote(a);
        return h;
      } catch (e) {
        await h?.close();
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      }
    }
    throw new Error('no free UDP port on loopback');
  }

  private bindRemote(address: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = dgram.createSocket('udp4');
      s.once('error', reject);
      s.on('message', (msg) => {
        if (msg.length < 8) return;
        const vni = msg.readUIntBE(4, 3);
        this.wireTotal++;
        this.wire.push({ to: address, vni, frame: Buffer.from(msg.subarray(8)), header: Buffer.from(msg.subarray(0, 8)) });
      });
      s.bind(this.port, address, () => {
        this.remotes.set(address, s);
        resolve();
      });
    });
  }

  addTenant(spec: Partial<TenantSpec> & { name: string; vni: number }): void {
    this.sw.addTenant(tenantSpec(spec));
  }
  addPort(tenant: string, name: string): void {
    const [a, b] = this.t.testSocketPair();
    this.fds.push(a, b);
    this.sw.addPort(tenant, name, a);
    this.peerFd.set(name, b);
  }
  fromPort(name: string, frame: Buffer): void {
    this.t.testWrite(this.peerFd.get(name)!, frame);
    this.sentByPorts++;
  }
  fromVtep(address: string, vni: number, frame: Buffer): void {
    const hdr = Buffer.alloc(8);
    hdr[0] = 0x08;
    hdr.writeUIntBE(vni, 4, 3);
    this.remotes.get(address)!.send(Buffer.concat([hdr, frame]), this.port, this.local);
    this.sentByVteps++;
  }
  /**
   * Wait until the data path is quiet: it has read every frame and datagram the test put
   * in, the Switch has been handed every learn and miss record it queued, every datagram it
   * sent has reached its remote VTEP, and two reads of its counters 10 ms apart agree.
   * Readiness by counting, not a fixed time: a busy machine only makes it slower.
   */
  async settle(): Promise<void> {
    const deadline = Date.now() + SETTLE_DEADLINE_MS;
    let last = '';
    for (;;) {
      const c = this.dp.stats().counters;
      const n = (k: string) => c[k] ?? 0;
      const pending: string[] = [];
      if (n('tap_rx_frames') < this.sentByPorts) pending.push(`ports read ${n('tap_rx_frames')} of ${this.sentByPorts} frames`);
      if (n('underlay_rx_packets') < this.sentByVteps) pending.push(`underlay read ${n('underlay_rx_packets')} of ${this.sentByVteps} datagrams`);
      const queued = n('learn_events') + n('punted_frames');
      if (this.dp.delivered < queued) pending.push(`switch handed ${this.dp.delivered} of ${queued} records`);
      if (this.wireTotal < n('underlay_tx_packets')) pending.push(`remote VTEPs got ${this.wireTotal} of ${n('underlay_tx_packets')} datagrams`);
      const now = `${JSON.stringify(c)} ${this.dp.delivered} ${this.wireTotal}`;
      if (pending.length === 0 && now === last) return;
      if (Date.now() > deadline)
        throw new Error(`native harness: data path not quiet after ${SETTLE_DEADLINE_MS} ms: ${pending.join('; ') || 'counters still moving'}`);
      last = now;
      await sleep(10);
    }
  }
  async takePort(name: string): Promise<Buffer[]> {
    await this.settle();
    const out: Buffer[] = [];
    for (;;) {
      const f = this.t.testRead(this.peerFd.get(name)!, 0);
      if (!f) return out;
      out.push(f);
    }
  }
  async takeWire(): Promise<WirePacket[]> {
    await this.settle();
    return this.wire.splice(0);
  }
  async advance(ms: number): Promise<void> {
    await sleep(ms);
  }
  dropCount(reason: string): number {
    return this.dp.stats().counters[reason] ?? 0;
  }
  async close(): Promise<void> {
    this.sw.stop();
    for (const s of this.remotes.values()) await new Promise<void>((r) => s.close(() => r()));
    for (const fd of this.fds) this.n.fdClose(fd);
  }
}
