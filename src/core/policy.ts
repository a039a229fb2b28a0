/**
 * Per-tenant protection policies, pure and clock-driven so they test without waiting:
 * storm control (a token bucket on flooded frames) and MAC-move dampening (a MAC that
 * flaps between places faster than a threshold is pinned where it was and reported).
 */

/** A token bucket: `rate` tokens a second, at most `burst` saved up. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  /** Frames refused since creation. */
  exceeded = 0;

  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Take one token at time `now` (ms); false (and counted) when the bucket is empty. */
  take(now: number): boolean {
    const elapsed = Math.max(0, now - this.last) / 1000;
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + elapsed * this.rate);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    this.exceeded++;
    return false;
  }
}

export interface DampeningOptions {
  /** Moves of one MAC within `windowMs` that make it flap. */
  maxMoves: number;
  windowMs: number;
  /** How long a flapping MAC stays pinned (moves refused). */
  holdMs: number;
}

export const DEFAULT_DAMPENING: DampeningOptions = { maxMoves: 5, windowMs: 10_000, holdMs: 60_000 };

/**
 * Tracks moves per MAC. `allowMove` says whether a move may happen now; once a MAC has
 * moved `maxMoves` times within `windowMs` it is pinned for `holdMs`.
 */
export class MoveDampener {
  private readonly moves = new Map<string, number[]>();
  private readonly pinnedUntil = new Map<string, number>();
  /** Moves refused because the MAC was pinned. */
  suppressed = 0;
  /** Memory stays bounded: MACs whose moves all left the window, and ended pins, are forgotten on a sweep (once a window, or when the table doubled). */
  private sweepAt = 1024;
  private sweptAt = 0;

  constructor(readonly opts: DampeningOptions = DEFAULT_DAMPENING) {}

  /** Returns 'ok' to let the move happen, 'pinned' if it is refused; 'flapping' the first time a MAC gets pinned. */
  allowMove(mac: string, now: number): 'ok' | 'flapping' | 'pinned' {
    const until = this.pinnedUntil.get(mac);
    if (until !== undefined) {
      if (now < until) {
        this.suppressed++;
        return 'pinned';
      }
      this.pinnedUntil.delete(mac);
      this.moves.delete(mac);
    }
    const recent = (this.moves.get(mac) ?? []).filter((t) => now - t < this.opts.windowMs);
    recent.push(now);
    if (recent.length > this.opts.maxMoves) {
      this.moves.delete(mac);
      this.pinnedUntil.set(mac, now + this.opts.holdMs);
      this.suppressed++;
      return 'flapping';
    }
    this.moves.set(mac, recent);
    if (this.moves.size >= this.sweepAt || now - this.sweptAt > this.opts.windowMs) this.sweep(now);
    return 'ok';
  }

  /** MACs tracked now (moving or pinned). */
  get size(): number {
    return this.moves.size + this.pinnedUntil.size;
  }

  private sweep(now: number): void {
    for (const [m, times] of this.moves) if (now - times[times.length - 1]! >= this.opts.windowMs) this.moves.delete(m);
    for (const [m, until] of this.pinnedUntil) if (now >= until) this.pinnedUntil.delete(m);
    this.sweepAt = Math.max(1024, this.moves.size * 2);
    this.sweptAt = now;
  }

  isPinned(mac: string, now: number): boolean {
    const until = this.pinnedUntil.get(mac);
    return until !== undefined && now < until;
  }

  /** MACs pinned now. */
  pinned(now: number): string[] {
    return [...this.pinnedUntil].filter(([, u]) => now < u).map(([m]) => m);
  }

  /** Forget a MAC (its entry was removed). */
  forget(mac: string): void {
    this.moves.delete(mac);
    this.pinnedUntil.delete(mac);
  }
}
