/**
 * The guard of one request body at the drain (see `_request_body.ts` for
 * the whole mechanism): it waits for a read under way, or reads what is
 * left ahead into memory (`_read_ahead.ts`) and serves the handler's later
 * reads from there, and fails them with {@linkcode BodyCutError} at the
 * deadline. It owns the side table of guards and Deno's own body members
 * (taken before anything routes them).
 */
import {
  type BODY_METHODS,
  type RequestMembers,
  requestMembers,
  streamState,
} from "../lifecycle/_deno.ts";
import {
  type Budget,
  chunkReader,
  consumeWhole,
  Route,
} from "./_read_ahead.ts";

/** A body-reading method of `Request`. */
export type Method = typeof BODY_METHODS[number];

const found = requestMembers();
/**
 * True where Deno's body members can be routed (see `_deno.ts`); where
 * they cannot, no server registers and the guard is off (said at start).
 */
export const bodiesGuardable: boolean = typeof found !== "string";
const unroutable = () => {
  throw new Error(`body guard unavailable: ${found}`);
};
export const {
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

/** The guard of each guarded request (a side table: Deno's objects stay as they are). */
const guards = new WeakMap<Request, BodyGuard>();
/**
 * False until the first guard is made (the first drain): until then no
 * lookup in `guards` is needed (a miss still hashes the request).
 */
let guarding = false;

/** The guard of `request`, if it has one (no lookup before the first drain). */
export function guardOf(request: Request): BodyGuard | undefined {
  return guarding ? guards.get(request) : undefined;
}

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
    if (this.#route?.locked) {
      return Promise.reject(new TypeError("Body is locked to a reader"));
    }
    const type = this.#request.headers.get("content-type");
    // Read ahead whole: handed over as it is (see consumeWhole).
    const whole = this.#route?.takeWhole();
    if (whole) return consumeWhole(method, whole, type);
    const route = this.#open();
    if (!route) return consumeWhole(method, [], type);
    // The rest in buffers of its own size, not through a stream and a
    // `Response`, which would keep every piece, then copy them.
    return route.rest().then((chunks) => consumeWhole(method, chunks, type));
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
    const length = Number(this.#request.headers.get("content-length") ?? NaN);
    this.#route = new Route(
      chunkReader(body, Number.isSafeInteger(length) ? length : undefined),
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
