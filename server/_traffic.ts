/**
 * The request-level half of a graceful server: wraps the handler, counts
 * what is in flight, says `Connection: close` while draining, answers the
 * probes, and cuts what is left at the deadline.
 */
import { hasOpenEndedBody, isEventStream } from "./_response_body.ts";
import type { Arrivals } from "./_drain_delay.ts";
import { InFlight } from "./_in_flight.ts";
import { Health } from "./_health.ts";
import { type Logger, since } from "../lifecycle/_log.ts";
import {
  errorResponse,
  infoWithSignal,
  pathOf,
  refusal,
  withClose,
  withSignal,
} from "./_responses.ts";
import { BodyHold, mayHaveBody } from "./_body_hold.ts";
import { type OpenStream, Work } from "./_work.ts";
import { OpenStreams } from "./_open_streams.ts";
import { WebSockets } from "./_web_sockets.ts";
import { Announced } from "./_announced.ts";
import type { GracefulHandler } from "./_server_types.ts";

/** Options the traffic wrapper needs from the server. */
export interface TrafficOptions {
  handler: GracefulHandler;
  onError?: (error: unknown) => Response | Promise<Response>;
  healthPath?: string;
  livenessPath?: string;
  /** Which streaming bodies to wrap so the deadline can end them. */
  endStreams: "events" | "all" | false;
  /** True where Deno's `shutdown()` loses unread bodies (`_body_hold.ts`). */
  holdBodies: boolean;
  retryAfter: number | false;
  signal: AbortSignal;
  logger: Logger;
}

/** How long an event stream begun after the drain signal may run. */
const LATE_STREAM_MS = 100;

/** Tracks and wraps the requests of one server. */
export class Traffic implements Arrivals {
  /** Handlers still running. */
  #pending = new InFlight<Work>();
  /** The request whose handler is running synchronously, if any. */
  #calling: Request | undefined = undefined;
  readonly #hold: BodyHold | undefined;
  #streams = new OpenStreams((peer) => this.#finished(peer));
  readonly webSockets: WebSockets = new WebSockets();
  #options: TrafficOptions;
  /** Requests that failed because the drain took their body (should be none). */
  #broken: string[] = [];
  get draining(): boolean {
    return this.#draining;
  }
  #draining = false;
  readonly health: Health;
  /** True when there is a probe path: only then is a request's path read. */
  readonly #probes: boolean;
  /**
   * Starts (`true`) or ends a supervisor's pre-drain: still serving, but
   * every response says `Connection: close` and the health path 503.
   */
  preDrain(on: boolean): void {
    this.#preDraining = on;
    if (!on) this.#announced.clear();
  }
  #preDraining = false;
  /** Peers told `Connection: close` (or a stream's end) while draining. */
  #announced = new Announced();
  /** True once Deno's `shutdown()` was called: bodies may be unreadable. */
  get listenerClosed(): boolean {
    return this.#listenerClosed;
  }
  #listenerClosed = false;
  closingListener(): void {
    this.#listenerClosed = true;
  }
  /** Requests finished while draining; late ones refused (body gone). */
  get counts(): { drained: number; lateRefused: number } {
    return { drained: this.#drained, lateRefused: this.#lateRefused };
  }
  #drained = 0;
  #lateRefused = 0;
  /** `performance.now()` of the last request (not a probe) while draining. */
  get lastArrival(): number {
    return this.#lastArrival;
  }
  #lastArrival = -Infinity;
  #drainStart = 0;

  #info: ProxyHandler<Deno.ServeHandlerInfo<Deno.NetAddr>>;

  constructor(options: TrafficOptions) {
    this.#options = options;
    this.#info = infoWithSignal(options.signal);
    this.health = new Health(options.healthPath, options.livenessPath);
    this.#probes = options.healthPath !== undefined ||
      options.livenessPath !== undefined;
    this.#hold = options.holdBodies ? new BodyHold() : undefined;
  }

  /** Starts the drain (a second call changes nothing). */
  startDraining(): void {
    this.#draining = true;
    this.#drainStart ||= performance.now();
  }
  get healthRefused(): Promise<number> {
    return this.health.refused;
  }
  get hasHealthPath(): boolean {
    return this.health.hasHealthPath;
  }

  /** Requests whose body Deno may still have to deliver (`_body_hold.ts`). */
  get bodiesPending(): number {
    return this.#hold?.holding(this.#running()) ?? 0;
  }

  /** The requests whose handlers are still running. */
  #running(): Request[] {
    const running = this.#pending.toArray().map((work) => work.request);
    const calling = this.#calling;
    if (calling && !running.includes(calling)) running.push(calling);
    return running;
  }

