/**
 * The drain of one server, step by step: Deno's `shutdown()` at a first
 * signal when nothing must come first (`closeEarly`), abort the drain
 * signal, the drain delay (fixed or self-ending), the listener's detach
 * under the supervisor, the wait for request bodies not yet read (where Deno
 * loses them), Deno's `shutdown()`, the wait for in-flight requests up to
 * `drainTimeout`, the cut at the deadline, and the lines that report it.
 * The server (`_server.ts`) owns the state; this only sequences it.
 */
import { type Logger, since } from "../lifecycle/_log.ts";
import { timer } from "../lifecycle/_timer.ts";
import { recordDrain } from "../lifecycle/_telemetry.ts";
import type { Delay } from "./_options.ts";
import { waitForQuiet } from "./_drain_delay.ts";
import type { DrainResult } from "./_server_types.ts";
import type { Traffic } from "./_traffic.ts";

/**
 * Under the supervisor, once new connections go elsewhere (steered or
 * detached), the longest time open connections are kept for each to be
 * told `Connection: close` or closed by its client (it ends sooner once the
 * server is quiet). Closing an idle kept-alive connection races the
 * client's next request on it; undici closes its own 4 s after its last
 * response. Measured, 20 restarts with Node's fetch at 150 GET + 150 POST/s:
 * a request lost in 3 of 10 rounds when idle ones were closed at the
 * pre-drain's 1 s, none in 10 rounds kept up to 5 s.
 */
const SUPERVISED_SETTLE_MS = 5000;
/**
 * For a server on its own (--allow-ffi), the longest time open connections
 * are kept after the listener is shut, for each to be told `Connection:
 * close` (it ends sooner once all were). Measured, one SIGTERM, 10 rounds:
 * undici lost 8 requests with 200 ms and 0 with 1000 ms (the stop then took
 * 306 ms median, against 240); the other clients lost 0 with either.
 */
const ALONE_SETTLE_MS = 1000;
/**
 * How often the settle looks whether the server is quiet: first after
 * 5 ms, each wait 1.5 times the last, at most 100 ms apart.
 */
const SETTLE_POLL_MS = { first: 5, max: 100 };

/** Time allowed for Deno to flush the 503s and ended streams after a cut. */
const CUT_GRACE_MS = 1000;
/**
 * Longest wait for the WebSockets the app is closing to finish their
 * closing handshake before `shutdown()` (never past the deadline): a
 * client's close reply takes a round trip.
 */
const WEBSOCKET_CLOSE_MS = 1000;

/** What the drain needs from its server. */
export interface DrainHost {
  /** The address, for log lines. */
  readonly where: string;
  readonly traffic: Traffic;
  readonly logger: Logger;
  readonly drainTimeout: number;
  /** Which streams are counted in flight. */
  readonly streamsCounted: "events" | "all" | false;
  /** The server's `finished`. */
  readonly finished: Promise<void>;
  /** Aborts the drain signal handlers see. */
  abort(reason: string): void;
  /** Takes the listener out of the port's group; returns how many. */
  detach(): number;
  /** True when `detach()` can shut the listener in the kernel. */
  canDetach(): boolean;
  /**
   * Calls Deno's `shutdown()` (once); resolves when it has (never
   * rejects).
   */
  closeListener(): Promise<void>;
  /**
   * True when every accepted connection is busy with a request or was told
   * `Connection: close`; `undefined` if it cannot tell (`_census.ts`).
   */
  quiet(): boolean | undefined;
  /** Whether the supervisor steers new connections away from it now. */
  steered(): boolean;
}

/**
 * A first signal's first step for a server on its own
 * (`DrainerOptions.stopAccepting`): with no delay, nothing to wait for
 * before Deno's `shutdown()` and no way to shut the listener in the kernel,
 * the drain begins and `shutdown()` is called now, in the signal's own
 * task, as a handler that calls it on the signal does. If it was, resolves
 * once Deno has closed the idle connections (its own tasks run after this
 * one: a 0 ms timer, ~2.5 ms on Deno 2.9.6), or once `shutdown()` has
 * resolved if sooner (idle: ~0.7 ms); `undefined` if not.
 */
export function closeEarly(
  host: DrainHost,
  delay: Delay,
): Promise<unknown> | undefined {
  if (
    delay.max > 0 || host.traffic.draining || host.canDetach() ||
    !nothingHolds(host)
  ) return undefined;
  host.traffic.startDraining();
  const turn = timer(0, undefined);
  return Promise.race([closeListener(host), turn.promise]).finally(turn.clear);
}

/** True when nothing must happen before Deno's `shutdown()`. */
function nothingHolds(host: DrainHost): boolean {
  return host.traffic.bodiesPending === 0 &&
    !host.traffic.webSockets.mayBeOpen;
}

