/**
 * The implementation of `serve()` (see `server.ts`, which exports it): one
 * graceful server, from `Deno.serve` to the end of its drain.
 */
import {
  describe,
  type Logger,
  resolveLogger,
  since,
} from "../lifecycle/_log.ts";
import { type Delay, drainOptions } from "./_options.ts";
import { checkRuntime } from "../lifecycle/_deno_check.ts";
import { bodiesGuardable } from "./_body_guard.ts";
import { detachListeners } from "../supervisor/_detach.ts";
import { type SelfEndingDelay, waitForQuiet } from "./_drain_delay.ts";
export type { SelfEndingDelay } from "./_drain_delay.ts";
import { steerAway, unsteer } from "../supervisor/_steer.ts";
import { supervisor } from "../supervisor/_supervised.ts";
import { timer } from "../lifecycle/_timer.ts";
import {
  type GracefulHandler,
  type GracefulHandlerInfo,
  Traffic,
} from "./_traffic.ts";
import {
  type DrainContext,
  type Hook,
  type HookOptions,
  Shutdown,
  type ShutdownOptions,
} from "../shutdown.ts";

export type { GracefulHandler, GracefulHandlerInfo, Logger };

/**
 * Options for {@linkcode serve}: every `Deno.serve` TCP option, plus the
 * drain settings. `signal` is a *graceful* trigger here: aborting it drains
 * the server (Deno's own `signal` option would cut in-flight requests).
 */
export interface ServeOptions
  extends Omit<Deno.ServeTcpOptions, "signal" | "handler">, ShutdownOptions {
  /** Aborting it starts a graceful drain of this server (no hooks, no exit). */
  signal?: AbortSignal;
  /**
   * Deadline for the drain, in ms, counted from the end of `drainDelay`
   * (from the signal when there is none). Default 10 000; at most
   * 2 147 483 647 (what a timer holds). When it expires, handlers still
   * running are answered 503 with `Connection: close`, open streaming
   * bodies are ended, request bodies still arriving are cut, and the process
   * exits with {@linkcode ExitCode.DeadlineExceeded}.
   */
  drainTimeout?: number;
  /**
   * Keep accepting for this long (ms) after the drain starts, with the
   * health path at 503 and `Connection: close` on every response, before
   * closing the listener, so load balancers stop sending first. Default 0.
   * `drainTimeout` starts after it.
   *
   * `{ max, quiet }` ends the delay by itself once the balancer has
   * visibly stopped: the health path has answered 503 at least once (when
   * there is one) and no other request arrived for `quiet` ms (default
   * 200), or at `max`. It suits balancers that probe the health path
   * (HAProxy, Envoy); it does not know about balancers that stop sending
   * without asking the server (a Kubernetes endpoint removal): use a fixed
   * delay there, since a quiet moment under light traffic would end it too
   * early.
   */
  drainDelay?: number | SelfEndingDelay;
  /**
   * `Retry-After` (whole seconds, 0 to 86 400) on the 503s this server
   * writes while draining: the health path, requests cut at the deadline,
   * late requests whose body was gone. Default 1; `false` for none.
   */
  retryAfter?: number | false;
  /**
   * The time (ms) the platform gives the process between its stop signal
   * and SIGKILL (Kubernetes' `terminationGracePeriodSeconds`, systemd's
   * `TimeoutStopSec`). If given, one line warns at start when `drainDelay`
   * (its `max`) + `drainTimeout` + `hooksTimeout` exceeds it. Nothing is
   * shortened to fit.
   */
  gracePeriod?: number;
  /**
   * Bytes of request bodies that the drain may read ahead into memory, over
   * all requests of this server. Default 128 MiB. Deno 2.9's `shutdown()`
   * makes unread bodies unreadable, so the server reads them before it
   * calls it; a body beyond this budget is left for the handler to read at
   * its own pace, and the listener stays open (answering with
   * `Connection: close`) until it has been.
   */
  bodyBufferLimit?: number;
  /** A path answered 200 `ok` while serving and 503 while draining. */
  healthPath?: string;
  /**
   * Which streaming bodies (of unknown length, not backed by a Deno
   * resource) the deadline ends cleanly, as a complete chunked response.
   * Default `"events"`: event streams only (`text/event-stream`,
   * `application/x-ndjson`, `application/jsonl`, `application/json-seq`,
   * `multipart/x-mixed-replace`), where an end between two messages is a
   * clean end. Other streams are handed to Deno untouched (no per-chunk
   * cost) and cut by the exit at the deadline, so a client never takes a
   * truncated download for a whole one. `true`: every JS stream (the
   * default before this option took `"events"`). `false`: none.
   */
  endStreamsAtDeadline?: boolean | "events";
  /**
   * The process lifecycle to join. Default: a new {@linkcode Shutdown} built
   * from this object's `signals`, `hooksTimeout`, `exit` and `logger`, with
   * its signal listeners installed. Share one `Shutdown` between several
   * servers in one process. `false`: no signal handling at all; call
   * `server.shutdown()` yourself.
   */
  shutdown?: Shutdown | false;
}

