/**
 * The native addon's surface, declared once.
 *
 * The addon (native/, built by node-gyp into build/Release/vtepd.node) is a small flat
 * API over opaque handles. It owns the hot loop: batched reads from TAP ports and from
 * the underlay UDP socket, an exact-match FDB cache, VXLAN push/pop, batched writes.
 * TypeScript owns the truth (tenants, MAC tables, flood lists) and programs the cache.
 *
 * Identifiers (tenantId, portId, vtepId) are small integers that TypeScript allocates:
 *   tenantId 1..MAX_TENANTS-1, portId 1..MAX_PORTS-1, vtepId 1..MAX_VTEPS-1.
 * Errors: every function throws an Error with a string `code` (an errno name such as
 * 'EINVAL', 'EEXIST', 'ENOENT', 'EADDRINUSE', or 'ERANGE' for an id out of range) and a
 * message naming the call and the argument.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { packageRoot } from '../util/paths.js';
import { dirname, join } from 'node:path';
import type { Encap } from '../core/encap.js';

/** Limits compiled into the addon (also returned by `limits()`). */
export interface NativeLimits {
  maxTenants: number;
  maxPorts: number;
  maxVteps: number;
  /** Entries the FDB cache holds (its table has twice as many slots); one more is refused with ENOSPC. */
  fdbCapacity: number;
  /** Largest frame the fast path reads from a TAP or writes to one. */
  maxFrame: number;
  batch: number;
}

export interface TapOpenOptions {
  /** Interface name, at most 15 bytes. */
  name: string;
  /** A network namespace name under /run/netns; the TAP is created inside it. */
  netns?: string;
  mtu: number;
  /** "02:00:00:00:01:01"; the kernel picks a random one if absent. */
  mac?: string;
  /** IPv4 address and prefix length to set on the TAP. */
  ipv4?: { address: string; prefixLength: number };
  /** Bring the link up (default true). */
  up?: boolean;
  /**
   * Open with IFF_VNET_HDR and enable TUNSETOFFLOAD (checksum, TSO4/6 with ECN, USO4/6
   * where the kernel has them; what it refuses is left out). Frames then come and go
   * behind a 10-byte virtio_net_hdr: attach the fd with `dpPortSet(..., { vnetHdr: true })`.
   * Default true.
   */
  offloads?: boolean;
  /**
   * 1 (default): a plain TAP. 2..8: IFF_MULTI_QUEUE with one fd per queue (`fd` is queue
   * 0's, `queueFds` the others'): the kernel hands each flow to one queue. The device lives
   * while any of them is open.
   */
  queues?: number;
}

export interface TapInfo {
  /** Non-blocking file descriptor of the TAP queue; closing it deletes the device. */
  fd: number;
  name: string;
  ifindex: number;
  /** The MAC in effect, "aa:bb:cc:dd:ee:ff". */
  mac: string;
  /** Frames on this fd carry a virtio_net_hdr (opened with offloads). */
  vnetHdr: boolean;
  /** Offloads the kernel accepted: "csum", "tso4", "tso6", "tso_ecn", "uso4", "uso6". */
  offloads: string[];
  /**
   * With TSO: the TAP's gso_max_segs, set so one super-frame fits one UDP_SEGMENT send
   * (64 KB / (VXLAN + Ethernet + MTU)); absent if the kernel refused to change it.
   */
  gsoMaxSegs?: number;
  /** Queues 1.. of a multi-queue TAP (empty for a plain one); attach with `queueFds`. */
  queueFds: number[];
}

export interface AttachOpenOptions {
  /** The interface to attach, at most 15 bytes; it must exist. */
  name: string;
  /** A network namespace name under /run/netns the interface is in. */
  netns?: string;
  /** Bring the interface up if it is down (default true). */
  up?: boolean;
  /** Turn IPv6 off on the interface (net.ipv6.conf.NAME.disable_ipv6 in its namespace); default false. */
  ipv6Off?: boolean;
}

