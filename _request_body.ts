/**
 * Request bodies that survive the drain.
 *
 * Deno 2.9's `server.shutdown()` makes the body of every request in flight
 * unreadable at once: any read, started before or after, rejects with
 * `BadResource: Cannot read body as underlying resource unavailable`
 * (denoland/deno#36809; fix proposed in denoland/deno#36825; Deno 2.8.3 was
 * not affected). So the server must not call `shutdown()` while a body is
 * still arriving, and a body the handler has not read yet must be read
 * before it does.
 *
 * A {@linkcode BodyGuard} sits on each request that has a body. Until the
 * drain it costs one prototype swap: `text()`, `json()`, `arrayBuffer()`,
 * `bytes()`, `blob()` and `formData()` go straight to Deno's own (native)
 * methods, and only the promise is kept. When the drain starts, every body
 * still unread is read ahead into memory (within a byte budget), so the
 * handler's later reads are served from there; `req.body` streams and
 * `clone()` go through a small JS stream that can do the same. The request
 * object itself is the one Deno gave: its `signal`, `headers` and `url`, and
 * the handler's `info`, keep their meaning.
 *
 * It does not: make a body arrive faster (a slow upload keeps the listener
 * open until it is in or the deadline cuts it), or protect bodies read with
 * Deno internals that bypass the public methods.
 */
import { since } from "./_log.ts";

/** Deno versions whose `shutdown()` takes bodies away (see the module doc). */
export function shutdownLosesBodies(version = Deno.version.deno): boolean {
  const [major, minor] = version.split(".").map(Number);
  // From 2.9.0 on; no fixed release yet. tests/body_test.ts has a canary
  // that fails once the running Deno keeps bodies: then set the upper bound.
  return major > 2 || (major === 2 && minor >= 9);
}

/** True when the request announces a body (a length other than 0, or chunked). */
export function hasBody(request: Request): boolean {
  const headers = request.headers;
  const length = headers.get("content-length");
  return length !== null ? length !== "0" : headers.has("transfer-encoding");
}

/** Bytes that read-ahead may hold across all requests of one server. */
export class Budget {
  /** Bytes held now. */
  used = 0;
  /** Set once a body did not fit: the caller logs it once. */
  exceeded = false;
  constructor(readonly limit: number) {}
}

type Method = "arrayBuffer" | "blob" | "bytes" | "formData" | "json" | "text";
const METHODS: Method[] = [
  "arrayBuffer",
  "blob",
  "bytes",
  "formData",
  "json",
  "text",
];

const GUARD = Symbol("graceful body guard");
type Guarded = Request & { [GUARD]: BodyGuard };

const native = Request.prototype;
const nativeBody = Object.getOwnPropertyDescriptor(native, "body")!.get!;
const nativeBodyUsed = Object.getOwnPropertyDescriptor(native, "bodyUsed")!
  .get!;

/** The prototype a guarded request gets: Request's, with the body members routed. */
const guardedPrototype: Request = Object.create(native, {
  body: {
    get(this: Guarded) {
      return this[GUARD].body();
    },
    configurable: true,
  },
  bodyUsed: {
    get(this: Guarded) {
      return this[GUARD].used();
    },
    configurable: true,
  },
  clone: {
    value(this: Guarded) {
      return this[GUARD].clone();
    },
    configurable: true,
    writable: true,
  },
  ...Object.fromEntries(METHODS.map((method) => [method, {
    value(this: Guarded) {
      return this[GUARD].consume(method);
    },
    configurable: true,
    writable: true,
  }])),
});

/** Why a body read failed at the deadline. */
export class BodyCutError extends Error {
  override name = "BodyCutError";
}

/**
 * Guards the body of one request (see the module doc). The owner calls
 * {@linkcode BodyGuard.readAhead} when the drain starts, waits for
 * {@linkcode BodyGuard.settled}, and calls {@linkcode BodyGuard.cut} at the
 * deadline.
 */
export class BodyGuard {
  readonly #request: Request;
  readonly #budget: Budget;
  /** Resolves when Deno's body is no longer needed: read to the end, failed, or unused by a finished handler. */
  readonly #settled = Promise.withResolvers<void>();
  #done = false;
  /** A native consume started before the drain. */
  #native: Promise<unknown> | undefined;
  /** The JS route: Deno's reader, what was read ahead, and the stream handed out. */
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #pump: Promise<void> | undefined;
  #ended = false;
  #error: unknown;
  #wake: (() => void) | undefined;
  #stream: ReadableStream<Uint8Array> | undefined;
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  #used = false;
  #readingAhead = false;
  /** The handler asked for the body in some way. */
  #touched = false;
  readonly start = performance.now();

  constructor(request: Request, budget: Budget) {
    this.#request = request;
    this.#budget = budget;
    Object.setPrototypeOf(request, guardedPrototype);
    (request as Guarded)[GUARD] = this;
  }

  /** Resolves once Deno's side of the body is no longer needed. */
  get settled(): Promise<void> {
    return this.#settled.promise;
  }

  /** True if reading the body failed (Deno took it away, or the client left). */
  get failed(): boolean {
    return this.#error !== undefined;
  }

  /** True once {@linkcode BodyGuard.settled} has resolved. */
  get done(): boolean {
    return this.#done;
  }

  /** The request this guard sits on. */
  get request(): Request {
    return this.#request;
  }