/** How one server's drain went. */
export interface DrainResult {
  /** Why the drain started. */
  reason: string;
  /** Milliseconds from the start of the drain to `finished`. */
  durationMs: number;
  /** Requests and streams that completed during the drain. */
  drained: number;
  /**
   * Requests answered 503, streams ended and bodies cut at the deadline,
   * and any request whose handler failed because the drain took something
   * it still needed (none is expected: each one is a bug to report).
   */
  cut: string[];
  /** True if the deadline expired. */
  forced: boolean;
}

/** A running server, as returned by {@linkcode serve}. */
export interface GracefulServer extends AsyncDisposable {
  /** The address the server listens on (the real port when given 0). */
  readonly addr: Deno.NetAddr;
  /** Resolves when the server has stopped and every response is written. */
  readonly finished: Promise<void>;
  /** True from the start of the drain. */
  readonly draining: boolean;
  /** Handlers running plus streaming bodies open. */
  readonly inFlight: number;
  /**
   * Aborts when draining starts. Handlers also get it as `info.signal`: use
   * it to end SSE streams and close WebSockets with a last message.
   */
  readonly signal: AbortSignal;
  /** The process lifecycle this server joined, if any. */
  readonly lifecycle: Shutdown | undefined;
  /**
   * Drains this server only: stops accepting (after `drainDelay`), waits
   * for in-flight requests up to `drainTimeout`, then cuts the rest. Does
   * not run hooks and does not exit. Idempotent.
   */
  shutdown(reason?: string): Promise<DrainResult>;
  /**
   * Registers a cleanup hook on the process lifecycle (see
   * {@linkcode Shutdown.onShutdown}). Throws if the server has none.
   */
  onShutdown(fn: Hook, options?: HookOptions): () => void;
  /** Keeps the process alive while the server runs (the default). */
  ref(): void;
  /** Lets the process exit even though the server still runs. */
  unref(): void;
}

type Args =
  | [GracefulHandler]
  | [ServeOptions, GracefulHandler]
  | [ServeOptions & { handler: GracefulHandler }];

/** After detaching the listener, time for accepted connections to send a request. */
const DETACH_SETTLE_MS = 200;

/**
 * Deno's own `serve`, taken when this module loads: the `auto` preload
 * replaces `Deno.serve` with a function that calls `serve()` from here.
 */
const denoServe = Deno.serve;

/** Time allowed for Deno to flush the 503s and ended streams after a cut. */
const CUT_GRACE_MS = 1000;

/** An address for log lines: `host:port`, or the path of a Unix socket. */
function describeAddr(addr: Deno.Addr): string {
  if ("path" in addr) return addr.path;
  if ("cid" in addr) return `vsock:${addr.cid}:${addr.port}`;
  return `${addr.hostname}:${addr.port}`;
}

