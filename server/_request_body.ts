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
 * Nothing is added to a request before the drain: its handler reads the
 * body with Deno's own (native) methods and stream at full speed.
 * `Request.prototype`'s body members are routed, once per process, so that
 * a read started on a request in flight, or Deno's stream handed to it, is
 * remembered on the owner's record of the request (found without a lookup
 * while the handler runs synchronously); `clone()` gets a
 * {@linkcode BodyGuard} with a small JS stream in between. When the drain
 * starts, every request in flight that may have a body gets a guard: a read
 * under way is waited for, and so is a handed-out stream (until it closes,
 * or the response it feeds is complete); a body nobody has touched is read
 * ahead into memory (within a byte budget), so the handler's later reads
 * are served from there. The request object itself
 * is the one Deno gave: its `signal`, `headers` and `url`, and the handler's
 * `info`, keep their meaning.
 *
 * A read that no record caught (through body members captured before they
 * were routed, say) is found when the drain starts: Deno's stream is then
 * locked, and it is waited for like the others.
 *
 * It does not: make a body arrive faster (a slow upload keeps the listener
 * open until it is in or the deadline cuts it), or know of a stream taken
 * through such captured members and held unread and unlocked when the drain
 * starts: that one is read ahead, and the app's own later read of it fails.
 */
import {
  BODY_METHODS,
  type RequestMembers,
  requestMembers,
  streamState,
} from "../lifecycle/_deno.ts";

/**
 * True when the request may have a body: anything but GET and HEAD (Deno
 * gives those none, whatever their headers). Headers are not read: doing so
 * costs ~10 % of a small request on the hot path. A guard on a request that
 * turns out to have no body settles at once.
 */
export function mayHaveBody(request: Request): boolean {
  const method = request.method;
  return method !== "GET" && method !== "HEAD";
}

/** Bytes that read-ahead may hold across all requests of one server. */
export class Budget {
  /** Bytes held now. */
  used = 0;
  /** Set once a body did not fit: the caller logs it once. */
  exceeded = false;
  constructor(readonly limit: number) {}
}

type Method = typeof BODY_METHODS[number];
const METHODS = BODY_METHODS;

const found = requestMembers();
/**
 * True where Deno's body members can be routed (see `_deno.ts`); where
 * they cannot, no server registers and the guard is off (said at start).
 */
export const bodiesGuardable: boolean = typeof found !== "string";
const unroutable = () => {
  throw new Error(`body guard unavailable: ${found}`);
};
const {
  body: nativeBody,
  bodyUsed: nativeBodyUsed,
  clone: nativeClone,
  methods: nativeMethods,
}: RequestMembers = typeof found === "string"
  ? {
    body: unroutable,
    bodyUsed: unroutable,
    clone: unroutable,
    methods: {
      arrayBuffer: unroutable,
      blob: unroutable,
      bytes: unroutable,
      formData: unroutable,
      json: unroutable,
      text: unroutable,
    },
  }
  : found;
const native = Request.prototype;

/** The guard of each guarded request (a side table: Deno's objects stay as they are). */
const guards = new WeakMap<Request, BodyGuard>();
/**
 * False until the first guard is made (the first drain): until then no
 * lookup in `guards` is needed (a miss still hashes the request).
 */
let guarding = false;
/** Servers whose requests may need guards. */
const owners = new Set<GuardOwner>();
let patched = false;

/** What an owner keeps for each of its requests in flight. */
export interface BodySlot {
  readonly request: Request;
  /** The request's guard, once it has one. */
  guard?: BodyGuard;
  /** A native read of the body started before the drain. */
  read?: Promise<unknown>;
  /** Deno's own body stream, if the handler took it before the drain. */
  stream?: ReadableStream<Uint8Array>;
  /** Deno's `info` for the request (its `completed`). */
  info?: { readonly completed: Promise<void> };
}

/** True while a body stream handed to the app may still need Deno's side. */
export function streamOpen(stream: ReadableStream): boolean {
  const state = streamState(stream);
  return state === undefined || state === "readable";
}

/** How often a drain looks at a handed-out body stream (ms). */
const STREAM_POLL_MS = 10;

/**
 * Resolves once a body stream handed to the app no longer needs Deno's
 * side: it closed or failed, or the response of its request is complete (a
 * body echoed into the response is copied natively, so its stream never
 * changes state). There is no event for the state: it is looked at every
 * 10 ms, only during a drain.
 */
function streamDone(
  stream: ReadableStream,
  completed: Promise<void> | undefined,
): Promise<void> {
  return new Promise((resolve) => {
    let over = false;
    const end = () => {
      over = true;
      resolve();
    };
    completed?.then(end, end);
    const look = () => {
      if (over) return;
      if (!streamOpen(stream)) end();
      else setTimeout(look, STREAM_POLL_MS);
    };
    look();
  });
}

/**
 * The request whose handler is running right now (synchronously), and its
 * owner: most handlers touch the body before their first `await`, and are
 * found here without a table lookup. Set by the owner around the handler
 * call (see {@linkcode enterSlot}).
 */