export async function runDrain(
  host: DrainHost,
  reason: string,
  delay: Delay,
  /**
   * The supervisor's choice: take the listener out of the port's group
   * after the pre-drain (true) or not (false; the kernel would reset its
   * queue). `undefined` for a server on its own, which shuts its listener
   * where it can (--allow-ffi) and settles (see below).
   */
  detach: boolean | undefined,
): Promise<DrainResult> {
  const alone = detach === undefined;
  const start = performance.now();
  const where = host.where;
  host.traffic.startDraining();
  // No delay asked for and no supervisor: stop accepting now. With
  // --allow-ffi the listener is shut in the kernel and the open connections
  // stay, each closed once told `Connection: close` (the settle below, at
  // most ALONE_SETTLE_MS): a client pool never sends on a connection closing
  // under it (measured, one SIGTERM, 10 rounds: 0 failed for undici, Node's
  // http.Agent, Python's requests and Go's net/http; Deno.serve by hand up to
  // 14 per SIGTERM: bench/README.md).
  let settleHere = alone && delay.max === 0 && host.detach() > 0;
  // Steered by the supervisor: the listener gets nothing new, so it stays
  // open while its connections settle (below).
  const steered = !alone && host.steered();
  // Without it, nothing to wait for before Deno's shutdown() (no body
  // arriving, no WebSocket): the listener closes now, before the handlers'
  // abort listeners run, as early as Deno.serve by hand does.
  // Closed already by `closeEarly`, or closed now.
  const closed = host.traffic.listenerClosed;
  const closeNow = closed ||
    (delay.max === 0 && !detach && !settleHere && !steered &&
      nothingHolds(host));
  if (closeNow && !closed) closeListener(host);
  host.abort(reason);
  const announce = (extra: string) =>
    host.logger.info(
      `draining ${where} (${reason}): ${host.traffic.inFlight} in flight${
        host.streamsCounted === false
          ? " (streams not counted: endStreamsAtDeadline is false)"
          : ""
      }, deadline ${host.drainTimeout} ms${extra}`,
    );
  if (delay.max > 0) {
    await waitDelay(host, delay, announce);
    // The same at the delay's end: what it accepted is answered, not cut.
    settleHere = alone && host.detach() > 0;
  }
  // The deadline counts from the end of the delay: a delay (or a
  // supervisor's pre-drain) never eats into the time requests have.
  const deadline = timer(host.drainTimeout, "deadline" as const);
  const detached = detach === true && host.detach() > 0;
  const shut = settleHere || detached || steered;
  // Alone and quiet already (no connection open, or all told): nothing to
  // wait for, nothing to say.
  if (shut && !(settleHere && host.quiet() === true)) {
    // The listener is shut (or gets nothing new): connections it accepted
    // get a moment to deliver their request, and kept-alive ones to be told
    // `Connection: close` or closed by their client, before Deno's drain
    // closes idle ones.
    // Never more than half the deadline: idle connections must not make a
    // drain with nothing in flight count as forced.
    const bound = Math.min(
      settleHere ? ALONE_SETTLE_MS : SUPERVISED_SETTLE_MS,
      host.drainTimeout / 2,
    );
    host.logger.info(
      settleHere
        ? `stopped accepting on ${where}: open connections close once told Connection: close (at most ${bound} ms)`
        : `${
          detached ? "detached the listener" : "steered away"
        } on ${where}: new connections go elsewhere; open ones close once told Connection: close or closed by their client (at most ${bound} ms)`,
    );
    const settle = timer(bound, undefined);
    const looking = new AbortController();
    await Promise.race([
      settle.promise,
      deadline.promise,
      quiet(host, looking.signal),
    ]);
    looking.abort();
    settle.clear();
  }
  // One macrotask for handlers to act on the signal: a WebSocket closed in
  // an abort listener sends its own close frame before Deno's 1001. Without
  // WebSockets none: the listener closes in the signal's own task, so
  // nothing is accepted after the signal that Deno's shutdown() would cut
  // (measured: first refused connect 25 ms after SIGTERM with this wait and
  // a cold timer, 3 ms for Deno.serve by hand).
  if (host.traffic.webSockets.mayBeOpen) await timer(0, undefined).promise;
  // Where Deno's shutdown() takes unread bodies away, none may be left
  // (_body_hold.ts). At the deadline, what is left is cut (503) before
  // shutdown() fails its reads.
  let cut = await bodiesIn(host, where, deadline.promise, !shut)
    ? []
    : host.traffic.cut();
  if (host.traffic.webSockets.closing > 0) {
    await webSocketsClosed(host, where, deadline.promise);
  }
  if (!closeNow) closeListener(host);
  if (delay.max > 0) {
    host.logger.info(
      `stopped accepting on ${where}: ${host.traffic.inFlight} in flight`,
    );
  } else {
    announce("");
  }
  const forced = await Promise.race([host.finished, deadline.promise]) ===
    "deadline";
  deadline.clear();
  if (forced) {
    cut = [...cut, ...host.traffic.cut()];
    host.logger.warn(
      `deadline of ${host.drainTimeout} ms reached on ${where}: cut ${cut.length} request(s)` +
        cut.map((line) => `\n  ${line}`).join(""),
    );
    const grace = timer(CUT_GRACE_MS, false);
    const flushed = await Promise.race([
      host.finished.then(() => true),
      grace.promise,
    ]);
    grace.clear();
    if (!flushed) {
      host.logger.error(
        `${where} still had open responses ${CUT_GRACE_MS} ms after the cut; giving up on them`,
      );
    }
  }
  const broken = host.traffic.broken;
  if (broken.length > 0) {
    host.logger.error(
      `${broken.length} request(s) on ${where} failed because the drain took what they still needed (a bug: please report it)` +
        broken.map((line) => `\n  ${line}`).join(""),
    );
  }
  const result: DrainResult = {
    reason,
    durationMs: since(start),
    drained: host.traffic.counts.drained,
    cut,
    broken,
    forced,
  };
  recordDrain(start, where, result);
  const late = host.traffic.counts.lateRefused;
  host.logger.info(
    `drained ${where} in ${result.durationMs} ms: ${result.drained} request(s) completed` +
      (forced ? `, ${cut.length} cut at the deadline` : "") +
      (late > 0
        ? `, ${late} refused with 503 (sent on a kept-alive connection as the listener closed; handler not called)`
        : "") +
      (broken.length > 0 ? `, ${broken.length} broken by the drain` : ""),
  );
  return result;
}