function parseArgs(args: Args): [ServeOptions, GracefulHandler] {
  const [first, second] = args;
  if (typeof first === "function") return [{}, first];
  if (first === null || typeof first !== "object") {
    throw new TypeError(
      `serve: expected options or a handler, got ${describe(first)}`,
    );
  }
  const handler = second ?? (first as { handler?: GracefulHandler }).handler;
  if (typeof handler !== "function") {
    throw new TypeError(
      `handler: expected a function, got ${describe(handler)}`,
    );
  }
  return [first, handler];
}

/**
 * Serves HTTP like `Deno.serve`, with a graceful stop on SIGINT/SIGTERM.
 *
 * While draining: the listener closes (new connections are refused), idle
 * keep-alive connections are closed, in-flight requests finish and their
 * responses carry `Connection: close`, WebSockets get Deno's 1001 close.
 * At `drainTimeout`: pending handlers get 503, open streams are ended, the
 * process exits with code 124. Then hooks run and the process exits 0 (or 1
 * if a hook failed). A second signal exits at once with 128 + its number.
 *
 * It does not: end streams or WebSockets before the deadline by itself (use
 * `info.signal`), retry anything for clients, or cover servers started with
 * `Deno.serve` directly or by `deno serve`.
 *
 * @example A graceful hello server
 * ```ts
 * import { serve } from "@graceful/http";
 *
 * const server = serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   () => new Response("hello"),
 * );
 * const res = await fetch(`http://127.0.0.1:${server.addr.port}/`);
 * console.log(await res.text()); // "hello"
 * await server.shutdown();
 * ```
 */
export function serve(handler: GracefulHandler): GracefulServer;
/**
 * Serves with options, like `Deno.serve(options, handler)`.
 *
 * @example
 * ```ts
 * import { serve } from "@graceful/http";
 *
 * const server = serve(
 *   { hostname: "127.0.0.1", port: 0, drainTimeout: 5000, onListen() {} },
 *   () => new Response("hello"),
 * );
 * await server.shutdown();
 * ```
 */
export function serve(
  options: ServeOptions,
  handler: GracefulHandler,
): GracefulServer;
/**
 * Serves with the handler inside the options, like `Deno.serve({ handler })`.
 *
 * @example
 * ```ts
 * import { serve } from "@graceful/http";
 *
 * const server = serve({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   onListen() {},
 *   handler: () => new Response("hello"),
 * });
 * await server.shutdown();
 * ```
 */
export function serve(
  options: ServeOptions & { handler: GracefulHandler },
): GracefulServer;
export function serve(...args: Args): GracefulServer {
  const [options, handler] = parseArgs(args);
  return new Server(options, handler);
}

class Server implements GracefulServer {
  #drainTimeout: number;
  /** Which streams are tracked (the others are not counted in flight). */
  #streamsCounted: "events" | "all" | false;
  #drainDelay: Delay;
  #logger: Logger;
  #controller = new AbortController();
  #traffic: Traffic;
  #http: Deno.HttpServer<Deno.NetAddr>;
  #result: Promise<DrainResult> | undefined;
  #ownsLifecycle: boolean;
  #detached = false;
  #closed = Promise.withResolvers<void>();
  #finished: Promise<void>;
  readonly lifecycle: Shutdown | undefined;

