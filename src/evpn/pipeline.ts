/**
 * gRPC calls to gobgpd, several in flight (issue #17, bulk export): up to `limit` at a time,
 * started in the order they were queued, except that a call waits for the one before it with
 * the same key (the route it names): a withdrawal never overtakes its advertisement, while
 * different routes overlap. Every step is O(1) per call.
 */
export type Call = () => Promise<void>;

/** How many calls vtepd keeps in flight to gobgpd (one at a time made a burst 1 ÷ round trip; src/evpn/gobgp.ts sends type-2 ones PATH_BATCH to a request). */
export const PIPELINE_DEPTH = 256;

export class CallPipeline {
  /** Calls whose key is free, in order (a queue with a head index: no O(n) shift). */
  private ready: { key: string; call: Call }[] = [];
  private head = 0;
  /** key -> the calls queued behind the one of that key now ready or in flight. */
  private readonly waiting = new Map<string, Call[]>();
  private inFlight = 0;
  private scheduled = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly limit = PIPELINE_DEPTH) {}

  /** Queue `call` after the calls of the same `key`; it starts after the current synchronous code. */
  push(key: string, call: Call): void {
    const w = this.waiting.get(key);
    if (w) w.push(call);
    else {
      this.waiting.set(key, []);
      this.ready.push({ key, call });
    }
    this.schedule();
  }

  /** Resolves once nothing is queued or in flight. */
  idle(): Promise<void> {
    if (!this.inFlight && this.head === this.ready.length) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.limit && this.head < this.ready.length) {
      const { key, call } = this.ready[this.head++]!;
      this.inFlight++;
      // A call's own failure is its caller's to handle: the pipeline only goes on.
      void call()
        .catch(() => {})
        .then(() => this.done(key));
    }
    if (this.head === this.ready.length) {
      this.ready = [];
      this.head = 0;
    }
  }

  private done(key: string): void {
    this.inFlight--;
    const next = this.waiting.get(key)!.shift();
    if (next) this.ready.push({ key, call: next });
    else this.waiting.delete(key);
    this.pump();
    if (!this.inFlight && this.head === this.ready.length) for (const r of this.idleWaiters.splice(0)) r();
  }
}