  /** True once no request holds `shutdown()` back; false at `deadline`. */
  bodiesIn(deadline: Promise<unknown>): Promise<boolean> {
    return this.#hold?.released(() => this.#running(), deadline) ??
      Promise.resolve(true);
  }

  get broken(): string[] {
    return this.#broken;
  }

  /** Handlers still running plus streaming bodies still open. */
  get inFlight(): number {
    return this.#pending.size + this.#streams.size;
  }

  /** The peers whose connections cannot carry a request unannounced. */
  announcedPeers(): Set<string> {
    return this.#announced.peers([
      ...this.#pending.toArray().map((work) => work.info?.remoteAddr),
      ...this.#streams.peers(),
    ]);
  }

  /** The wrapped handler to give to `Deno.serve`. */
  handle = (
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Response | Promise<Response> => {
    if (this.#probes) {
      const probe = this.health.answer(
        request,
        this.draining || this.#preDraining,
        this.draining,
        this.#refuse,
      );
      if (probe) return probe;
    }
    // Before the drain, recorded only if its handler has not returned.
    if (!this.draining) return this.#runLight(request, info);
    const work = new Work(request, this.#lastArrival = performance.now());
    if (this.listenerClosed && this.#hold && mayHaveBody(request)) {
      return this.#late(work, info, this.#hold);
    }
    return this.#run(work, info);
  };

  /** Calls the handler; a throw becomes the error response. */
  #call(
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Response | Promise<Response> {
    // A drain the handler starts itself (`server.shutdown()`) sees it.
    this.#calling = request;
    let result: Response | Promise<Response>;
    try {
      result = this.#options.handler(
        request,
        withSignal(info, this.#options.signal, this.#info),
      );
    } catch (error) {
      result = this.#failed(request, error);
    }
    this.#calling = undefined;
    return result;
  }

  /** A request before the drain: no record if the handler answers at once. */
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

  /** A request that arrived while draining: recorded from the start. */
  #run(
    work: Work,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Response | Promise<Response> {
    const request = work.request;
    work.info = info;
    this.#pending.add(work);
    const result = this.#call(request, info);
    if (!(result instanceof Promise)) {
      return this.#settle(work, request, result);
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
   * A request with a body handed over after `shutdown()`: if its body is
   * gone, 503 without calling the handler (the client may retry); else the
   * handler gets it, read whole.
   */
  async #late(
    work: Work,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
    hold: BodyHold,
  ): Promise<Response> {
    const whole = await hold.late(work.request);
    if (!whole) {
      this.#lateRefused++;
      return this.#refusal(work.request, "server shutting down\n");
    }
    return await this.#run(new Work(whole, work.start), info);
  }

  /** At the deadline: 503 to every handler still running, every stream ended. */
  cut(): string[] {
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
  #refuse = (request: Request, text: string) => this.#refusal(request, text);

  /** Takes `work` off the in-flight records. */
  #forget(work: Work) {
    this.#pending.delete(work);
    this.#hold?.changed();
  }

  /** Passes on `res`; `work` is the request's record, if it has one. */
  #settle(
    work: Work | undefined,
    request: Request,
    res: Response,
    info = work?.info,
  ): Response {
    if (work) this.#forget(work);
    if (res.status === 101) this.webSockets.watch(res);
    if (this.draining || this.#preDraining) {
      res = withClose(request, res);
      this.#announced.tell(info?.remoteAddr);
    }
    const ends = this.#options.endStreams;
    // Its unread body may be flowing into this response: the drain waits.
    if (this.#hold && mayHaveBody(request)) {
      this.#hold.answered(request, res, info?.completed);
    }
    // hasOpenEndedBody first: for a static body it never builds `res.headers`.
    const open = ends && hasOpenEndedBody(res);
    const events = open && isEventStream(res);
    if (open && (ends === "all" || events)) {
      // An event stream begun after the drain signal ends soon.
      const late = events && this.#options.signal.aborted;
      res = this.#streams.wrap(
        request,
        work?.start,
        res,
        info?.remoteAddr,
        late ? LATE_STREAM_MS : undefined,
      );
    } else {
      this.#finished();
    }
    return res;
  }

  /**
   * A response or stream is done. A stream ended after the drain signal
   * counts as told (`EventSource` comes back elsewhere).
   */
  #finished(peer?: Deno.NetAddr) {
    if (this.draining) this.#drained++;
    if (this.#options.signal.aborted) this.#announced.tell(peer);
  }

  async #failed(request: Request, error: unknown): Promise<Response> {
    if (this.draining && error instanceof Deno.errors.BadResource) {
      // The drain took something this request still needed: never a clean drain.
      this.#broken.push(
        `${request.method} ${pathOf(request.url)} (${error.message})`,
      );
    }
    return await errorResponse(request, error, this.#options);
  }
}
