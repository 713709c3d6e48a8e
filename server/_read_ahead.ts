/**
 * Reading a request body ahead into memory, for the drain: a queue filled
 * from Deno's reader within a byte budget shared by all requests of a
 * server, and the stream handed to the handler, which takes from the queue
 * first. One {@linkcode Route} per guarded body that goes through JS; the
 * guard (`_body_guard.ts`) owns it.
 */

import type { BODY_METHODS } from "../lifecycle/_deno.ts";

/** Bytes that read-ahead may hold across all requests of one server. */
export class Budget {
  /** Bytes held now. */
  used = 0;
  /** Set once a body did not fit: the caller logs it once. */
  exceeded = false;
  constructor(readonly limit: number) {}
}

/** Reads a body chunk by chunk: a BYOB reader in buffers of its own size, or Deno's default reader. */
export interface ChunkReader {
  /**
   * The next chunk. `fill`: keep reading into the same buffer until it is
   * full or the body ends (the read-ahead: one buffer per 64 KiB kept, not
   * one per piece the socket gave).
   */
  read(fill?: boolean): Promise<ReadableStreamReadResult<Uint8Array>>;
  cancel(reason?: unknown): Promise<void>;
  readonly closed: Promise<unknown>;
}

/** Largest buffer one read-ahead read fills. */
const MAX_READ = 64 * 1024;
/** Smallest buffer for a body of unknown length (chunked). */
const UNKNOWN_READ = 16 * 1024;
/**
 * Fewest bytes asked of Deno in one read. Deno 2.9's HTTP/1.1 connection
 * reads into a scratch buffer of its own, grown (zero-filled) to the
 * largest read ever asked of it and kept while the connection lives: 64 KiB
 * reads left 64 KiB of scratch on each connection beside a 64 KiB body
 * (5 000 POSTs of 64 KiB in flight: 1 320 MiB peak RSS, 1 080 with 16 KiB
 * reads, 960 with 4 KiB reads into the same buffer, measured before
 * whole-body reads went through `Route.rest`). So a read asks for 1/16 of
 * the body ({@linkcode readPiece}), at least this much.
 */
export const READ_PIECE = 4 * 1024;

/**
 * Bytes asked of Deno in one read of a body of `total` bytes (its
 * `content-length`, or what has arrived so far): 1/16 of it as a power of
 * two, from {@linkcode READ_PIECE} to 64 KiB. Deno's scratch then stays
 * within 1/16 of the body, and a large upload is not read in small pieces
 * (128 MiB at loopback speed: 735 ms in 4 KiB reads, 495 in 64 KiB).
 */
export function readPiece(total: number): number {
  let piece = READ_PIECE;
  while (piece < MAX_READ && piece * 32 <= total) piece *= 2;
  return piece;
}

/**
 * A reader for `body` that reads into buffers sized to what is left of it
 * (`length`, its `content-length`, if known). Deno's own reader hands each
 * chunk in a fresh 64 KiB buffer: a 4 KiB body held until its handler
 * reads it cost about 200 KiB at the drain (5 000 such POSTs in flight:
 * 1 260 MiB peak RSS, against 340 MiB this way; GETs alone 158 MiB). Where
 * `body` is not a byte stream, its default reader.
 */
