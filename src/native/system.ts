/**
 * The addon's calls outside the data path, as typed functions: TAP devices, file
 * descriptors, the takeover hand-over socket (SCM_RIGHTS) and systemd notification.
 * Everything in src/ outside src/native/ reaches the addon through here or through
 * NativeDatapath (src/native/datapath.ts); nothing else loads it.
 */
import { type AttachInfo, type AttachOpenOptions, native, type NativeLimits, type TapInfo, type TapOpenOptions } from './addon.js';

export type { AttachInfo, AttachOpenOptions, NativeLimits, TapInfo, TapOpenOptions };

/** Limits compiled into the addon. */
export function limits(): NativeLimits {
  return native().limits();
}

/** Create (or open) a TAP device; see TapOpenOptions. Closing its fds deletes it. */
export function tapOpen(opts: TapOpenOptions): TapInfo {
  return native().tapOpen(opts);
}

/** Attach an existing interface (a packet socket bound to it); see AttachInfo. Closing the fd detaches it. */
export function attachOpen(opts: AttachOpenOptions): AttachInfo {
  return native().attachOpen(opts);
}

/** The ifindex a packet socket from attachOpen is bound to; -1 once its interface was deleted. */
export function attachIfindex(fd: number): number {
  return native().attachIfindex(fd);
}

/** close(2) a descriptor the addon gave out (a TAP queue, a received fd, a listening socket). */
export function fdClose(fd: number): void {
  native().fdClose(fd);
}

/** Close fds that may be gone already (errors ignored). */
export function closeQuietly(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      fdClose(fd);
    } catch {
      /* gone */
    }
  }
}

/** sd_notify(3): send `state` to $NOTIFY_SOCKET. false when not started by systemd. */
export function sdNotify(state: string): boolean {
  return native().sdNotify(state);
}

/** Takeover hand-over (native/scm.c): listen on a Unix socket path (mode 0600). Returns the listening fd. */
export function scmListen(path: string): number {
  return native().scmListen(path);
}

/** Wait up to `timeoutMs` for a sender and receive its fds and payload; null if nobody came. */
export function scmAccept(fd: number, timeoutMs: number, ioTimeoutMs?: number): { fds: number[]; payload: Buffer } | null {
  return native().scmAccept(fd, timeoutMs, ioTimeoutMs);
}

/** Send `fds` and `payload` to the receiver listening on `path` and wait for its ack; the fds stay open here. */
export function scmSend(path: string, fds: number[], payload: Buffer, timeoutMs: number): void {
  native().scmSend(path, fds, payload, timeoutMs);
}
