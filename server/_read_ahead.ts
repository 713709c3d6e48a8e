/**
 * Reading a request body ahead into memory, for the drain: a queue filled
 * from Deno's reader within a byte budget shared by all requests of a
 * server, and the stream handed to the handler, which takes from the queue
 * first. One {@linkcode Route} per guarded body that goes through JS; the
 * guard (`_body_guard.ts`) owns it.
 */

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
  read(): Promise<ReadableStreamReadResult<Uint8Array>>;
  cancel(reason?: unknown): Promise<void>;
  readonly closed: Promise<unknown>;
}

/** Largest buffer one read-ahead read asks for. */
const MAX_READ = 64 * 1024;
/** Buffer size for a body of unknown length (chunked). */
const UNKNOWN_READ = 16 * 1024;

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
  return {
    async read() {
      const size = left === undefined
        ? UNKNOWN_READ
        : Math.max(1, Math.min(left, MAX_READ));
      const result = await byob.read(new Uint8Array(size));
      if (!result.done && left !== undefined) {
        left = Math.max(0, left - result.value.byteLength);
      }
      return result as ReadableStreamReadResult<Uint8Array>;
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
  stream: ReadableStream<Uint8Array>;

  constructor(
    reader: ChunkReader,
    budget: Budget,
    ended: () => void,
  ) {
    this.#reader = reader;
    this.#budget = budget;
    this.#ended = ended;
    reader.closed.catch(() => {});
    this.stream = new ReadableStream<Uint8Array>({
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

  /** Splits the handed-out stream: this route keeps one half. */
  tee(): ReadableStream<Uint8Array> {
    const [mine, theirs] = this.stream.tee();
    this.stream = mine;
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
  async #next(): Promise<Uint8Array | undefined> {
    while (true) {
      const chunk = this.#queue.shift();
      if (chunk) {
        this.#queued -= chunk.length;
        this.#budget.used -= chunk.length;
        return chunk;
      }
      if (this.error !== undefined) throw this.error;
      if (this.#end) return undefined;
      if (!this.#pump) return await this.#read();
      // The pump is reading: wait for what it brings, in order.
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** One read from Deno's reader; notes the end. */
  async #read(): Promise<Uint8Array | undefined> {
    try {
      const { done, value } = await this.#reader.read();
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
        const chunk = await this.#read();
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
