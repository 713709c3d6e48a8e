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
import { BODY_METHODS } from "../lifecycle/_deno.ts";
import {
  BodyGuard,
  type BodySlot,
  guardOf,
  type GuardOwner,
  guardSlot,
  type Method,
  nativeBody,
  nativeBodyUsed,
  nativeClone,
  nativeMethods,
} from "./_body_guard.ts";

const native = Request.prototype;

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

/** Servers whose requests may need guards. */
const owners = new Set<GuardOwner>();
let patched = false;

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
 * Where a body member of `request` goes: its guard (made now if its owner
 * is draining, or if `guard` asks for one), else the owner's record of it
 * (before the drain: Deno's own member, noted there), else nothing (a
 * request no server knows).
 */
function route(
  request: Request,
  guard = false,
): BodyGuard | BodySlot | undefined {
  const made = guardOf(request);
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
        const guard = guardOf(this);
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
    ...Object.fromEntries(BODY_METHODS.map((method) => [method, {
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
