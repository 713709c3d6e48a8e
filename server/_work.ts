/**
 * The records of one server's traffic: a request in flight, and a streaming
 * response the deadline can end. Kept small and of one shape each: they are
 * made on the hot path (see {@linkcode Work}).
 */
import type { Linked } from "./_in_flight.ts";
import type { EndableBody } from "./_response_body.ts";

/**
 * One request in flight. A class with every field set in the constructor:
 * one object shape for all, no property added later.
 *
 * It holds no function made for this request: storing a new closure on
 * each record (the deadline's 503, as it once did) made some server
 * processes spend 10–20 % more CPU on a 4 KiB POST, with scavenges keeping
 * ~15 MB alive instead of ~5 (measured with `deno task bench
 * --only=overhead`; the cause inside V8 is not known). The promise's own
 * `resolve` is kept instead, and the 503 is written by {@linkcode Traffic.cut}.
 */
export class Work implements Linked<Work> {
  info: Deno.ServeHandlerInfo<Deno.NetAddr> | undefined = undefined;
  prev: Work | undefined = undefined;
  next: Work | undefined = undefined;
  listed = false;
  /** Settles the promise Deno awaits for this request (a handler still running). */
  resolve: ((res: Response | Promise<Response>) => void) | undefined =
    undefined;
  /**
   * `request`: the request. `start`: `performance.now()` at arrival, for
   * requests that arrived while draining. Not taken before (a clock read
   * costs ~3 % of a small request): a request from before the drain is
   * reported as older than the drain.
   */
  constructor(readonly request: Request, public start?: number) {}
}

/** A streaming response body that the deadline can end. */
export class OpenStream {
  /** `start`: as for {@linkcode Work}; `peer`: the client, where known. */
  constructor(
    readonly request: Request,
    readonly start: number | undefined,
    readonly body: EndableBody,
    readonly peer?: Deno.NetAddr,
  ) {}
}
