/**
 * The drain of one server, step by step (ARCHITECTURE.md lists the steps).
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
 * Under the supervisor, once new connections go elsewhere, the longest time
 * open connections are kept to be told `Connection: close` or closed by
 * their client. Measured with undici (which closes its own after 4 s idle),
 * 20 restarts: a request lost in 3 of 10 rounds at 1 s, none at 5 s.
 */
const SUPERVISED_SETTLE_MS = 5000;
/**
 * The same for a server on its own whose listener is shut (--allow-ffi).
 * Measured, one SIGTERM, 10 rounds: undici lost 8 requests at 200 ms, 0 at
 * 1000 ms (stop 306 ms median, against 240); the others 0 at either.
 */
const ALONE_SETTLE_MS = 1000;
/** How often the settle looks whether the server is quiet (backoff × 1.5). */
const SETTLE_POLL_MS = { first: 5, max: 100 };
/** Time allowed for Deno to flush the 503s and ended streams after a cut. */
const CUT_GRACE_MS = 1000;
/**
 * Longest wait for Deno to accept the connections queued on a listener
 * before it is shut (which resets them: measured, a request lost in about
 * 1 of 50 SIGTERMs under Python's requests).
 */
const ACCEPT_QUEUED_MS = 50;
/** Longest wait for the app's WebSocket closes to finish before `shutdown()`. */
const WEBSOCKET_CLOSE_MS = 1000;

/** What the drain needs from its server. */
export interface DrainHost {
  /** The address, for log lines. */
  readonly where: string;
  readonly traffic: Traffic;
  readonly logger: Logger;
  readonly drainTimeout: number;
  readonly streamsCounted: "events" | "all" | false;
  readonly finished: Promise<void>;
  /** Aborts the drain signal handlers see. */
  abort(reason: string): void;
  /** Takes the listener out of the port's group; returns how many. */
  detach(): number;
  /** True when `detach()` can shut the listener in the kernel. */
  canDetach(): boolean;
  /** Connections in the listener's accept queue (0 if it cannot tell). */
  queued(): number;
  /** Drops new connection attempts on the listener (`--allow-ffi`). */
  dropNew(): void;
  /** Calls Deno's `shutdown()` (once); resolves when it has, never rejects. */
  closeListener(): Promise<void>;
  /** True when every connection is busy or told; `undefined`: cannot tell. */
  quiet(): boolean | undefined;
  /** Whether the supervisor steers new connections away from it now. */
  steered(): boolean;
}

/**
 * A first signal's first step for a server on its own
 * (`DrainerOptions.stopAccepting`): with no delay, nothing to wait for and
 * no way to shut the listener in the kernel, Deno's `shutdown()` is called
 * in the signal's own task, as by hand. Resolves once Deno's tasks have run
 * (a 0 ms timer, ~2.5 ms) or `shutdown()` resolved (idle: ~0.7 ms);
 * `undefined` if it did not close. `dryRun` only looks: the server calls it
 * so once at start, so that V8 compiles this path then, not at the signal
 * (bench/README.md, "The signal's own path").
 */
export function closeEarly(
  host: DrainHost,
  delay: Delay,
  dryRun = false,
): Promise<unknown> | undefined {
  if (!mayCloseEarly(host, delay) || dryRun) return undefined;
  // Deno's shutdown() first: a request that arrives before it takes effect
  // is read; one that arrives after is closed unread.
  const closed = closeListener(host);
  host.traffic.startDraining();
  const turn = timer(0, undefined);
  return Promise.race([closed, turn.promise]).finally(turn.clear);
}

/** True when {@linkcode closeEarly} would close now. No side effect. */
export function mayCloseEarly(host: DrainHost, delay: Delay): boolean {
  return delay.max === 0 && !host.traffic.draining && !host.canDetach() &&
    nothingHolds(host);
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
   * The supervisor's choice: detach the listener after the pre-drain or not
   * (the kernel would reset its queue). `undefined` for a server on its own.
   */
  detach: boolean | undefined,
): Promise<DrainResult> {
  const alone = detach === undefined;
  const start = performance.now();
  const where = host.where;
  host.traffic.startDraining();
  // Alone with no delay and --allow-ffi: the listener is shut in the kernel
  // and open connections settle (below), so a client pool never sends on a
  // connection closing under it (bench/README.md, "real client pools").
  let settleHere = false;
  if (alone && delay.max === 0) {
    const shut = shutAlone(host);
    // No await unless it waits: the drain signal aborts in this task.
    settleHere = shut instanceof Promise ? await shut : shut;
  }
  // Steered: the listener gets nothing new and stays open while it settles.
  const steered = !alone && host.steered();
  // Else, with nothing to wait for, Deno's shutdown() now (or already, by
  // `closeEarly`), as early as Deno.serve by hand.
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
    settleHere = alone && await shutAlone(host);
  }
  // Counted from the delay's end: a delay never eats into requests' time.
  const deadline = timer(host.drainTimeout, "deadline" as const);
  const detached = detach === true && host.detach() > 0;
  const shut = settleHere || detached || steered;
  if (shut && !(settleHere && host.quiet() === true)) {
    // Connections get a moment to deliver their request, or to be told
    // `Connection: close`, before Deno's shutdown() closes idle ones; never
    // more than half the deadline (an idle one must not force the drain).
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
  // A WebSocket closed in an abort listener sends its own close frame
  // before Deno's 1001; without WebSockets no wait (nothing accepted late).
  if (host.traffic.webSockets.mayBeOpen) await timer(0, undefined).promise;
  // Where Deno's shutdown() loses unread bodies, none may be left: at the
  // deadline, what is left is cut (503) first.
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
  const closed = host.closeListener(); // first: it may be a signal's path
  host.traffic.closingListener();
  return closed;
}

/** Waits (bounded) for the app's WebSocket closes; says those left open. */
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

/** Waits (up to the deadline) for unread bodies (`_body_hold.ts`). */
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

/** Resolves once `host` is quiet; never if it cannot tell or `signal` ends. */
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

/**
 * A server alone shuts its listener in the kernel (`--allow-ffi`): new
 * attempts dropped first, then, once Deno has accepted what waits in the
 * accept queue (its accept loop runs between tasks; at most
 * {@linkcode ACCEPT_QUEUED_MS}), shut. Without the drop, connections kept
 * arriving while Deno accepted, and one queued at the shut was reset (Python's
 * `requests`: 4 requests in 300 SIGTERMs). True when it shut one; a promise
 * only when it must wait for the queue.
 */
function shutAlone(host: DrainHost): boolean | Promise<boolean> {
  if (!host.canDetach()) return false;
  host.dropNew();
  if (host.queued() === 0) return host.detach() > 0;
  return (async () => {
    const end = performance.now() + ACCEPT_QUEUED_MS;
    while (host.queued() > 0 && performance.now() < end) {
      await timer(1, undefined).promise;
    }
    return host.detach() > 0;
  })();
}