  #settle() {
    if (this.#done) return;
    this.#done = true;
    this.#settled.resolve();
  }

  /** The drain started: read what is left of the body into memory. */
  readAhead(): void {
    if (this.#done || this.#native || this.#readingAhead) return;
    this.#readingAhead = true;
    this.#open();
    if (this.#reader) this.#pump ??= this.#pumpAhead();
  }

  /** The handler returned its response. */
  release(): void {
    if (this.#touched || this.#done) return;
    // Never asked for and no longer wanted: nothing to protect (stop any
    // read-ahead the drain started for it).
    this.#queue = [];
    this.#budget.used -= this.#queued;
    this.#queued = 0;
    this.#reader?.cancel("response sent").catch(() => {});
    this.#settle();
  }

  /** At the deadline: the body has not arrived; fail its reads clearly. */
  cut(drainTimeout: number): void {
    if (this.#done) return;
    const error = new BodyCutError(
      `request body cut: it had not arrived when drainTimeout (${drainTimeout} ms) expired`,
    );
    this.#fail(error);
    this.#reader?.cancel(error).catch(() => {});
    this.#settle();
  }

  used(): boolean {
    this.#touched = true;
    if (this.#native) return true;
    if (this.#reader) return this.#used;
    return nativeBodyUsed.call(this.#request);
  }

  body(): ReadableStream<Uint8Array> | null {
    this.#touched = true;
    if (this.#native) return nativeBody.call(this.#request);
    this.#open();
    return this.#stream ?? null;
  }

  consume(method: Method): Promise<unknown> {
    this.#touched = true;
    if (!this.#reader && !this.#native && !this.#readingAhead) {
      // Before the drain: Deno's own method, at full speed; keep its promise.
      const read = (native[method] as () => Promise<unknown>).call(
        this.#request,
      );
      this.#native = read;
      read.then(() => this.#settle(), () => this.#settle());
      return read;
    }
    if (this.used()) {
      return Promise.reject(new TypeError("Body already consumed"));
    }
    const type = this.#request.headers.get("content-type");
    return new Response(this.body(), {
      headers: type === null ? {} : { "content-type": type },
    })[method]();
  }

  clone(): Request {
    if (this.used()) throw new TypeError("Body already consumed");
    const body = this.body();
    let theirs: ReadableStream<Uint8Array> | null = null;
    if (body) [this.#stream, theirs] = body.tee();
    // The copy's own `signal` does not follow this request's: reading that
    // signal would turn on Deno's legacy abort (and its warning).
    const copy = new Request(this.#request.url, {
      method: this.#request.method,
      headers: this.#request.headers,
      body: theirs,
      duplex: "half",
    } as RequestInit);
    return copy;
  }

  /** Takes Deno's reader and builds the stream handed to the handler. */
  #open() {
    if (this.#reader) return;
    const body = nativeBody.call(this.#request) as
      | ReadableStream<Uint8Array>
      | null;
    if (!body) {
      this.#ended = true;
      this.#settle();
      return;
    }
    this.#reader = body.getReader();
    this.#reader.closed.catch(() => {});
    this.#stream = new ReadableStream<Uint8Array>({
      start: (controller) => void (this.#controller = controller),
      pull: async (controller) => {
        this.#used = true;
        const chunk = await this.#next();
        if (chunk === undefined) controller.close();
        else controller.enqueue(chunk);
      },
      cancel: (reason) => {
        this.#used = true;
        this.#queue = [];
        this.#budget.used -= this.#queued;
        this.#queued = 0;
        this.#ended = true;
        this.#settle();
        return this.#reader!.cancel(reason);
      },
    }, { highWaterMark: 0 });
  }

  /** The next chunk for the handler: from the read-ahead, else from Deno. */
  async #next(): Promise<Uint8Array | undefined> {
    while (true) {
      if (!this.#reader) return undefined;
      const chunk = this.#queue.shift();
      if (chunk) {
        this.#queued -= chunk.length;
        this.#budget.used -= chunk.length;
        return chunk;
      }
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended) return undefined;
      if (!this.#pump) return await this.#read();
      // The pump is reading: wait for what it brings, in order.
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** One read from Deno's reader; notes the end. */
  async #read(): Promise<Uint8Array | undefined> {
    try {
      const { done, value } = await this.#reader!.read();
      if (done) {
        this.#ended = true;
        this.#settle();
        return undefined;
      }
      return value;
    } catch (error) {
      this.#fail(error);
      this.#settle();
      throw error;
    }
  }

  /** Reads ahead into the queue while the budget allows. */
  async #pumpAhead() {
    try {
      while (!this.#ended && this.#error === undefined) {
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
      // kept in #error for the handler's next read
    } finally {
      this.#pump = undefined;
      this.#wake?.();
    }
  }

  #fail(error: unknown) {
    if (this.#error !== undefined) return;
    this.#error = error;
    this.#budget.used -= this.#queued;
    this.#queue = [];
    this.#queued = 0;
    try {
      this.#controller?.error(error);
    } catch {
      // closed already
    }
    this.#wake?.();
  }

  /** For log lines: method, path and age. */
  describe(): string {
    const url = this.#request.url;
    const path = url.slice(url.indexOf("/", url.indexOf("//") + 2));
    return `${this.#request.method} ${path} (${since(this.start)} ms old)`;
  }
}
