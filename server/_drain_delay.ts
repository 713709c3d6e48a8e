/**
 * The drain delay: how long a draining server keeps accepting (health path
 * 503, `Connection: close` on every response) so that load balancers stop
 * sending before the listener closes. Fixed, or ending by itself once the
 * balancer has visibly stopped.
 */
import { since } from "../lifecycle/_log.ts";
import { timer } from "../lifecycle/_timer.ts";

/**
 * A drain delay that ends itself: at most `max` ms, and over as soon as
 * the balancer has stopped sending, meaning the health path (if there is
 * one) has answered 503 at least once, and no other request has arrived for
 * `quiet` ms. It does not see a balancer that stops sending without asking
 * the server (a Kubernetes endpoint removal): use a fixed delay there.
 *
 * @example
 * ```ts
 * import { serve } from "@graceful/http";
 *
 * // Behind HAProxy checking /healthz every 500 ms, a drain ends about 0.5 s
 * // after the signal (at most 5 s); here nothing asks, so it lasts `max`.
 * const server = serve({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   onListen() {},
 *   logger: false,
 *   healthPath: "/healthz",
 *   drainDelay: { max: 300, quiet: 200 },
 * }, () => new Response("ok"));
 * const { durationMs } = await server.shutdown();
 * console.assert(durationMs >= 300);
 * ```
 */
export interface SelfEndingDelay {
  /** The longest the delay may last (ms). */
  max: number;
  /**
   * How long (ms) without a new request counts as "stopped". Default 200.
   * @default 200
   */
  quiet?: number;
}

/** The default `quiet` of a self-ending delay (ms). */
export const QUIET_MS = 200;

/** What the delay watches: arrivals, and the health path's first 503. */
export interface Arrivals {
  /** `performance.now()` of the last request (not the health path) seen. */
  readonly lastArrival: number;
  /** Resolves with `performance.now()` of the health path's first 503. */
  readonly healthRefused: Promise<number>;
  /** True when a health path is configured. */
  readonly hasHealthPath: boolean;
}

/** How a self-ending delay ended, for the log line. */
export interface DelayOutcome {
  /** Milliseconds the delay lasted. */
  waited: number;
  /** True if `max` was reached before the balancer was seen to stop. */
  timedOut: boolean;
  /** Ms from the delay's start to the first 503 on the health path. */
  firstRefusal?: number;
  /** Ms from the delay's start to the last request seen (if any). */
  lastRequest?: number;
}

/**
 * Waits out a self-ending delay that started at `start`
 * (`performance.now()`), watching `arrivals`.
 */
export async function waitForQuiet(
  delay: Required<SelfEndingDelay>,
  arrivals: Arrivals,
  start: number,
): Promise<DelayOutcome> {
  const end = start + delay.max;
  let refusedAt: number | undefined;
  arrivals.healthRefused.then((at) => void (refusedAt = at));
  const outcome = (timedOut: boolean): DelayOutcome => ({
    waited: since(start),
    timedOut,
    firstRefusal: refusedAt === undefined
      ? undefined
      : Math.round(refusedAt - start),
    lastRequest: arrivals.lastArrival > start
      ? Math.round(arrivals.lastArrival - start)
      : undefined,
  });
  while (true) {
    const now = performance.now();
    if (now >= end) return outcome(true);
    const seen = !arrivals.hasHealthPath || refusedAt !== undefined;
    const quietAt = Math.max(start, arrivals.lastArrival) + delay.quiet;
    if (seen && now >= quietAt) return outcome(false);
    // Sleep until the quiet period could be over (or the health path's
    // first 503, or the end), then look again. Once it is over but the
    // health path has not been asked yet, only that 503 or the end can end
    // the wait (a timer for a time already past would spin, and warn).
    const until = seen || now < quietAt ? Math.min(end, quietAt) : end;
    const wait = timer(until - now, undefined);
    await (seen
      ? wait.promise
      : Promise.race([wait.promise, arrivals.healthRefused]));
    wait.clear();
  }
}