/**
 * An attached interface (native/attach.c): an AF_PACKET socket bound to it, with
 * PACKET_VNET_HDR (attach it with `dpPortSet(..., { vnetHdr: true })`),
 * PACKET_IGNORE_OUTGOING and the interface in promiscuous mode while the socket is open.
 */
export interface AttachInfo {
  /** The packet socket, non-blocking; closing it ends promiscuous mode. */
  fd: number;
  name: string;
  ifindex: number;
  /** The interface's MAC, "aa:bb:cc:dd:ee:ff". */
  mac: string;
  mtu: number;
  /** The interface was down and was brought up. */
  broughtUp: boolean;
  /** IPv6 was on and was turned off (ipv6Off). */
  ipv6TurnedOff: boolean;
}

export interface PortSetOptions {
  /**
   * The fd reads and writes frames behind a virtio_net_hdr (a TAP from `tapOpen` with
   * offloads). Omitted: what the fd says (a TAP's IFF_VNET_HDR flag; any other fd, such as
   * a SOCK_SEQPACKET test socket, is plain). A TAP whose flag disagrees is EINVAL.
   */
  vnetHdr?: boolean;
  /**
   * The other queues' fds of a multi-queue TAP (`TapInfo.queueFds`): queue q's threads
   * read and write fd q. At most the data path's queues - 1 (EINVAL beyond: a TAP queue
   * nobody reads would stall the flows the kernel gives it); fewer is fine.
   */
  queueFds?: number[];
}

export interface DpCreateOptions {
  /** Underlay local address (IPv4 today; the socket layer takes IPv6 too). */
  local: string;
  /** UDP port VXLAN is received on (and the destination port used toward peers unless a VTEP says otherwise). */
  port: number;
  /**
   * Number of send sockets bound to distinct source ports in 49152..65535; the inner
   * flow hash picks one, so one flow keeps one source port (RFC 7348 §5). Default 8.
   * With `underlayFds` it may be omitted; if given it must equal underlayFds.length - 1.
   */
  sourcePorts?: number;
  /**
   * Adopt existing underlay sockets instead of opening new ones (a takeover restart hands
   * them over with SCM_RIGHTS): [receive socket bound to local:port, send socket, ...],
   * in the order `dpUnderlayFds` returns them. Each must be a UDP socket of local's family
   * bound to local's address (the receive socket to `port`, the send sockets to distinct
   * other ports); they are set non-blocking and close-on-exec and get the same options as
   * sockets opened here.
   *
   * Ownership: if dpCreate succeeds, the data path owns them: dpStop closes them (once),
   * and the caller must not close them. If dpCreate throws, they are untouched and still
   * the caller's to close.
   */
  underlayFds?: number[];
  /**
   * UDP_SEGMENT on send and UDP_GRO on receive where the kernel has them (default true;
   * false for measurements and tests of the plain path).
   */
  offloads?: boolean;
  /**
   * Open a raw IPPROTO_GRE socket on `local` (default false): GRE-TAP and NVGRE VTEPs and
   * tenants need it (needs CAP_NET_RAW). The kernel builds the outer IP header; it is not
   * handed over by a takeover (the successor opens its own).
   */
  gre?: boolean;
  /**
   * Dual stack: a second underlay address of the other family. It gets its own receive
   * socket on `port`, `sourcePorts` send sockets and (with `gre`) a raw GRE socket; VTEPs
   * of both families are then allowed, each reached from its family's sockets. Not part of
   * `underlayFds` / `dpUnderlayFds` (a takeover's successor binds its own).
   */
  local2?: string;
  /**
   * 1 (default): one encap and one decap thread. 2..8: that many pairs, each with its own
   * receive socket (all bound with SO_REUSEPORT: the kernel spreads flows by outer 4-tuple)
   * and its own queue of every multi-queue port. The send sockets are shared, so over IPv4
   * their UDP checksums stay on. Not with `underlayFds`, and `dpUnderlayFds` then hands
   * nothing over (a takeover's successor binds its own group).
   */
  queues?: number;
  /**
   * Pin the fast path: queue q's encap and decap threads run on CPU cpus[q % length] (each
   * 0..1023). Without it the threads run where the scheduler puts them. dpStart fails (EINVAL,
   * naming the CPU) when this process may not run on one of them.
   */
  cpus?: number[];
  /**
   * The cipher this host seals encrypted tunnels with (receiving takes both). Default: the
   * environment's VTEPD_CIPHER (read once here; another value is EINVAL), else aes-256-gcm
   * where the CPU has AES instructions, else chacha20-poly1305. `dpCipher` says which.
   */
  cipher?: Cipher;
  /**
   * Absolute path of the `vtepd-dp` executable (`dpProcessPath()`). Given: dpCreate spawns it
   * (posix_spawn, same network namespace and privileges) and the whole data path (sockets,
   * threads, tables) lives in that child process; every other dp* call works as without it,
   * marshalled over a socketpair (fds go by SCM_RIGHTS), and events come back over it.
   * Absent: the data path runs in this process. See `dpProcess`.
   */
  process?: string;
}