let running: BodySlot | undefined;
let runningOwner: GuardOwner | undefined;

/**
 * Makes `slot` the running request of `owner` while its handler runs
 * synchronously, so the body reads it starts are recorded without a table
 * lookup. Returns what to give {@linkcode leaveSlot} after the call (a
 * handler may call another server's handler).
 */
export function enterSlot(
  owner: GuardOwner,
  slot: BodySlot,
): [BodySlot | undefined, GuardOwner | undefined] | undefined {
  const outer = running === undefined
    ? undefined
    : [running, runningOwner] as [BodySlot, GuardOwner];
  running = slot;
  runningOwner = owner;
  return outer;
}

/** Restores the running request from before {@linkcode enterSlot}. */
export function leaveSlot(
  outer: [BodySlot | undefined, GuardOwner | undefined] | undefined,
): void {
  running = outer?.[0];
  runningOwner = outer?.[1];
}

/**
 * Gives `slot` its guard (once), registered in the side table. Where the
 * handler holds Deno's own stream, the guard only waits for it to be done.
 */
export function guardSlot(owner: GuardOwner, slot: BodySlot): BodyGuard {
  return slot.guard ??= new BodyGuard(
    slot.request,
    owner,
    slot.read ??
      (slot.stream && streamDone(slot.stream, slot.info?.completed)),
    slot.stream !== undefined,
  );
}

/**
 * Where a body member of `request` goes: its guard (made now if its owner
 * is draining, or if `guard` asks for one), else the owner's record of it
 * (before the drain: Deno's own member, noted there), else nothing (a
 * request no server knows).
 */
function route(
  request: Request,
  guard = false,
): BodyGuard | BodySlot | undefined {
  const made = guarding ? guards.get(request) : undefined;
  if (made) return made;
  // The running request first (no lookup), else each owner's table.
  let owner = runningOwner;
  let slot = running?.request === request ? running : undefined;
  if (!slot) {
    for (owner of owners) {
      slot = owner.slotOf(request);
      if (slot) break;
    }
    if (!slot) return undefined;
  }
  return owner!.draining || guard ? guardSlot(owner!, slot) : slot;
}

/** A body read: through the guard if there is one, else Deno's own. */
function consume(request: Request, method: Method): Promise<unknown> {
  const to = route(request);
  if (to instanceof BodyGuard) return to.consume(method);
  // Deno's own method at full speed; before the drain the owner keeps its
  // promise, and the drain waits for it before it calls shutdown().
  const read = nativeMethods[method].call(request);
  if (to) to.read ??= read;
  return read;
}

/**
 * Routes the body members of `Request.prototype` through the guards, once
 * per process, and registers `owner`. A request of no owner (fetch's, one
 * the app made) goes straight to Deno's own member after a WeakMap miss
 * and one map lookup per server. Patching the prototype once, rather than
 * each request object, keeps Deno's hot paths monomorphic: swapping a
 * request's prototype cost 10–15 % of a 4 KiB POST.
 */
export function register(owner: GuardOwner): void {
  owners.add(owner);
  if (patched) return;
  patched = true;
  Object.defineProperties(native, {
    body: {
      get(this: Request) {
        const to = route(this);
        if (to instanceof BodyGuard) return to.body();
        // Deno's own stream (a body echoed into the response is then
        // copied natively); before the drain the owner notes it, and the
        // drain waits until it is done before it calls shutdown().
        const stream = nativeBody.call(this);
        if (to && stream) to.stream ??= stream;
        return stream;
      },
      configurable: true,
      enumerable: true,
    },
    bodyUsed: {
      get(this: Request) {
        // Without a guard, Deno's own answer: a native read started before
        // the drain has disturbed the body already.
        const guard = guarding ? guards.get(this) : undefined;
        return guard ? guard.used() : nativeBodyUsed.call(this);
      },
      configurable: true,
      enumerable: true,
    },
    clone: {
      value: function clone(this: Request) {
        const to = route(this, true);
        return to instanceof BodyGuard ? to.clone() : nativeClone.call(this);
      },
      configurable: true,
      writable: true,
    },
    ...Object.fromEntries(METHODS.map((method) => [method, {
      value: {
        [method](this: Request) {
          return consume(this, method);
        },
      }[method],
      configurable: true,
      writable: true,
    }])),
  });
}

