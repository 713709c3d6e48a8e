/**
 * The delay before a crashed worker's slot is filled again: it starts at
 * `initial`, doubles with each crash of that slot up to 30 s, and starts
 * over once a worker there has lived `stableAfter` ms.
 */

/** The longest delay between two replacements of one slot. */
export const MAX_BACKOFF = 30_000;

/** Crash backoff, per worker slot. */
export class Backoff {
  #next = new Map<number, number>();
  constructor(readonly initial: number, readonly stableAfter: number) {}

  /** The delay for slot `index`, whose worker ran `uptime` ms. */
  next(index: number, uptime: number): number {
    let delay = this.#next.get(index) ?? this.initial;
    if (uptime >= this.stableAfter) delay = this.initial;
    this.#next.set(index, Math.min(delay * 2, MAX_BACKOFF));
    return delay;
  }
}