export function chunkReader(
  body: ReadableStream<Uint8Array>,
  length: number | undefined,
): ChunkReader {
  let byob: ReadableStreamBYOBReader;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    return body.getReader();
  }
  let left = length;
  let seen = 0;
  return {
    async read(fill = false) {
      const piece = readPiece(length ?? seen);
      // Unfilled, one piece: a buffer sized for more would be kept whole
      // behind the piece the socket gave.
      const most = fill ? MAX_READ : piece;
      // Length unknown (chunked): a buffer of 4 pieces, growing with them.
      const size = left === undefined
        ? Math.min(Math.max(UNKNOWN_READ, 4 * piece), most)
        : Math.max(1, Math.min(left, most));
      // Each read hands the buffer back (transferred): the next one reads
      // into what is left of it. A piece kept in a buffer sized for the
      // rest of the body cost up to 2.6 times the body (5 000 POSTs of
      // 64 KiB: 824 MiB of ArrayBuffers for 313 MiB of bodies).
      let buffer = new ArrayBuffer(size);
      let filled = 0;
      for (;;) {
        const result = await byob.read(
          new Uint8Array(buffer, filled, Math.min(size - filled, piece)),
        );
        if (result.value) buffer = result.value.buffer as ArrayBuffer;
        if (result.done) {
          if (filled === 0) {
            return { done: true, value: undefined } as ReadableStreamReadResult<
              Uint8Array
            >;
          }
          break;
        }
        filled += result.value.byteLength;
        seen += result.value.byteLength;
        if (left !== undefined) {
          left = Math.max(0, left - result.value.byteLength);
        }
        if (!fill || filled === size) break;
      }
      return { done: false, value: new Uint8Array(buffer, 0, filled) };
    },
    cancel: (reason) => byob.cancel(reason),
    closed: byob.closed,
  };
}

/**
 * The JS route of one body: Deno's reader, a queue of what was read ahead,
 * and the stream handed to the handler, which takes from the queue first.
 */
export class Route {
  readonly #reader: ChunkReader;
  readonly #budget: Budget;
  readonly #ended: () => void;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #pump: Promise<void> | undefined;
  #end = false;
  #wake: (() => void) | undefined;
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  /** Set when the body failed (kept for the handler's next read). */
  error: unknown;
  /** True once the handler pulled from the stream. */
  used = false;
  #stream: ReadableStream<Uint8Array> | undefined;

  constructor(
    reader: ChunkReader,
    budget: Budget,
    ended: () => void,
  ) {
    this.#reader = reader;
    this.#budget = budget;
    this.#ended = ended;
    reader.closed.catch(() => {});
  }