/** The owner's requests no longer need guards (its listener is closed). */
export function unregister(owner: GuardOwner): void {
  owners.delete(owner);
}

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
  readonly #owner: GuardOwner;
  /** A native consume started before the drain. */
  #native: Promise<unknown> | undefined;
  /** The JS route, once taken (a stream read, or the drain). */
  #route: Route | undefined;
  #done = false;
  #settled: PromiseWithResolvers<void> | undefined;
  /** The handler asked for the body in some way. */
  #touched = false;
  /** The handler holds Deno's own stream: every member stays Deno's. */
  #handed: boolean;

  /**
   * `read`: a native read the handler started before the guard existed (or
   * the end of Deno's stream, `handed`, that the handler took).
   */
  constructor(
    request: Request,
    owner: GuardOwner,
    read?: Promise<unknown>,
    handed = false,
  ) {
    this.#request = request;
    this.#owner = owner;
    this.#handed = handed;
    if (read) this.#waitFor(read);
    guarding = true;
    guards.set(request, this);
  }

  /** The app reads the body natively (`read` ends when it is done): wait. */
  #waitFor(read: Promise<unknown>) {
    this.#native = read;
    this.#touched = true;
    read.then(() => this.#settle(), () => this.#settle());
  }

  /** Resolves once Deno's side of the body is no longer needed. */
  get settled(): Promise<void> {
    if (!this.#settled) {
      this.#settled = Promise.withResolvers<void>();
      if (this.#done) this.#settled.resolve();
    }
    return this.#settled.promise;
  }

  /** True once Deno's side of the body is no longer needed. */
  get done(): boolean {
    return this.#done;
  }

  /** True if reading the body failed (Deno took it away, or the client left). */
  get failed(): boolean {
    return this.#route?.error !== undefined;
  }

  #settle() {
    if (this.#done) return;
    this.#done = true;
    this.#settled?.resolve();
  }

  /** The drain started: read what is left of the body into memory. */
  readAhead(): void {
    if (this.#done || this.#native) return;
    this.#open()?.pumpAhead();
  }

  /** The handler returned its response. */
  release(): void {
    // Out of the side table unless its body still streams through JS: the
    // table then holds only requests in flight (a WeakMap that grows until
    // the next GC costs every request).
    if (!this.#route) guards.delete(this.#request);
    if (this.#touched || this.#done) return;
    // Never asked for and no longer wanted: nothing to protect (stop any
    // read-ahead the drain started for it).
    this.#route?.drop("response sent");
    this.#settle();
  }

  /** At the deadline: the body has not arrived; fail its reads clearly. */
  cut(drainTimeout: number): void {
    if (this.#done) return;
    this.#route?.drop(
      new BodyCutError(
        `request body cut: it had not arrived when drainTimeout (${drainTimeout} ms) expired`,
      ),
    );
    this.#settle();
  }

  used(): boolean {
    this.#touched = true;
    if (this.#handed) return nativeBodyUsed.call(this.#request);
    if (this.#native) return true;
    if (this.#route) return this.#route.used;
    return nativeBodyUsed.call(this.#request);
  }

  body(): ReadableStream<Uint8Array> | null {
    this.#touched = true;
    if (this.#native) return nativeBody.call(this.#request);
    return this.#open()?.stream ?? null;
  }

  consume(method: Method): Promise<unknown> {
    this.#touched = true;
    if (this.#handed) return nativeMethods[method].call(this.#request);
    if (!this.#route && !this.#native && !this.#owner.draining) {
      // Before the drain: Deno's own method, at full speed; keep its promise.
      const read = nativeMethods[method].call(this.#request);
      this.#native = read;
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
    if (this.#handed) return nativeClone.call(this.#request);
    if (this.used()) throw new TypeError("Body already consumed");
    const route = this.#open();
    const theirs = route ? route.tee() : null;
    // The copy's own `signal` does not follow this request's: reading that
    // signal would turn on Deno's legacy abort (and its warning).
    return new Request(this.#request.url, {
      method: this.#request.method,
      headers: this.#request.headers,
      body: theirs,
      duplex: "half",
    } as RequestInit);
  }

  /** Takes Deno's reader (once) and tells the owner to track this body. */
  #open(): Route | undefined {
    if (this.#route || this.#done) return this.#route;
    const body = nativeBody.call(this.#request) as
      | ReadableStream<Uint8Array>
      | null;
    if (!body) {
      this.#settle();
      return undefined;
    }
    if (body.locked || nativeBodyUsed.call(this.#request)) {
      // A read under way that no record caught (started through members
      // captured before they were routed, say): the app's; wait for it.
      this.#handed = true;
      this.#waitFor(streamDone(body, undefined));
      this.#owner.track(this);
      return undefined;
    }
    this.#route = new Route(
      body.getReader(),
      this.#owner.budget,
      () => this.#settle(),
    );
    this.#owner.track(this);
    return this.#route;
  }
}

/** What a guard needs from the server that owns it. */
export interface GuardOwner {
  /** The record of `request` if it is one of this owner's requests in flight. */
  slotOf(request: Request): BodySlot | undefined;
  /** True once the drain has started. */
  readonly draining: boolean;
  /** The read-ahead budget. */
  readonly budget: Budget;
  /** Wait for this body before `shutdown()`: it is being read through JS. */
  track(guard: BodyGuard): void;
}

/**
 * The JS route of one body: Deno's reader, a queue of what was read ahead,
 * and the stream handed to the handler, which takes from the queue first.
 */
class Route {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
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
    reader: ReadableStreamDefaultReader<Uint8Array>,
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
