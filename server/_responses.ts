/**
 * What the server writes or hands over besides the app's own response: the
 * 503s of the drain (`Connection: close`, `Retry-After`), `Connection:
 * close` on a response, the handler's `info` with the drain signal, the
 * answer to a handler that threw, and the request path for log lines. Pure
 * helpers, no state.
 */
import type { GracefulHandlerInfo } from "./_server_types.ts";
import type { Logger } from "../lifecycle/_log.ts";

/** True if the client asked to close: Deno then adds `Connection: close` itself. */
export const clientCloses = (request: Request) =>
  request.headers.get("connection")?.toLowerCase().includes("close") ?? false;

/**
 * True if the client asked to keep the connection open: what an HTTP/1.0
 * client must send to keep it (ApacheBench's `-k`), and what some HTTP/1.1
 * clients send too (Node's `http`, Python's `requests`).
 */
const asksKeepAlive = (request: Request) =>
  request.headers.get("connection")?.toLowerCase().includes("keep-alive") ??
    false;

/** A 503 written by the library: `Connection: close` and `Retry-After`. */
export function refusal(
  request: Request,
  text: string,
  retryAfter: number | false,
): Response {
  const headers = new Headers({ "content-type": "text/plain" });
  if (retryAfter !== false) headers.set("retry-after", String(retryAfter));
  return withClose(request, new Response(text, { status: 503, headers }));
}

/**
 * Sets `Connection: close`, copying the response if its headers are frozen.
 *
 * To a client that asked for keep-alive, the body also goes as a stream of
 * unknown length: Deno 2.9 answers an HTTP/1.0 keep-alive request with its
 * own `connection: keep-alive` beside ours and keeps the connection, unless
 * the body can only be delimited by closing it (measured: one `connection:
 * close`, then EOF). Deno's `Request` does not say the version, so HTTP/1.1
 * clients that send `keep-alive` get the body chunked (and the same
 * `Connection: close`) while the server drains. HEAD requests and statuses
 * without a body keep their framing.
 */
export function withClose(request: Request, res: Response): Response {
  if (res.status === 101 || clientCloses(request)) return res;
  if (
    asksKeepAlive(request) && request.method !== "HEAD" &&
    bodyAllowed(res.status)
  ) {
    const headers = new Headers(res.headers);
    headers.set("connection", "close");
    const body = res.body ?? new ReadableStream({ start: (c) => c.close() });
    return new Response(body.pipeThrough(new TransformStream()), {
      status: res.status,
      statusText: res.statusText,
      headers,
    });
  }
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

/**
 * Gives Deno's `info` the drain signal as an own property of Deno's object
 * (made for this request alone), so its other members, getters that need
 * Deno's object as `this`, work untouched, and no object is made per
 * request. (A Proxy around it looked ~2.5 % dearer on a 4 KiB echo in one
 * pair of runs; ten more runs of that row put both at ~0.965 of raw: no
 * difference shows.) The Proxy is kept for an `info` that cannot take the
 * property (frozen, or with a `signal` of Deno's own that has no setter).
 */
export function withSignal(
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  signal: AbortSignal,
  proxy: ProxyHandler<Deno.ServeHandlerInfo<Deno.NetAddr>>,
): GracefulHandlerInfo {
  try {
    (info as GracefulHandlerInfo).signal = signal;
    if ((info as GracefulHandlerInfo).signal === signal) {
      return info as GracefulHandlerInfo;
    }
  } catch {
    // not extensible, or a read-only `signal`: the Proxy below
  }
  return new Proxy(info, proxy) as GracefulHandlerInfo;
}

/**
 * The fallback of {@linkcode withSignal}: Deno's `info` plus the drain
 * signal through a Proxy, every other member read from the real object. One
 * per server.
 */
export function infoWithSignal(
  signal: AbortSignal,
): ProxyHandler<Deno.ServeHandlerInfo<Deno.NetAddr>> {
  return {
    get(target, key) {
      if (key === "signal") return signal;
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
    has: (target, key) => key === "signal" || Reflect.has(target, key),
  };
}

/** Whether a response with `status` may have a body (RFC 9110). */
function bodyAllowed(status: number): boolean {
  return status >= 200 && status !== 204 && status !== 205 && status !== 304;
}

/** The path of a request URL, without its query (no URL object made). */
export function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const query = url.indexOf("?", start);
  return url.slice(start, query < 0 ? undefined : query);
}

/**
 * The answer to a handler that threw: the app's `onError` if it has one
 * (a throw there is logged instead), else a logged 500.
 */
export async function errorResponse(
  request: Request,
  error: unknown,
  { onError, logger }: {
    onError?: (error: unknown) => Response | Promise<Response>;
    logger: Logger;
  },
): Promise<Response> {
  if (onError) {
    try {
      return await onError(error);
    } catch (again) {
      error = again;
    }
  }
  logger.error(
    `handler failed for ${request.method} ${pathOf(request.url)}: ${
      error instanceof Error ? (error.stack ?? error.message) : String(error)
    }`,
  );
  return new Response("Internal Server Error\n", { status: 500 });
}