  /**
   * The stream handed to the handler, made on first use: a handler that
   * reads the body whole never needs one (a JS stream costs a few KiB of
   * heap, times every request the drain holds).
   */
  get stream(): ReadableStream<Uint8Array> {
    return this.#stream ??= new ReadableStream<Uint8Array>({
      start: (controller) => void (this.#controller = controller),
      pull: async (controller) => {
        this.used = true;
        const chunk = await this.#next();
        if (chunk === undefined) controller.close();
        else controller.enqueue(chunk);
      },
      cancel: (reason) => {
        this.used = true;
        this.drop(reason);
      },
    }, { highWaterMark: 0 });
  }

  /**
   * The whole body, if the read-ahead holds all of it and the handler has
   * taken nothing yet: off the queue (its budget freed) and the route used
   * up. `undefined` otherwise (the handler then reads through the stream).
   */
  takeWhole(): Uint8Array[] | undefined {
    if (!this.#end || this.#pump || this.used || this.error !== undefined) {
      return undefined;
    }
    const chunks = this.#queue;
    this.#release();
    this.used = true;
    this.#controller?.close();
    return chunks;
  }

  /**
   * The rest of the body for a whole-body read (`arrayBuffer()`, `text()`,
   * ...): the read-ahead's chunks, then Deno's, read in buffers of up to
   * 64 KiB filled to the brim (a body of up to 64 KiB with a known length
   * arrives as one chunk that fills its buffer, handed over without a
   * copy). The route is used up; the handed-out stream, if made, closes.
   */
  async rest(): Promise<Uint8Array[]> {
    this.used = true;
    try {
      this.#controller?.close();
    } catch {
      // closed or failed already
    }
    const chunks: Uint8Array[] = [];
    for (;;) {
      const chunk = await this.#next(true);
      if (chunk === undefined) return chunks;
      chunks.push(chunk);
    }
  }

  /** True while the handed-out stream has a reader. */
  get locked(): boolean {
    return this.#stream?.locked ?? false;
  }

  /** Splits the handed-out stream: this route keeps one half. */
  tee(): ReadableStream<Uint8Array> {
    const [mine, theirs] = this.stream.tee();
    this.#stream = mine;
    return theirs;
  }

  /** Starts reading ahead into the queue (the drain). */
  pumpAhead(): void {
    this.#pump ??= this.#pumpAhead();
  }

  /** Gives up on the body: frees the queue, cancels Deno's reader. */
  drop(reason: unknown): void {
    this.#release();
    if (reason instanceof Error) this.#fail(reason);
    this.#end = true;
    this.#reader.cancel(reason).catch(() => {});
    this.#ended();
  }

  #release() {
    this.#budget.used -= this.#queued;
    this.#queue = [];
    this.#queued = 0;
  }

  /** The next chunk for the handler: from the read-ahead, else from Deno. */
  async #next(fill = false): Promise<Uint8Array | undefined> {
    while (true) {
      const chunk = this.#queue.shift();
      if (chunk) {
        this.#queued -= chunk.length;
        this.#budget.used -= chunk.length;
        return chunk;
      }
      if (this.error !== undefined) throw this.error;
      if (this.#end) return undefined;
      if (!this.#pump) return await this.#read(fill);
      // The pump is reading: wait for what it brings, in order.
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** One read from Deno's reader (`fill`: see ChunkReader); notes the end. */
  async #read(fill = false): Promise<Uint8Array | undefined> {
    try {
      const { done, value } = await this.#reader.read(fill);
      if (done) {
        this.#end = true;
        this.#ended();
        return undefined;
      }
      return value;
    } catch (error) {
      this.#fail(error);
      this.#ended();
      throw error;
    }
  }

  /** Reads ahead into the queue while the budget allows. */
  async #pumpAhead() {
    try {
      while (!this.#end && this.error === undefined) {
        if (this.#budget.used >= this.#budget.limit) {
          this.#budget.exceeded = true;
          break; // the handler's own reads take it from here
        }
        const chunk = await this.#read(true);
        if (chunk === undefined) break;
        this.#queue.push(chunk);
        this.#queued += chunk.length;
        this.#budget.used += chunk.length;
        this.#wake?.();
      }
    } catch {
      // kept in `error` for the handler's next read
    } finally {
      this.#pump = undefined;
      this.#wake?.();
    }
  }

  #fail(error: unknown) {
    if (this.error !== undefined) return;
    this.error = error;
    this.#release();
    try {
      this.#controller?.error(error);
    } catch {
      // closed already
    }
    this.#wake?.();
  }
}

const decoder = new TextDecoder();

/**
 * What `Request`'s body `method` gives for a body already in memory as
 * `chunks`, without copying it where it is one chunk that fills its buffer
 * (the read-ahead's usual case): the copy a `Response` would make is the
 * one that doubled a drained body's memory. `blob()` and `formData()` go
 * through a `Response` (with the request's `content-type`).
 */
export function consumeWhole(
  method: typeof BODY_METHODS[number],
  chunks: Uint8Array[],
  contentType: string | null,
): Promise<unknown> {
  const bytes = exact(chunks);
  switch (method) {
    case "bytes":
      return Promise.resolve(bytes);
    case "arrayBuffer":
      return Promise.resolve(bytes.buffer as ArrayBuffer);
    case "text":
      return Promise.resolve(decoder.decode(bytes));
    case "json":
      return new Promise((resolve) =>
        resolve(JSON.parse(decoder.decode(bytes)))
      );
    default:
      return new Response(bytes as unknown as BodyInit, {
        headers: contentType === null ? {} : { "content-type": contentType },
      })[method]();
  }
}

/** The chunks as one Uint8Array that fills its own ArrayBuffer. */
function exact(chunks: Uint8Array[]): Uint8Array {
  const [first] = chunks;
  if (
    chunks.length === 1 && first.byteOffset === 0 &&
    first.byteLength === first.buffer.byteLength &&
    first.buffer instanceof ArrayBuffer
  ) return first;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}
