/**
 * The request bodies one server's drain waits for before Deno's
 * `shutdown()`: those still arriving (each behind its guard) and those
 * flowing into a response (an echo of Deno's own stream). It does not read
 * them: the guards do (`_body_guard.ts`).
 */
import type { BodyGuard } from "./_body_guard.ts";

/** The bodies still arriving, and who waits for them to be in. */
export class BodyWait {
  /** Request bodies Deno still has to deliver. */
  #guards = new Set<BodyGuard>();
  /**
   * Requests answered whose body stream (Deno's own, taken before the
   * drain) may still be in use: echoed into the response, copied natively.
   * Each counts until its response is complete. A count, not a set: a
   * reference to each request kept until its response ends (in a set, or
   * in a callback made for it) cost ~8 % of a 4 KiB echo (see `Work`).
   */
  #echoes = 0;
  /** One callback for every echo's end (made once per server). */
  #echoEnded = () => {
    this.#echoes--;
    this.#wake();
  };
  /** Waiting for both to reach none (every caller of empty()). */
  #waiting: (() => void)[] = [];

  /** Bodies still arriving, plus echoes still flowing. */
  get pending(): number {
    return this.#guards.size + this.#echoes;
  }

  /** Waits for `guard`'s body (once; a settled one is not waited for). */
  add(guard: BodyGuard): void {
    if (this.#guards.has(guard) || guard.done) return;
    this.#guards.add(guard);
    guard.settled.then(() => {
      this.#guards.delete(guard);
      this.#wake();
    });
  }

  /** Counts an echo until `completed` (its response's end) settles. */
  echo(completed: Promise<void>): void {
    this.#echoes++;
    completed.then(this.#echoEnded, this.#echoEnded);
  }

  /** Resolves when nothing is pending (bodies added meanwhile included). */
  empty(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => void this.#waiting.push(resolve));
  }

  /** Fails every body still arriving with `BodyCutError` (see the guard). */
  cut(drainTimeout: number): void {
    for (const guard of this.#guards) guard.cut(drainTimeout);
  }

  #wake() {
    // (An echo's end calls this: no array is made when nobody waits.)
    if (this.#waiting.length === 0 || this.pending > 0) return;
    for (const resolve of this.#waiting.splice(0)) resolve();
  }
}