/** The data path's own process (`DpCreateOptions.process`), as `dpProcess` sees it. */
export interface DpProcessInfo {
  pid: number;
  /** Still running. Once false, every dp* control call throws EPIPE and no event comes any more. */
  alive: boolean;
  /** Once dead: how it ended, "exited with status 1" or "killed by signal 9". */
  exit?: string;
}

/** The AEADs of the encrypted transport (native/secure.h): type byte 4 and 5 on the wire. */
export type Cipher = 'aes-256-gcm' | 'chacha20-poly1305';

/** The `encap` byte of an event record (VXLAN; GRE-TAP: GRE key = VNI; NVGRE: key = VSID << 8 | FlowID). */
export const ENCAP_CODES: Record<number, Encap> = { 1: 'vxlan', 2: 'gre', 3: 'nvgre' };

/** Per-VTEP options of dpVtepSet. */
export interface VtepOptions {
  /**
   * Path MTU toward the VTEP: the largest outer IP packet. An encapsulation that would be
   * larger is not sent but punted as EV_TOO_BIG (GSO: one segment's size counts). 0 or
   * absent: no check (the kernel's EMSGSIZE counts underlay_tx_too_big).
   */
  mtu?: number;
  /**
   * Send everything toward this VTEP from the receive socket (the underlay port) instead of
   * the source-port pool: a NAT mapping then holds one port, and a hub answers a NAT'd spoke
   * from the address and port the spoke sent to (what the NAT's conntrack expects).
   */
  fixedSourcePort?: boolean;
  /**
   * Identify the VTEP by outer source address AND UDP port (a spoke learned behind NAT,
   * where several spokes share one address). Default: by address only, since kernel VXLAN
   * peers pick the source port per flow. The same address may be one VTEP by address and
   * others by address and port; a datagram matches address and port first.
   */
  matchPort?: boolean;
  /**
   * The encapsulation toward it (default vxlan). A VTEP is (address, encap): the same
   * address may be a VXLAN VTEP and a GRE-TAP one. GRE-TAP/NVGRE need dpCreate's `gre`,
   * and take neither matchPort nor fixedSourcePort; their `port` is ignored.
   */
  encap?: Encap;
}

export interface SecureSendOptions {
  /** Don't fragment (default true). */
  df?: boolean;
}

export interface ControlSendOptions {
  /** Don't fragment (default true): a PMTU probe must arrive whole or not at all. */
  df?: boolean;
  /** Send from the receive socket, so replies come back to the underlay port (default true). */
  fromRxSocket?: boolean;
}

/** An opaque data-path handle. */
export interface DpHandle {
  readonly __brand: 'DpHandle';
}

export const FDB_PORT = 1;
export const FDB_VTEP = 2;
export type FdbKind = typeof FDB_PORT | typeof FDB_VTEP;

