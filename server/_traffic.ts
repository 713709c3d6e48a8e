/**
 * The request-level half of a graceful server: it wraps the user's handler,
 * counts what is in flight, marks responses `Connection: close` while
 * draining, answers the health path, and at the deadline cuts what is left.
 * It owns the in-flight registry; the server owns the lifecycle.
 */
import { hasOpenEndedBody, isEventStream } from "./_response_body.ts";
import type { Arrivals } from "./_drain_delay.ts";
import { InFlight } from "./_in_flight.ts";
import { type Logger, since } from "../lifecycle/_log.ts";
import {
  infoWithSignal,
  pathOf,
  refusal,
  withClose,
  withSignal,
} from "./_responses.ts";
import {
  type BodyGuard,
  type BodySlot,
  type GuardOwner,
  guardSlot,
  streamOpen,
} from "./_body_guard.ts";
import { BodyWait } from "./_body_wait.ts";
import { type OpenStream, Work } from "./_work.ts";
import { OpenStreams } from "./_open_streams.ts";
import { WebSockets } from "./_web_sockets.ts";
import { keyOf } from "../supervisor/_census.ts";
import { Budget } from "./_read_ahead.ts";
import {
  enterSlot,
  leaveSlot,
  mayHaveBody,
  register,
  unregister,
} from "./_request_body.ts";

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

/** Options the traffic wrapper needs from the server. */
export interface TrafficOptions {
  handler: GracefulHandler;
  onError?: (error: unknown) => Response | Promise<Response>;
  healthPath?: string;
  /** Which streaming bodies to wrap so the deadline can end them. */
  endStreams: "events" | "all" | false;
  /**
   * Bytes of request bodies the drain may read ahead into memory, or `false`
   * where Deno's `shutdown()` keeps bodies readable (no guard at all).
   */
  bodyBuffer: number | false;
  /** Seconds for `Retry-After` on the 503s written here, or `false`. */
  retryAfter: number | false;
  signal: AbortSignal;
  logger: Logger;
}

/** Tracks and wraps the requests of one server. */
export class Traffic implements GuardOwner, Arrivals {
  /** Handlers still running. */
  #pending = new InFlight<Work>();
  /** The same, by request, for those that may have a body (guards look them up). */
  #withBody = new Map<Request, Work>();
  /** The request bodies the drain waits for. */
  readonly #bodies: BodyWait;
  /** Streaming responses the deadline can end. */
  #streams = new OpenStreams(() => this.#finished());
  /** WebSockets upgraded here, until their closing handshake is done. */
  readonly webSockets: WebSockets = new WebSockets();
  #options: TrafficOptions;
  /** The read-ahead budget (unused where bodies need no guard). */
  readonly budget!: Budget;
  #guarded: boolean;
  /** Requests that failed because the drain took their body (should be none). */
  #broken: string[] = [];
  /** True from the moment the server starts draining. */
  draining = false;
  /**
   * True during a supervisor's pre-drain: still serving, but every response
   * says `Connection: close` and the health path 503 (like `drainDelay`).
   */
  get preDraining(): boolean {
    return this.#preDraining;
  }
  set preDraining(on: boolean) {
    this.#preDraining = on;
    if (!on) this.#told.clear();
  }
  #preDraining = false;
  /**
   * Peers told `Connection: close` while draining or pre-draining: Deno
   * keeps such a connection open until the client closes it, but no
   * request may follow on it.
   */
  #told = new Set<string>();
  /**
   * Set just before Deno's `shutdown()`: from then on, a body that Deno
   * hands over may already be unreadable (denoland/deno#36809).
   */
  listenerClosed = false;
  /** Late requests answered 503 because their body was already gone. */
  lateRefused = 0;
  /** Requests (or streams) that finished after draining started. */
  drained = 0;
  /**
   * `performance.now()` of the last request other than the health path
   * since the drain started (only the drain needs it).
   */
  lastArrival = -Infinity;
  /** `performance.now()` when the drain started. */
  #drainStart = 0;
  #healthRefused = Promise.withResolvers<number>();
  #refusedOnce = false;
  readonly hasHealthPath: boolean;

  #info: ProxyHandler<Deno.ServeHandlerInfo<Deno.NetAddr>>;

