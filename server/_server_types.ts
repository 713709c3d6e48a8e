/**
 * The public types of `serve()`: its options, the server it returns, and the
 * result of a drain.
 */
import type { SelfEndingDelay } from "./_drain_delay.ts";
import type {
  Hook,
  HookOptions,
  Shutdown,
  ShutdownOptions,
} from "../shutdown.ts";

/** What a handler receives besides the request. */
export interface GracefulHandlerInfo
  extends Deno.ServeHandlerInfo<Deno.NetAddr> {
  /** Aborts when the server starts draining: end streams and sockets. */
  signal: AbortSignal;
}

/** A web-standard handler, as for `Deno.serve`, with a drain `signal`. */
export type GracefulHandler = (
  request: Request,
  info: GracefulHandlerInfo,
) => Response | Promise<Response>;

/**
 * Options for {@linkcode serve}: every `Deno.serve` TCP option, plus the
 * drain settings. `signal` is a *graceful* trigger here: aborting it drains
 * the server (Deno's own `signal` option would cut in-flight requests).
 */
export interface ServeOptions
  extends Omit<Deno.ServeTcpOptions, "signal" | "handler">, ShutdownOptions {
  /**
   * Aborting it starts a graceful drain of this server, as `shutdown()`
   * does (hooks of its own lifecycle run; the process does not exit).
   * @default undefined
   */
  signal?: AbortSignal;
  /**
   * Deadline for the drain, in ms, counted from the end of `drainDelay`
   * (from the signal when there is none). Default 10 000; at most
   * 2 147 483 647 (what a timer holds). When it expires, handlers still
   * running are answered 503 with `Connection: close`, open streaming
   * bodies are ended, request bodies still arriving are cut, and the process
   * exits with {@linkcode ExitCode.DeadlineExceeded}.
   * @default 10000
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
   * @default 0
   */
  drainDelay?: number | SelfEndingDelay;
  /**
   * `Retry-After` (whole seconds, 0 to 86 400) on the 503s this server
   * writes while draining: the health path, requests cut at the deadline,
   * late requests whose body was gone. Default 1; `false` for none.
   * @default 1
   */
  retryAfter?: number | false;
  /**
   * The time (ms) the platform gives the process between its stop signal
   * and SIGKILL (Kubernetes' `terminationGracePeriodSeconds`, systemd's
   * `TimeoutStopSec`). If given, one line warns at start when `drainDelay`
   * (its `max`) + `drainTimeout` + `hooksTimeout` exceeds it. Nothing is
   * shortened to fit.
   * @default undefined
   */
  gracePeriod?: number;
  /**
   * A path answered 200 `ok` while serving and ready, 503 `not ready` while
   * the app is not (`readyWhen`, `setReady`), 503 `draining` while
   * draining: point readiness probes and balancers' health checks here.
   * @default undefined
   */
  healthPath?: string;
  /**
   * A path answered 200 `alive` while the process lives, draining included
   * (a liveness probe that never restarts a draining pod). Not the health
   * path. Default none.
   * @default undefined
   */
  livenessPath?: string;
  /**
   * Work the app must finish before it takes traffic (a cache warm-up,
   * migrations): the health path answers 503 `not ready` until it
   * resolves, and under the supervisor the worker reports ready only then
   * (so a restart hands over, or rolls back at `--ready-timeout`, on it).
   * If it rejects, one line says why and the server stays not ready. It
   * does not hold requests back: the listener serves whoever comes.
   * @default undefined
   */
  readyWhen?: PromiseLike<unknown>;
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
   * @default "events"
   */
  endStreamsAtDeadline?: boolean | "events";
  /**
   * The process lifecycle to join. Default: a new {@linkcode Shutdown} built
   * from this object's `signals`, `hooksTimeout`, `exit` and `logger`, with
   * its signal listeners installed. Share one `Shutdown` between several
   * servers in one process. `false`: no signal handling at all; call
   * `server.shutdown()` yourself. Beside either, `signals`, `hooksTimeout`
   * and `exit` throw a `TypeError` (they would be dropped), and so does
   * `logger` beside a `Shutdown` (the server logs through its logger).
   * @default a new `Shutdown` of this object's `signals`, `hooksTimeout`, `exit`, `logger`, `drainOnCrash`
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
  /** Requests answered 503 and streams ended at the deadline. */
  cut: string[];
  /**
   * Requests whose handler failed because the drain took something they
   * still needed (none is expected: each one is a bug to report; the exit
   * code is `ExitCode.DrainFailed`).
   */
  broken: string[];
  /** True if the deadline expired (the exit code is 124). */
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
  /**
   * True while the app is ready (see `readyWhen`). The health path answers
   * 503 `not ready` while it is false.
   */
  readonly ready: boolean;
  /**
   * Marks the app ready or not at run time (a dependency down, back up):
   * the health path follows. Requests are served either way.
   *
   * @example
   * ```ts
   * import { serve } from "@graceful/http";
   *
   * const server = serve(
   *   { hostname: "127.0.0.1", port: 0, healthPath: "/healthz", onListen() {} },
   *   () => new Response("hello"),
   * );
   * server.setReady(false); // the database went away: /healthz answers 503
   * server.setReady(true);
   * await server.shutdown();
   * ```
   */
  setReady(ready: boolean): void;
  /** The process lifecycle this server joined, if any. */
  readonly lifecycle: Shutdown | undefined;
  /**
   * Drains this server: stops accepting (after `drainDelay`), waits for
   * in-flight requests up to `drainTimeout`, then cuts the rest. With the
   * server's own lifecycle (no `shutdown` option), the hooks registered
   * with {@linkcode GracefulServer.onShutdown} then run, as Go's
   * `Server.Shutdown` runs its `RegisterOnShutdown` functions; so they do
   * for `await using` and the `signal` option. It never exits the process.
   * With a shared `Shutdown` it drains this server only: the hooks belong
   * to the `Shutdown` and run when it starts. Idempotent.
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