/** Event record types (see EVENT layout below). */
export const EV_LEARN = 1;
export const EV_MISS = 2;
/** A liveness message (UDP payload starting 00 56 54 50, src/overlay/liveness.ts) from the underlay. */
export const EV_CONTROL = 3;
/** A frame that does not fit the path MTU of the VTEP it was going to (ICMP feedback). */
export const EV_TOO_BIG = 4;
/** Encrypted tunnels: a liveness message that came sealed under a receive key (layout of EV_CONTROL). */
export const EV_SECURE = 5;
/** The first packet that authenticated under a receive key (once per key): outId is its index. */
export const EV_KEY_USED = 6;
/** An authenticated packet from another outer address:port than the VTEP's (at most once per VTEP per 100 ms per thread). */
export const EV_ENDPOINT = 7;
/** Where a frame came in. */
export const IN_PORT = 1;
export const IN_VTEP = 2;
/** Decapsulated from an outer source address that is not a configured VTEP. */
export const IN_UNKNOWN_VTEP = 3;

/**
 * Layout of one event record in the Buffer handed to the `onEvents` callback. Records
 * follow one another; each starts at a multiple of 8. All integers little endian.
 *
 *   off size field
 *    0   4   recLen      total bytes of this record including header and padding
 *    4   1   type        EV_LEARN (source MAC not in the cache at this place) or
 *                        EV_MISS (the whole frame is punted: broadcast, multicast or
 *                        unknown unicast destination; TypeScript decides the flooding),
 *                        EV_CONTROL, EV_TOO_BIG, EV_SECURE, EV_KEY_USED, EV_ENDPOINT
 *    5   1   inKind      IN_PORT, IN_VTEP or IN_UNKNOWN_VTEP
 *    6   2   outerPort   outer UDP source port (IN_VTEP / IN_UNKNOWN_VTEP), else 0
 *    8   4   tenantId
 *   12   4   inId        portId or vtepId; 0 for IN_UNKNOWN_VTEP
 *   16  16   outerAddr   outer source address: IPv4 in the first 4 bytes, or IPv6
 *   32   1   family      4 or 6 (0 for IN_PORT)
 *   33   1   encap       events from the underlay: what carried the frame, 1 VXLAN, 2 GRE-TAP,
 *                        3 NVGRE (ENCAP_CODES); 0 for IN_PORT
 *   34   6   (zero)
 *   40   6   srcMac      the frame's source MAC (zero for EV_CONTROL, EV_SECURE,
 *                        EV_KEY_USED, EV_ENDPOINT)
 *   46   2   (zero)
 *   48   4   frameLen    bytes of frame that follow (0 for EV_LEARN)
 *   52   4   outId       EV_TOO_BIG: the vtepId whose path MTU the frame exceeds;
 *                        EV_KEY_USED: the receive key's index; else 0
 *   56   .   frame       EV_MISS: the inner Ethernet frame; EV_TOO_BIG: its first bytes
 *                        (at most 1294: what an ICMP error quotes); EV_CONTROL: the UDP
 *                        payload (tenantId 0, inKind IN_VTEP or IN_UNKNOWN_VTEP, outer
 *                        address, family and port set)
 *
 * Encrypted tunnels (native/secure.h). All three: tenantId 0, inKind IN_VTEP, inId the VTEP
 * of the receive key the packet authenticated under (never looked up by outer address),
 * outer address, family and port the packet's real source:
 *   EV_SECURE    frame: the opened liveness message (UDP payload, 00 56 54 50 ...)
 *   EV_KEY_USED  no frame; outId: our index of the key (raised once per key: the peer has
 *                it, switch the send key to the session after a rekey)
 *   EV_ENDPOINT  no frame; the outer source differs from the VTEP's address:port (roaming,
 *                a NAT rebinding: move the VTEP with dpVtepSet)
 * Handshake messages (UDP payloads [1|2|3, 0, 0, 0] of exactly 148, 92, 52 bytes) come up
 * as EV_CONTROL like liveness messages.
 *
 * EV_TOO_BIG comes from a port (the encap of a frame whose outer packet would exceed the
 * VTEP's `mtu`; for a GSO super-frame, the size of one segment counts) or, on a hub, from a
 * VTEP (a relayed frame); the ICMP reply goes back where the frame came from.
 */