/** Deno's `shutdown()`: the listener closes, idle connections too. */
function closeListener(host: DrainHost): Promise<void> {
  host.traffic.closingListener();
  return host.closeListener();
}

/**
 * Waits (up to 1 s, never past the deadline) for the WebSockets the app
 * is closing to finish their closing handshake: Deno's `shutdown()` would
 * close them again with 1001. One line counts those that did not.
 */
async function webSocketsClosed(
  host: DrainHost,
  where: string,
  deadline: Promise<unknown>,
): Promise<void> {
  const sockets = host.traffic.webSockets;
  const grace = timer(WEBSOCKET_CLOSE_MS, undefined);
  await Promise.race([sockets.settled(), grace.promise, deadline]);
  grace.clear();
  if (sockets.closing > 0) {
    host.logger.warn(
      `${sockets.closing} WebSocket(s) on ${where} had not finished their closing handshake within ${WEBSOCKET_CLOSE_MS} ms (or by the deadline); Deno's shutdown() closes them`,
    );
  }
}

/** The drain delay, fixed or self-ending; one line says how it ended. */
export async function waitDelay(
  host: DrainHost,
  delay: Delay,
  announce: (extra: string) => void,
): Promise<void> {
  if (delay.quiet === undefined) {
    announce(`, still accepting for ${delay.max} ms`);
    await timer(delay.max, undefined).promise;
    return;
  }
  const start = performance.now();
  announce(
    `, still accepting until the balancer stops sending (${
      host.traffic.hasHealthPath ? "health path answered 503, then " : ""
    }${delay.quiet} ms without a request; at most ${delay.max} ms)`,
  );
  const end = await waitForQuiet(
    { max: delay.max, quiet: delay.quiet },
    host.traffic,
    start,
  );
  const seen = [
    end.firstRefusal === undefined
      ? (host.traffic.hasHealthPath ? "health path never asked" : "")
      : `health path first answered 503 at +${end.firstRefusal} ms`,
    end.lastRequest === undefined
      ? "no request during the delay"
      : `last request at +${end.lastRequest} ms`,
  ].filter(Boolean).join(", ");
  host.logger.info(
    end.timedOut
      ? `drain delay reached its max of ${delay.max} ms (${seen})`
      : `balancer stopped sending after ${end.waited} ms (${seen})`,
  );
}

/**
 * Waits (up to the deadline) until no request holds Deno's `shutdown()`
 * back: where it loses unread bodies, a request whose body is not read yet
 * (`_body_hold.ts`). The listener stays open meanwhile (unless shut with
 * --allow-ffi); what it accepts is answered with `Connection: close`.
 */
async function bodiesIn(
  host: DrainHost,
  where: string,
  deadline: Promise<unknown>,
  accepting: boolean,
): Promise<boolean> {
  const pending = host.traffic.bodiesPending;
  if (pending === 0) return true;
  const start = performance.now();
  host.logger.info(
    `waiting for ${pending} request bod${
      pending === 1 ? "y" : "ies"
    } to be read before closing ${where}${
      accepting ? " (still accepting, with Connection: close)" : ""
    }`,
  );
  const read = await host.traffic.bodiesIn(deadline);
  if (read) host.logger.info(`request bodies read after ${since(start)} ms`);
  return read;
}

/**
 * Resolves once `host` is quiet (looked at every few ms); never if it
 * cannot tell, or until `signal` (the caller bounds the wait).
 */
async function quiet(host: DrainHost, signal: AbortSignal): Promise<void> {
  for (let wait = SETTLE_POLL_MS.first; !signal.aborted;) {
    const now = host.quiet();
    if (now === undefined) break;
    if (now) return;
    await timer(wait, undefined).promise;
    wait = Math.min(wait * 1.5, SETTLE_POLL_MS.max);
  }
  return new Promise(() => {});
}
