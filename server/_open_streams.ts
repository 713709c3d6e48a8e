/**
 * The streaming responses of one server that the deadline can end: each
 * wrapped so that `end()` finishes it as a complete response
 * (`_response_body.ts`), counted in flight until it ends.
 */
import { endable } from "./_response_body.ts";
import { OpenStream } from "./_work.ts";

/** The open streams of one server. */
export class OpenStreams {
  #open = new Set<OpenStream>();

  /** `ended`: called once for each stream that ends by itself, with its peer. */
  constructor(readonly ended: (peer?: Deno.NetAddr) => void) {}

  /** Streams still open. */
  get size(): number {
    return this.#open.size;
  }

  /**
   * Wraps the streaming body of `res` (a JS stream of unknown length) and
   * keeps it until it ends; `start` as for `Work`. `endAfter`: ms after
   * which it is ended if it has not ended by itself.
   */
  wrap(
    request: Request,
    start: number | undefined,
    res: Response,
    peer?: Deno.NetAddr,
    endAfter?: number,
  ): Response {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const body = endable(res.body!, () => {
      clearTimeout(timer);
      if (this.#open.delete(stream)) this.ended(stream.peer);
    });
    const stream = new OpenStream(request, start, body, peer);
    if (endAfter !== undefined) timer = setTimeout(body.end, endAfter);
    this.#open.add(stream);
    return new Response(body.stream, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  }

  /** The client addresses of the open streams (where known). */
  *peers(): Iterable<Deno.NetAddr> {
    for (const stream of this.#open) if (stream.peer) yield stream.peer;
  }

  /** At the deadline: ends every open stream cleanly; returns them. */
  endAll(): OpenStream[] {
    const all = [...this.#open];
    this.#open.clear();
    for (const stream of all) stream.body.end();
    return all;
  }
}