export const EVENT_HEADER = 56;

export interface CounterSet {
  [name: string]: number;
}

export interface PortCounters {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  drops: number;
}

export interface DpStats {
  /** Global counters: traffic counters and one per drop reason (names from `counterInfo()`). */
  counters: CounterSet;
  /** Indexed by portId; only ports that exist. */
  ports: Record<number, PortCounters>;
  /** Indexed by vtepId; only VTEPs that exist. */
  vteps: Record<number, PortCounters>;
  /**
   * Indexed by tenantId; only tenants that exist: the tenant's tunnel traffic. tx: inner
   * frames and bytes sent to VTEPs (as the kernel took them), drops: those it refused;
   * rx: inner frames and bytes received from VTEPs the tenant accepts. The fake has none.
   */
  tenants?: Record<number, PortCounters>;
  /**
   * Per queue (index = queue): frames its encap thread read from ports, packets its decap
   * thread took from the underlay. One entry without underlay.queues. The fake has none.
   */
  queues?: { encapFrames: number; decapPackets: number }[];
}

export interface NativeAddon {
  limits(): NativeLimits;
  /** All global counters, drop reasons included, in the addon's order: name, help text and
   *  whether it counts a drop (compiled from native/counters.def). */
  counterInfo(): { name: string; help: string; drop: boolean }[];
  /** Monotonic milliseconds, the clock FDB idle times are measured in. */
  nowMs(): number;

  tapOpen(opts: TapOpenOptions): TapInfo;
  /** close(2) a descriptor the addon gave out (TAP or test socket). */
  fdClose(fd: number): void;
  attachOpen(opts: AttachOpenOptions): AttachInfo;
  /** The ifindex a packet socket is bound to; -1 once its interface was deleted. */
  attachIfindex(fd: number): number;

  dpCreate(opts: DpCreateOptions): DpHandle;
  /** Start the fast-path threads. `onEvents` is called on the JS thread with one Buffer of event records per wake-up, never per packet. */
  dpStart(dp: DpHandle, onEvents: (records: Buffer) => void): void;
  /**
   * Stop threads, close the underlay sockets (opened or adopted: each exactly once). Ports'
   * fds are NOT closed (the caller owns them). Idempotent.
   */
  dpStop(dp: DpHandle): void;
  /**
   * The underlay sockets: [receive socket, send sockets...], for handing over to a
   * successor (SCM_RIGHTS duplicates them into the receiver; these stay the data path's and
   * dpStop closes them). [] once stopped.
   */
  dpUnderlayFds(dp: DpHandle): number[];

