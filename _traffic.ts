/**
 * The request-level half of a graceful server: it wraps the user's handler,
 * counts what is in flight, marks responses `Connection: close` while
 * draining, answers the health path, and at the deadline cuts what is left.
 * It owns the in-flight registry; the server owns the lifecycle.
 */
import { endable, hasOpenEndedBody } from "./_body.ts";
import { type Logger, since } from "./_log.ts";

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

interface Work {
  readonly request: Request;
  readonly start: number;
  /** Answers for the handler (pending handlers) or ends the body (streams). */
  cut?: () => void;
}

/** Options the traffic wrapper needs from the server. */
export interface TrafficOptions {
  handler: GracefulHandler;
  onError?: (error: unknown) => Response | Promise<Response>;
  healthPath?: string;
  /** Wrap streaming bodies so the deadline can end them. */
  endStreams: boolean;
  signal: AbortSignal;
  logger: Logger;
}

/** True if the client asked to close: Deno then adds `Connection: close` itself. */
const clientCloses = (request: Request) =>
  request.headers.get("connection")?.toLowerCase().includes("close") ?? false;

const closing = (request: Request, status: number, text: string) =>
  new Response(text, {
    status,
    headers: clientCloses(request)
      ? { "content-type": "text/plain" }
      : { "connection": "close", "content-type": "text/plain" },
  });

/** Sets `Connection: close`, copying the response if its headers are frozen. */
function withClose(request: Request, res: Response): Response {
  if (res.status === 101 || clientCloses(request)) return res;
  try {
    res.headers.set("connection", "close");
    return res;
  } catch {
    const headers = new Headers(res.headers);
    headers.set("connection", "close");
    return new Response(res.body, {
      status: res.status,
      statusText: res.statusText,
      headers,
    });
  }
}

function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const query = url.indexOf("?", start);
  return url.slice(start, query < 0 ? undefined : query);
}

/** Tracks and wraps the requests of one server. */
export class Traffic {
  #pending = new Set<Work>();
  #streams = new Set<Work>();
  #options: TrafficOptions;
  /** True from the moment the server starts draining. */
  draining = false;
  /** Requests (or streams) that finished after draining started. */
  drained = 0;

  constructor(options: TrafficOptions) {
    this.#options = options;
  }

  /** Handlers still running plus streaming bodies still open. */
  get inFlight(): number {
    return this.#pending.size + this.#streams.size;
  }

  /** The wrapped handler to give to `Deno.serve`. */
  handle = (
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Response | Promise<Response> => {
    const { healthPath } = this.#options;
    if (healthPath !== undefined && pathOf(request.url) === healthPath) {
      return this.draining
        ? closing(request, 503, "draining\n")
        : new Response("ok\n", { headers: { "content-type": "text/plain" } });
    }
    const work: Work = { request, start: performance.now() };
    this.#pending.add(work);
    (info as GracefulHandlerInfo).signal = this.#options.signal;
    let result: Response | Promise<Response>;
    try {
      result = this.#options.handler(request, info as GracefulHandlerInfo);
    } catch (error) {
      result = this.#failed(request, error);
    }
    if (!(result instanceof Promise)) return this.#settle(work, result);
    const { promise, resolve } = Promise.withResolvers<Response>();
    work.cut = () => resolve(closing(request, 503, "server shutting down\n"));
    result.then(
      (res) => {
        if (this.#pending.has(work)) resolve(this.#settle(work, res));
      },
      async (error) => {
        if (!this.#pending.has(work)) return;
        resolve(this.#settle(work, await this.#failed(request, error)));
      },
    );
    return promise;
  };

  /**
   * At the deadline: answers 503 to every handler still running and ends
   * every open stream. Returns one description per cut request.
   */
  cut(): string[] {
    const cut: string[] = [];
    for (const set of [this.#pending, this.#streams]) {
      for (const work of [...set]) {
        const what = set === this.#pending ? "no response yet" : "stream ended";
        cut.push(
          `${work.request.method} ${pathOf(work.request.url)} (${
            since(work.start)
          } ms old, ${what})`,
        );
        set.delete(work);
        work.cut?.();
      }
    }
    return cut;
  }

  #settle(work: Work, res: Response): Response {
    this.#pending.delete(work);
    if (this.draining) res = withClose(work.request, res);
    if (this.#options.endStreams && hasOpenEndedBody(res)) {
      res = this.#track(work, res);
    } else {
      this.#finished();
    }
    return res;
  }

  #track(work: Work, res: Response): Response {
    const stream: Work = { request: work.request, start: work.start };
    const body = endable(res.body!, () => {
      if (this.#streams.delete(stream)) this.#finished();
    });
    stream.cut = body.end;
    this.#streams.add(stream);
    return new Response(body.stream, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  }

  #finished() {
    if (this.draining) this.drained++;
  }

  async #failed(request: Request, error: unknown): Promise<Response> {
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