  constructor(options: TrafficOptions) {
    this.#options = options;
    this.#info = infoWithSignal(options.signal);
    this.hasHealthPath = options.healthPath !== undefined;
    this.#guarded = options.bodyBuffer !== false;
    this.budget = new Budget(options.bodyBuffer || 0);
    this.#bodies = new BodyWait();
    if (this.#guarded) register(this);
  }

  /**
   * Starts the drain: every request in flight that may have a body gets a
   * guard; a read under way is waited for, an unread body is read ahead.
   */
  startDraining(): void {
    this.draining = true;
    this.#drainStart = performance.now();
    if (!this.#guarded) return;
    for (const work of this.#pending.toArray()) {
      if (!work.guard && !mayHaveBody(work.request)) continue;
      const guard = guardSlot(this, work);
      if (guard.done) continue;
      this.track(guard);
      guard.readAhead();
    }
  }

  /** The listener is closed and nothing is in flight: no more guards. */
  retire(): void {
    unregister(this);
  }

  /** See {@linkcode GuardOwner.slotOf}. */
  slotOf(request: Request): BodySlot | undefined {
    return this.#withBody.get(request);
  }

  /** Resolves with the time of the health path's first 503. */
  get healthRefused(): Promise<number> {
    return this.#healthRefused.promise;
  }

  /** Request bodies still arriving (or still flowing into a response). */
  get bodiesPending(): number {
    return this.#bodies.pending;
  }

  /** Resolves when no request body is still arriving (new ones included). */
  bodiesIn(): Promise<void> {
    return this.#bodies.empty();
  }

  /** Requests whose handler failed because the drain took its body away. */
  get broken(): string[] {
    return this.#broken;
  }

  /** Handlers still running plus streaming bodies still open. */
  get inFlight(): number {
    return this.#pending.size + this.#streams.size;
  }

  /**
   * The peers (`peerKey` in `_census.ts`) of the connections that cannot carry a
   * request unannounced: busy with one (a handler still running or a
   * stream still open: their responses say `Connection: close` once
   * draining or pre-draining), or already told `Connection: close`.
   */
  announcedPeers(): Set<string> {
    const busy = new Set<string>(this.#told);
    for (const work of this.#pending.toArray()) {
      const key = work.info && keyOf(work.info.remoteAddr);
      if (key) busy.add(key);
    }
    for (const peer of this.#streams.peers()) {
      const key = keyOf(peer);
      if (key) busy.add(key);
    }
    return busy;
  }

  /** The wrapped handler to give to `Deno.serve`. */
  handle = (
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Response | Promise<Response> => {
    const { healthPath } = this.#options;
    if (healthPath !== undefined && pathOf(request.url) === healthPath) {
      if (!this.draining && !this.preDraining) {
        return new Response("ok\n", {
          headers: { "content-type": "text/plain" },
        });
      }
      if (!this.#refusedOnce) {
        this.#refusedOnce = true;
        this.#healthRefused.resolve(performance.now());
      }
      return this.#refusal(request, "draining\n");
    }
    if (!this.draining) {
      // Before the drain a request carries nothing more (see
      // _request_body.ts); one without a body is recorded only if its
      // handler is still running when it returns.
      return this.#guarded && mayHaveBody(request)
        ? this.#run(new Work(request), info, true)
        : this.#runLight(request, info);
    }
    const work = new Work(request, this.lastArrival = performance.now());
    const body = this.#guarded && mayHaveBody(request);
    // During the drain, a body is read ahead from the start.
    if (body) {
      const guard = guardSlot(this, work);
      if (!guard.done) {
        this.track(guard);
        guard.readAhead();
      }
      if (this.listenerClosed) return this.#late(work, info, guard);
    }
    return this.#run(work, info, body);
  };

  /** Calls the handler; a throw becomes the error response. */
  #call(
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Response | Promise<Response> {
    try {
      return this.#options.handler(
        request,
        withSignal(info, this.#options.signal, this.#info),
      );
    } catch (error) {
      return this.#failed(request, error);
    }
  }

  /**
   * A request without a body to guard, before the drain: the handler runs
   * first; a response it returns at once is passed on with no record at
   * all (nothing can start the drain in between, short of the handler
   * itself calling `shutdown()`, which then counts it once it is awaited).
   */
  #runLight(
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Response | Promise<Response> {
    const result = this.#call(request, info);
    if (!(result instanceof Promise)) {
      return this.#settle(undefined, request, result, info);
    }
    const work = new Work(request);
    work.info = info;
    this.#pending.add(work);
    return this.#wait(work, result);
  }

  /** `body`: the request may have a body this server guards. */
  #run(
    work: Work,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
    body: boolean,
  ): Response | Promise<Response> {
    const request = work.request;
    work.info = info;
    this.#pending.add(work);
    // While the handler runs synchronously, a body read it starts finds
    // its record without a table (see enterSlot).
    const outer = body ? enterSlot(this, work) : undefined;
    let result: Response | Promise<Response>;
    try {
      result = this.#call(request, info);
    } finally {
      if (body) leaveSlot(outer);
    }
    if (!(result instanceof Promise)) {
      return this.#settle(work, request, result);
    }
    if (body && !work.read && !work.guard && !work.stream) {
      // The handler awaits something before touching its body: later reads
      // look it up by request.
      this.#withBody.set(request, work);
      work.keyed = true;
    }
    return this.#wait(work, result);
  }

  /** Passes on the response of a handler still running, or 503 at the deadline. */
  #wait(work: Work, result: Promise<Response>): Promise<Response> {
    const request = work.request;
    const { promise, resolve } = Promise.withResolvers<Response>();
    work.resolve = resolve;
    result.then(
      (res) => {
        if (work.listed) resolve(this.#settle(work, request, res));
      },
      (error) => {
        if (!work.listed) return;
        resolve(
          this.#failed(request, error).then((res) =>
            this.#settle(work, request, res)
          ),
        );
      },
    );
    return promise;
  }

  /**
   * A request Deno handed over after `shutdown()` (it was on a kept-alive
   * connection as the listener closed). Its body may already be gone: read
   * it first; if it is, answer 503 without calling the handler (no side
   * effect, so the client may retry), else serve it as usual.
   */
  async #late(
    work: Work,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
    guard: BodyGuard,
  ): Promise<Response> {
    await guard.settled;
    if (guard.failed) {
      this.lateRefused++;
      guard.release();
      return this.#refusal(work.request, "server shutting down\n");
    }
    return await this.#run(work, info, true);
  }

  /** Waits for this body before `shutdown()` (see {@linkcode GuardOwner}). */
  track(guard: BodyGuard): void {
    this.#bodies.add(guard);
  }

  /**
   * Fails the reads of request bodies that have not arrived (the deadline
   * expired while waiting for them) with `BodyCutError`. Called before the
   * listener closes: Deno's `shutdown()` would otherwise fail them first,
   * with its own `BadResource`. Idempotent.
   */
  cutBodies(drainTimeout: number): void {
    this.#bodies.cut(drainTimeout);
  }

  /**
   * At the deadline: answers 503 to every handler still running, ends every
   * open stream and fails the reads of bodies that have not arrived (naming
   * the deadline). Returns one description per cut request.
   */
  cut(drainTimeout: number): string[] {
    this.cutBodies(drainTimeout);
    const cut: string[] = [];
    const report = (work: Work | OpenStream, what: string) =>
      cut.push(
        `${work.request.method} ${pathOf(work.request.url)} (${
          work.start === undefined
            ? `over ${since(this.#drainStart)}`
            : since(work.start)
        } ms old, ${what})`,
      );
    for (const work of this.#pending.toArray()) {
      report(work, "no response yet");
      this.#forget(work);
      work.resolve?.(this.#refusal(work.request, "server shutting down\n"));
    }
    for (const stream of this.#streams.endAll()) report(stream, "stream ended");
    return cut;
  }

  #refusal(request: Request, text: string): Response {
    return refusal(request, text, this.#options.retryAfter);
  }

  /** Takes `work` off the in-flight records. */
  #forget(work: Work) {
    this.#pending.delete(work);
    if (work.keyed) {
      this.#withBody.delete(work.request);
      work.keyed = false;
    }
  }

  /** Passes on `res`; `work` is the request's record, if it has one. */
  #settle(
    work: Work | undefined,
    request: Request,
    res: Response,
    info = work?.info,
  ): Response {
    if (work) {
      this.#forget(work);
      if (work.stream && !work.guard && streamOpen(work.stream)) {
        // Its body may be flowing into this response: the drain must wait.
        this.#bodies.echo(work.info!.completed);
      }
      work.guard?.release();
    }
    if (res.status === 101) this.webSockets.watch(res);
    if (this.draining || this.#preDraining) {
      res = withClose(request, res);
      const key = info && keyOf(info.remoteAddr);
      if (key) this.#told.add(key);
    }
    const ends = this.#options.endStreams;
    // hasOpenEndedBody first: it reads Deno's internal record and, for the
    // common static body, never touches `res.headers` (which Deno builds on
    // first access).
    if (
      ends && hasOpenEndedBody(res) && (ends === "all" || isEventStream(res))
    ) {
      res = this.#streams.wrap(request, work?.start, res, info?.remoteAddr);
    } else {
      this.#finished();
    }
    return res;
  }

  #finished() {
    if (this.draining) this.drained++;
  }

  async #failed(request: Request, error: unknown): Promise<Response> {
    if (this.draining && error instanceof Deno.errors.BadResource) {
      // The drain took something this request still needed: never a clean drain.
      this.#broken.push(
        `${request.method} ${pathOf(request.url)} (${error.message})`,
      );
    }
    if (this.#options.onError) {
      try {
        return await this.#options.onError(error);
      } catch (again) {
        error = again;
      }
    }
    this.#options.logger.error(
      `handler failed for ${request.method} ${pathOf(request.url)}: ${
        error instanceof Error ? (error.stack ?? error.message) : String(error)
      }`,
    );
    return new Response("Internal Server Error\n", { status: 500 });
  }
}