  dpTenantSet(dp: DpHandle, tenantId: number, vni: number): void;
  /**
   * Anti-spoofing: let the tenant take encapsulated frames from this VTEP (true) or not.
   * A new tenant accepts no VTEP; frames from others are dropped as vtep_not_accepted
   * before anything is learned or delivered. Deleting a VTEP withdraws it everywhere.
   */
  dpTenantAccept(dp: DpHandle, tenantId: number, vtepId: number, accept: boolean): void;
  /** Accept encapsulated frames from any source (`acceptFrom: any`), learning unknown VTEPs. */
  dpTenantAcceptAny(dp: DpHandle, tenantId: number, any: boolean): void;
  /**
   * The encapsulations the tenant takes on receive (a new tenant: ['vxlan']). A GRE packet's
   * key names a tenant taking 'gre' (key = VNI), else key >> 8 one taking 'nvgre' (VSID).
   * 'gre'/'nvgre' without dpCreate's `gre` is ENOPROTOOPT; 'nvgre' with a VNI below 4096 EINVAL.
   */
  dpTenantEncaps(dp: DpHandle, tenantId: number, encaps: Encap[]): void;
  /**
   * Hub relay: frames of the tenant from a VTEP to a MAC behind another VTEP are
   * re-encapsulated toward it (in C); to the VTEP they came from, dropped as hairpin.
   * Off (default): split horizon.
   */
  dpTenantRelay(dp: DpHandle, tenantId: number, relay: boolean): void;
  /** Frames from VTEPs with an 802.1Q/802.1ad tag: dropped as inner_vlan (false, the default) or let through. */
  dpTenantInnerVlan(dp: DpHandle, tenantId: number, allow: boolean): void;
  /**
   * TCP MSS clamping: lower the MSS option of SYN and SYN-ACK segments of the tenant to
   * mssV4 (inner IPv4) or mssV6 (inner IPv6), in both directions (port -> VTEP and VTEP ->
   * port, relayed too), updating the TCP checksum incrementally (or leaving it to the
   * checksum offload of a checksum-partial frame). 0 = off.
   */
  dpTenantMss(dp: DpHandle, tenantId: number, mssV4: number, mssV6: number): void;
  /**
   * Send one liveness message (a UDP payload) to address:port on the underlay. Throws
   * EMSGSIZE if it cannot leave this host whole (bigger than the local link allows).
   */
  dpSendControl(dp: DpHandle, address: string, port: number, payload: Buffer, opts?: ControlSendOptions): void;
  /** Remove a tenant, its ports' bindings and every FDB entry of it. */
  dpTenantDel(dp: DpHandle, tenantId: number): void;
  /** Attach an fd (a TAP, or any packet fd such as one end of a SOCK_SEQPACKET pair) as a port of a tenant. */
  dpPortSet(dp: DpHandle, portId: number, tenantId: number, fd: number, opts?: PortSetOptions): void;
  /** Detach a port and remove FDB entries pointing at it. Does not close the fd. EBUSY for a trunk with VLAN ports. */
  dpPortDel(dp: DpHandle, portId: number): void;
  /** An attached interface's packet socket as a trunk (#15): no tenant; its frames go to its VLAN ports by tag. */
  dpTrunkSet(dp: DpHandle, portId: number, fd: number): void;
  /** A tenant's VLAN port on a trunk: frames tagged `vlan` (1..4094; 0: untagged) in, tagged out. */
  dpVlanPortSet(dp: DpHandle, portId: number, tenantId: number, trunkId: number, vlan: number): void;
  /**
   * Configure a VTEP (remote underlay address, destination UDP port, options). Builds its
   * outer-header template. With matchPort, EEXIST if another VTEP has that address and
   * port; without, if another has that address without matchPort.
   */
  dpVtepSet(dp: DpHandle, vtepId: number, address: string, port: number, opts?: VtepOptions): void;
  /** Remove a VTEP and FDB entries pointing at it. */
  dpVtepDel(dp: DpHandle, vtepId: number): void;

  dpFdbSet(dp: DpHandle, tenantId: number, mac: Buffer, kind: FdbKind, id: number): void;
  dpFdbDel(dp: DpHandle, tenantId: number, mac: Buffer): void;
  /**
   * Idle times of every cache entry: records of 16 bytes,
   *   u32 tenantId (off 0), u8[6] mac (off 4), u16 zero (off 10), u32 idleMs (off 12) — the time
   *   since the MAC was last seen as a source at its place.
   */
  dpFdbIdle(dp: DpHandle): Buffer;

  /**
   * Send one frame of a tenant out of the given ports (written as is) and VTEPs (VXLAN
   * encapsulated with the tenant's VNI). Used for flooding (head-end replication) and for
   * punted frames. Returns the number of copies sent.
   */
  dpTransmit(dp: DpHandle, tenantId: number, frame: Buffer, ports: Uint32Array, vteps: Uint32Array): number;

  dpStats(dp: DpHandle): DpStats;

