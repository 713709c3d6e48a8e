/**
 * Timers as promises that can be cancelled, and the longest delay a timer
 * holds, with the validation of every duration option against it.
 */
import { badOption } from "./_log.ts";

/** A timer as a promise that can be cancelled. */
export interface Timer<T> {
  /** Resolves with the timer's value once the time is up. */
  readonly promise: Promise<T>;
  /** Cancels the timer; the promise then never resolves. */
  clear(): void;
}

// Deno loads its timers on the first setTimeout of a process: 8–14 ms
// measured on 2.9.6. Paid at start (when the stop's signal listeners are
// installed), not at the signal, where it would keep the listener open that
// much longer; a supervised worker holds it until it has reported ready,
// since its restart waits for that report, and `serve()` until `Deno.serve`
// has started: set up before it, Deno 2.9.6's timers made every signal
// reach its listener later while clients were connected (median 2.6 ms
// after `kill` against 0.9, p90 4.2 against 1.3; 24 rounds at 400 req/s).
let warm = false;
let holds = 0;

/** Pays Deno's one-time timer set-up now, unless held. Idempotent. */
export function warmTimers(): void {
  if (warm || holds > 0) return;
  warm = true;
  clearTimeout(setTimeout(() => {}, 0));
}

/** Holds the set-up until the returned function is called (once). */
export function holdTimerWarmUp(): () => void {
  holds++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    holds--;
    warmTimers();
  };
}

/** Resolves with `value` after `ms` milliseconds, unless cleared first. */
export function timer<T>(ms: number, value: T): Timer<T> {
  let id: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<T>((resolve) => {
    id = setTimeout(() => resolve(value), ms);
  });
  return { promise, clear: () => clearTimeout(id) };
}

/** The longest delay a timer can hold: 2³¹ − 1 ms (about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Validates a duration option in milliseconds: a number from 0 to
 * {@linkcode MAX_TIMER_MS} (a longer timer would fire at once). Returns
 * `fallback` when the value is `undefined`.
 */
export function duration(
  name: string,
  value: unknown,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  if (
    typeof value !== "number" || !(value >= 0 && value <= MAX_TIMER_MS)
  ) {
    throw badOption(
      name,
      `a number of milliseconds from 0 to ${MAX_TIMER_MS}`,
      value,
    );
  }
  return value;
}
