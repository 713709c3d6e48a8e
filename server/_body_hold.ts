/**
 * WORKAROUND for one Deno bug, fenced in this file: delete it, and the
 * lines that name `BodyHold` in `_traffic.ts` and `_drain.ts`, the day
 * Deno ships the fix.
 *
 * Deno 2.9.6's `server.shutdown()` makes the body of every request in
 * flight unreadable at once (`BadResource: Cannot read body as underlying
 * resource unavailable`, denoland/deno#36809; fix proposed in
 * denoland/deno#36825; 2.0.6 to 2.9.5 keep bodies). Where the running Deno
 * loses them ({@linkcode shutdownLosesBodies}), the drain holds Deno's
 * `shutdown()` back until no request is left whose body Deno may still
 * have to deliver:
 *
 * - a request whose handler is still running, unless its body is read to
 *   the end (or it has none);
 * - a request already answered with a streaming body while its own body
 *   was unread (an echo: `new Response(req.body)`), until that response is
 *   complete.
 *
 * Meanwhile the listener stays open unless it was shut in the kernel
 * (`--allow-ffi`); what it accepts is served with `Connection: close`. A
 * request Deno hands over after `shutdown()` (sent on a kept-alive
 * connection as the listener closed) has its body read first; if it is
 * gone, it is answered 503 without calling the handler, so the client may
 * retry it.
 *
 * It does not: read any body ahead, touch `Request.prototype`, or make a
 * body arrive faster. A handler that has not read its body keeps the
 * listener open until it returns, bounded by `drainTimeout`; at the
 * deadline the handler is answered 503 and its read fails with Deno's own
 * `BadResource`.
 */
import {
  innerBody,
  shutdownLosesBodies,
  streamState,
} from "../lifecycle/_deno.ts";
import { timer } from "../lifecycle/_timer.ts";

/** True where this Deno's `shutdown()` takes unread bodies away. */
export const bodiesNeedHold: boolean = shutdownLosesBodies();

/** How often the wait looks at body streams (no event tells their end). */
const POLL_MS = 5;

/**
 * True when the request may have a body: anything but GET and HEAD (Deno
 * gives those none). Headers are not read: that costs ~10 % of a small
 * request on the hot path.
 */
export function mayHaveBody(request: Request): boolean {
  const method = request.method;
  return method !== "GET" && method !== "HEAD";
}

/** True once Deno has nothing more to deliver of `request`'s body. */
function bodyDone(request: Request): boolean {
  const body = request.body;
  if (body === null) return true;
  const state = streamState(body);
  return state === "closed" || state === "errored";
}

/**
 * True when `res` has a body of unknown length (any stream), as Deno's
 * response record says (false where it has none: `_deno.ts`).
 */
function isStream(res: Response): boolean {
  const inner = innerBody(res);
  return inner !== undefined && inner.length === null && inner.source == null;
}

/** What holds one server's `shutdown()` back. */
export class BodyHold {
  /** Echoes still flowing (a count: see `Work` on per-request closures). */
  #echoes = 0;
  /** Woken when a request leaves or an echo ends. */
  #changed = Promise.withResolvers<void>();
  #echoEnded = () => {
    this.#echoes--;
    this.changed();
  };

  /**
   * Counts `res` until `completed` if it may be an echo of `request`'s
   * unread body (a stream, Deno's own or not).
   */
  answered(
    request: Request,
    res: Response,
    completed: Promise<void> | undefined,
  ): void {
    if (!completed || !mayHaveBody(request)) return;
    if (!isStream(res) || bodyDone(request)) return;
    this.#echoes++;
    completed.then(this.#echoEnded, this.#echoEnded);
  }

  /** A request left the in-flight list. */
  changed(): void {
    this.#changed.resolve();
    this.#changed = Promise.withResolvers();
  }

  /**
   * How many of `running` (requests whose handlers still run), and of the
   * echoes, still hold `shutdown()`.
   */
  holding(running: readonly Request[]): number {
    let held = this.#echoes;
    for (const request of running) {
      if (mayHaveBody(request) && !bodyDone(request)) held++;
    }
    return held;
  }

  /**
   * Resolves true once nothing holds `shutdown()` (requests that arrive
   * meanwhile included), false at `deadline`.
   */
  async released(
    running: () => readonly Request[],
    deadline: Promise<unknown>,
  ): Promise<boolean> {
    let over = false;
    deadline.then(() => over = true);
    while (this.holding(running()) > 0) {
      const poll = timer(POLL_MS, undefined);
      await Promise.race([this.#changed.promise, deadline, poll.promise]);
      poll.clear();
      if (over) return false;
    }
    return true;
  }

  /**
   * A request with a body handed over after `shutdown()`: its body, read
   * whole into a request of its own, or `undefined` if Deno took it.
   */
  async late(request: Request): Promise<Request | undefined> {
    try {
      const body = await request.bytes();
      return new Request(request.url, {
        method: request.method,
        headers: request.headers,
        body: body.byteLength > 0 ? body : null,
      });
    } catch {
      return undefined;
    }
  }
}