  /**
   * Encrypted tunnels (native/secure.h). A receive key under OUR index (1..2^32-1, random,
   * chosen here) for a session with a VTEP (must exist, VXLAN): sealed packets naming the
   * index are opened with it and belong to that VTEP. Replacing an index resets its replay
   * window (and EV_KEY_USED). At most 3 per VTEP: ENOSPC beyond. key: 32 bytes.
   */
  dpKeyRxSet(dp: DpHandle, index: number, vtepId: number, key: Buffer): void;
  /** Remove a receive key (absent: not an error). */
  dpKeyRxDel(dp: DpHandle, index: number): void;
  /** The VTEP's send key and the peer's index for it (0..2^32-1); its counter starts at 0. Replaces the one before. */
  dpKeyTxSet(dp: DpHandle, vtepId: number, remoteIndex: number, key: Buffer): void;
  /** Remove the VTEP's send key (absent: not an error). dpVtepDel removes all of a VTEP's keys. */
  dpKeyTxDel(dp: DpHandle, vtepId: number): void;
  /**
   * required: the tenant's frames go to VTEPs only sealed with their send key (none: dropped,
   * counted secure_no_key, never sent in clear), and plain frames received for it are dropped
   * (plaintext_refused). false (default): plain VXLAN out, plain and sealed frames in.
   */
  dpTenantEncrypt(dp: DpHandle, tenantId: number, required: boolean): void;
  /**
   * Seal a liveness message with the VTEP's send key and send it to the VTEP from the receive
   * socket. ENOKEY without a send key; EMSGSIZE if it cannot leave whole.
   */
  dpSendSecure(dp: DpHandle, vtepId: number, payload: Buffer, opts?: SecureSendOptions): void;
  /** The cipher this data path seals with. */
  dpCipher(dp: DpHandle): Cipher;
  /**
   * The child process of a data path created with `process`: its PID, whether it still runs
   * and, once dead, how it ended. null for a data path in this process.
   */
  dpProcess(dp: DpHandle): DpProcessInfo | null;

  /**
   * Takeover restart (native/scm.c): hand file descriptors and a payload from one process
   * to another over a Unix stream socket with SCM_RIGHTS. The receiver listens; the
   * sender connects, sends, and waits for the receiver's ack, keeping its own copies of
   * the fds until then (so a receiver that dies midway loses no device).
   */
  /** Bind and listen on a Unix socket path (a stale socket file is replaced; mode 0600). Returns the listening fd. */
  scmListen(path: string): number;
  /**
   * Wait up to `timeoutMs` (0: just check) for a sender, then receive its fds (close-on-exec)
   * and payload with an I/O timeout of `ioTimeoutMs` (default 5000) and ack. null: nobody
   * connected in time. Refuses (EPERM) a sender of another user unless it is root.
   */
  scmAccept(fd: number, timeoutMs: number, ioTimeoutMs?: number): { fds: number[]; payload: Buffer } | null;
  /** Connect to `path`, send `fds` and `payload`, wait up to `timeoutMs` for the ack. The fds stay open here. */
  scmSend(path: string, fds: number[], payload: Buffer, timeoutMs: number): void;
  /** sd_notify(3): send `state` to $NOTIFY_SOCKET. false when not started by systemd. */
  sdNotify(state: string): boolean;
}

function findAddon(): string {
  const p = join(packageRoot, 'build', 'Release', 'vtepd.node');
  if (existsSync(p)) return p;
  throw new Error('vtepd native addon not built: run `npm ci` (or `npx node-gyp rebuild`)');
}

/** The name of the data path's executable, built by node-gyp beside the addon (binding.gyp). */
export const DP_EXECUTABLE = 'vtepd-dp';

/**
 * Absolute path of `vtepd-dp`, the data path in a process of its own (`DpCreateOptions.process`):
 * in the directory of the addon. Throws when it is not built.
 */
export function dpProcessPath(): string {
  const p = join(dirname(findAddon()), DP_EXECUTABLE);
  if (existsSync(p)) return p;
  throw new Error(`${p}: the data path's executable is not built: run \`npm ci\` (or \`npx node-gyp rebuild\`)`);
}

let cached: NativeAddon | undefined;

/** Load the addon once. */
export function native(): NativeAddon {
  if (!cached) {
    const require = createRequire(import.meta.url);
    cached = require(findAddon()) as NativeAddon;
  }
  return cached;
}