  constructor(options: ServeOptions, handler: GracefulHandler) {
    const {
      drainTimeout,
      drainDelay,
      healthPath,
      endStreams,
      bodyBufferLimit,
      retryAfter,
      gracePeriod,
    } = drainOptions(options);
    this.#drainTimeout = drainTimeout;
    this.#streamsCounted = endStreams;
    this.#drainDelay = drainDelay;
    const {
      shutdown,
      signals,
      hooksTimeout,
      exit,
      logger,
      drainTimeout: _t,
      drainDelay: _d,
      healthPath: _h,
      endStreamsAtDeadline: _e,
      bodyBufferLimit: _b,
      retryAfter: _r,
      gracePeriod: _g,
      signal,
      ...denoOptions
    } = options;
    if (
      shutdown !== undefined && shutdown !== false &&
      !(shutdown instanceof Shutdown)
    ) {
      throw new TypeError(
        `shutdown: expected a Shutdown or false, got ${describe(shutdown)}`,
      );
    }
    this.#ownsLifecycle = shutdown === undefined;
    this.lifecycle = shutdown === false
      ? undefined
      : shutdown ?? new Shutdown({ signals, hooksTimeout, exit, logger });
    this.#logger = this.lifecycle?.logger ?? resolveLogger(logger);
    checkRuntime(this.#logger);
    if (gracePeriod !== undefined) {
      const hooks = this.lifecycle?.hooksTimeout ?? 0;
      const total = drainDelay.max + drainTimeout + hooks;
      if (total > gracePeriod) {
        this.#logger.warn(
          `drainDelay ${drainDelay.max} + drainTimeout ${drainTimeout} + hooksTimeout ${hooks} = ${total} ms exceeds the grace period of ${gracePeriod} ms: the platform may kill the process before the drain and its hooks end`,
        );
      }
    }
    this.#traffic = new Traffic({
      handler,
      onError: options.onError,
      healthPath,
      endStreams,
      bodyBuffer: bodiesGuardable ? bodyBufferLimit : false,
      retryAfter,
      signal: this.#controller.signal,
      logger: this.#logger,
    });
    const link = supervisor(this.#logger);
    if (link && Deno.build.os === "linux") {
      (denoOptions as Deno.ServeTcpOptions).reusePort = true;
    }
    // Listen for signals before listening for requests: once `onListen` has
    // announced the port, a signal must already find its listener.
    this.lifecycle?.listen();
    try {
      this.#http = denoServe(
        denoOptions as Deno.ServeTcpOptions,
        this.#traffic.handle,
      );
    } catch (error) {
      if (this.#ownsLifecycle) this.lifecycle?.[Symbol.dispose]();
      const where = `${options.hostname ?? "0.0.0.0"}:${options.port ?? 8000}`;
      if (error instanceof Deno.errors.AddrInUse) {
        throw new Deno.errors.AddrInUse(
          `cannot listen on ${where}: address already in use`,
          { cause: error },
        );
      }
      // Other errors (a host name that does not resolve, no permission) get
      // the address in front, keeping their class.
      if (error instanceof Error && !error.message.includes(where)) {
        error.message = `cannot listen on ${where}: ${error.message}`;
      }
      throw error;
    }
    // A detached listener makes Deno's accept loop fail (EINVAL), which
    // rejects `finished` early: once this server has detached it, that is
    // the expected end, and the server is done when shutdown() resolves.
    this.#finished = this.#http.finished.catch(async (error) => {
      if (!this.#detached) throw error;
      await this.#closed.promise;
    });
    this.lifecycle?.addDrainer((context) => this.#drain(context));
    link?.ready({
      drain: (context) =>
        this.lifecycle
          ? this.lifecycle.start(context.reason, context)
          : this.#drain(context),
      preDrain: (on) => {
        this.#traffic.preDraining = on;
        this.#logger.info(
          on
            ? `pre-drain on ${
              describeAddr(this.addr)
            }: Connection: close on every response`
            : `pre-drain on ${
              describeAddr(this.addr)
            } ended: serving as before`,
        );
      },
      steer: (away) => this.#steer(away),
    });
    // An already aborted signal drains at once, as a later abort would.
    if (signal?.aborted) queueMicrotask(() => this.shutdown("signal aborted"));
    else {
      signal?.addEventListener("abort", () => this.shutdown("signal aborted"), {
        once: true,
      });
    }
  }

  get addr(): Deno.NetAddr {
    return this.#http.addr;
  }
  get finished(): Promise<void> {
    return this.#finished;
  }
  get draining(): boolean {
    return this.#traffic.draining;
  }
  get inFlight(): number {
    return this.#traffic.inFlight;
  }
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  shutdown(reason = "shutdown() called"): Promise<DrainResult> {
    const result = this.#drain({ reason });
    if (this.#ownsLifecycle && !this.lifecycle?.started) {
      result.finally(() => this.lifecycle?.[Symbol.dispose]());
    }
    return result;
  }

  onShutdown(fn: Hook, options?: HookOptions): () => void {
    if (!this.lifecycle) {
      throw new TypeError(
        "onShutdown: this server was created with shutdown: false",
      );
    }
    return this.lifecycle.onShutdown(fn, options);
  }

  ref(): void {
    this.#http.ref();
  }
  unref(): void {
    this.#http.unref();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown("disposed");
  }

  #drain(context: DrainContext): Promise<DrainResult> {
    this.#result ??= this.#runDrain(
      context.reason,
      context.drainDelay === undefined
        ? this.#drainDelay
        : { max: context.drainDelay, quiet: undefined },
      context.detachListener ?? false,
    );
    return this.#result;
  }

  /** The drain delay, fixed or self-ending; one line says how it ended. */
  async #delay(delay: Delay, announce: (extra: string) => void) {
    if (delay.quiet === undefined) {
      announce(`, still accepting for ${delay.max} ms`);
      await timer(delay.max, undefined).promise;
      return;
    }
    const start = performance.now();
    announce(
      `, still accepting until the balancer stops sending (${
        this.#traffic.hasHealthPath ? "health path answered 503, then " : ""
      }${delay.quiet} ms without a request; at most ${delay.max} ms)`,
    );
    const end = await waitForQuiet(
      { max: delay.max, quiet: delay.quiet },
      this.#traffic,
      start,
    );
    const seen = [
      end.firstRefusal === undefined
        ? (this.#traffic.hasHealthPath ? "health path never asked" : "")
        : `health path first answered 503 at +${end.firstRefusal} ms`,
      end.lastRequest === undefined
        ? "no request during the delay"
        : `last request at +${end.lastRequest} ms`,
    ].filter(Boolean).join(", ");
    this.#logger.info(
      end.timedOut
        ? `drain delay reached its max of ${delay.max} ms (${seen})`
        : `balancer stopped sending after ${end.waited} ms (${seen})`,
    );
  }

  /** Whether steering failed once already (said once, then quiet). */
  #steerFailed = false;

  /** See {@linkcode DrainTarget.steer}: one line says what happened. */
  #steer(away: { exclude: number; count: number } | undefined) {
    const where = describeAddr(this.addr);
    const failed = away
      ? steerAway(this.addr, away.exclude, away.count)
      : unsteer(this.addr);
    if (failed === undefined) {
      this.#logger.info(
        away
          ? `steering new connections on ${where} to the other ${
            away.count - 1
          } listener(s) of the port (this one is ${away.exclude} of ${away.count})`
          : `steering on ${where} ended: the kernel spreads new connections again`,
      );
    } else if (away && !this.#steerFailed) {
      this.#steerFailed = true;
      this.#logger.warn(
        `cannot steer new connections away from ${where}: ${failed}; with tcp_migrate_req=0 the connections queued here when it closes are reset`,
      );
    }
  }

  async #runDrain(
    reason: string,
    delay: Delay,
    detach: boolean,
  ): Promise<DrainResult> {
    const start = performance.now();
    const where = describeAddr(this.addr);
    this.#traffic.startDraining();
    this.#controller.abort(reason);
    const announce = (extra: string) =>
      this.#logger.info(
        `draining ${where} (${reason}): ${this.inFlight} in flight${
          this.#streamsCounted === false
            ? " (streams not counted: endStreamsAtDeadline is false)"
            : ""
        }, deadline ${this.#drainTimeout} ms${extra}`,
      );
    if (delay.max > 0) await this.#delay(delay, announce);
    // The deadline counts from the end of the delay: a delay (or a
    // supervisor's pre-drain) never eats into the time requests have.
    const deadline = timer(this.#drainTimeout, "deadline" as const);
    if (detach && detachListeners(this.addr) > 0) {
      this.#detached = true;
      // The listener left the port's group: connections it accepted get a
      // moment to deliver their request before Deno's drain closes idle ones.
      this.#logger.info(
        `detached the listener on ${where}: new connections go elsewhere`,
      );
      const settle = timer(DETACH_SETTLE_MS, undefined);
      await Promise.race([settle.promise, deadline.promise]);
      settle.clear();
    }
    // One macrotask for handlers to act on the signal: a WebSocket closed in
    // an abort listener sends its own close frame before Deno's 1001.
    await timer(0, undefined).promise;
    // Then no body may still be arriving: this resumes in the microtask
    // where the last one came in, and shutdown() follows in the same one.
    await this.#bodiesIn(where, deadline.promise);
    // The deadline came first: cut what has not arrived before shutdown()
    // takes it away, so the handler's read names the deadline.
    if (this.#traffic.bodiesPending > 0) {
      this.#traffic.cutBodies(this.#drainTimeout);
    }
    this.#traffic.listenerClosed = true;
    this.#http.shutdown().then(this.#closed.resolve, this.#closed.reject);
    if (delay.max > 0) {
      this.#logger.info(
        `stopped accepting on ${where}: ${this.inFlight} in flight`,
      );
    } else {
      announce("");
    }
    let cut: string[] = [];
    const forced = await Promise.race([this.#finished, deadline.promise]) ===
      "deadline";
    deadline.clear();
    if (forced) {
      cut = this.#traffic.cut(this.#drainTimeout);
      this.#logger.warn(
        `deadline of ${this.#drainTimeout} ms reached on ${where}: cut ${cut.length} request(s)` +
          cut.map((line) => `\n  ${line}`).join(""),
      );
      const grace = timer(CUT_GRACE_MS, false);
      const flushed = await Promise.race([
        this.#finished.then(() => true),
        grace.promise,
      ]);
      grace.clear();
      if (!flushed) {
        this.#logger.error(
          `${where} still had open responses ${CUT_GRACE_MS} ms after the cut; giving up on them`,
        );
      }
    }
    this.#traffic.retire();
    const broken = this.#traffic.broken;
    if (broken.length > 0) {
      this.#logger.error(
        `${broken.length} request(s) on ${where} failed because the drain took what they still needed (a bug: please report it)` +
          broken.map((line) => `\n  ${line}`).join(""),
      );
    }
    const result: DrainResult = {
      reason,
      durationMs: since(start),
      drained: this.#traffic.drained,
      cut: [...cut, ...broken],
      forced: forced || broken.length > 0,
    };
    const late = this.#traffic.lateRefused;
    this.#logger.info(
      `drained ${where} in ${result.durationMs} ms: ${result.drained} request(s) completed` +
        (forced ? `, ${cut.length} cut at the deadline` : "") +
        (late > 0
          ? `, ${late} refused with 503 (sent on a kept-alive connection as the listener closed; handler not called)`
          : "") +
        (broken.length > 0 ? `, ${broken.length} broken by the drain` : ""),
    );
    return result;
  }

  /**
   * Waits (up to the deadline) until no request body is still arriving:
   * Deno's `shutdown()` would make them unreadable. The listener stays open
   * meanwhile; what it accepts is answered with `Connection: close`.
   */
  async #bodiesIn(where: string, deadline: Promise<unknown>): Promise<void> {
    const pending = this.#traffic.bodiesPending;
    if (pending === 0) return;
    const start = performance.now();
    this.#logger.info(
      `waiting for ${pending} request bod${
        pending === 1 ? "y" : "ies"
      } to arrive before closing ${where} (still accepting, with Connection: close)`,
    );
    const arrived = await Promise.race([
      this.#traffic.bodiesIn().then(() => true),
      deadline.then(() => false),
    ]);
    if (this.#traffic.budget.exceeded) {
      this.#logger.warn(
        `request bodies in flight exceeded bodyBufferLimit: the rest were read at the handlers' pace`,
      );
    }
    if (arrived) {
      this.#logger.info(`request bodies in after ${since(start)} ms`);
    }
    // Requests that came in while waiting may have bodies of their own.
    if (arrived && this.#traffic.bodiesPending > 0) {
      await this.#bodiesIn(where, deadline);
    }
  }
}
