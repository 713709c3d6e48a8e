/**
 * Every reliance of this library on Deno beyond its documented API, in one
 * place: internal slots it reads, prototype members it routes, and release
 * behaviour it works around. Each entry says what it is for, what degrades
 * without it, and how the running Deno is checked for it. Nothing else in
 * the library reads a Deno internal: it calls the functions here.
 *
 * Checked on the latest patch of every 2.x minor, 2.0.6 to 2.9.6, on Linux
 * x86_64 (`tests/deno_test.ts` has one canary per entry; CI runs them on
 * both ends of the supported range). What is said at start about the
 * running Deno is in `_deno_check.ts`.
 *
 * @module
 */

/** Compares two `major.minor.patch` versions: negative, 0 or positive. */
export function compareVersions(a: string, b: string): number {
  const x = a.split(/[.+-]/).map(Number);
  const y = b.split(/[.+-]/).map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (x[i] || 0) - (y[i] || 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The `major.minor` of a version, as a number pair. */
export function minorOf(version: string): [number, number] {
  const [major, minor] = version.split(".").map(Number);
  return [major, minor];
}

// --- Internal slots -------------------------------------------------------

/** The symbol of an internal slot, found by its description (cached per name). */
const keys = new Map<string, symbol | null>();
function slot(object: object, description: string): symbol | null {
  let key = keys.get(description);
  if (key === undefined) {
    key = Object.getOwnPropertySymbols(object).find((k) =>
      k.description === description
    ) ?? null;
    keys.set(description, key);
  }
  return key;
}

let stateKey: symbol | null | undefined;
/**
 * A stream's state (`"readable"`, `"closed"`, `"errored"`) from Deno's
 * `[[state]]` slot; `undefined` where there is none.
 */
export function streamState(stream: ReadableStream): string | undefined {
  if (stateKey === undefined) stateKey = slot(stream, "[[state]]");
  // deno-lint-ignore no-explicit-any
  return stateKey === null ? undefined : (stream as any)[stateKey];
}

let backingKey: symbol | null | undefined;
/**
 * True when `stream` is backed by a Deno resource (a file's `readable`, a
 * `fetch()` body), read from Deno's `[[resourceBacking]]` slot; false where
 * there is none.
 */
export function isResourceBacked(stream: ReadableStream): boolean {
  if (backingKey === undefined) {
    backingKey = slot(stream, "[[resourceBacking]]");
  }
  // deno-lint-ignore no-explicit-any
  return backingKey !== null && (stream as any)[backingKey] != null;
}

let wsKey: symbol | undefined;
/**
 * The WebSocket that `Deno.upgradeWebSocket` tied to its 101 response
 * (Deno's `[[associated_ws]]` slot); `undefined` for any other response,
 * or where there is no such slot.
 */
export function upgradedSocket(res: Response): WebSocket | undefined {
  // A miss is not cached: only upgrade responses have the slot.
  wsKey ??= Object.getOwnPropertySymbols(res).find((k) =>
    k.description === "[[associated_ws]]"
  );
  // deno-lint-ignore no-explicit-any
  const socket = wsKey === undefined ? undefined : (res as any)[wsKey];
  return socket instanceof WebSocket ? socket : undefined;
}

/** What Deno's internal response record says of a response's body. */
export interface InnerBody {
  /** The length Deno knows up front, or null. */
  readonly length: number | null;
  /** What Deno made the stream from (a string, bytes), if anything. */
  readonly source: unknown;
  /** The body as a stream. */
  readonly stream: ReadableStream<Uint8Array>;
}

let responseKey: symbol | null | undefined;
/**
 * The body of `res` as Deno's internal `response` record holds it;
 * `undefined` where there is no body or no such record (then no caller
 * can tell a stream from a static body).
 */
export function innerBody(res: Response): InnerBody | undefined {
  if (responseKey === undefined) responseKey = slot(res, "response");
  if (responseKey === null) return undefined;
  // deno-lint-ignore no-explicit-any
  return (res as any)[responseKey]?.body ?? undefined;
}

// --- Release behaviour ----------------------------------------------------

/**
 * True on releases whose `server.shutdown()` makes the body of every
 * request in flight unreadable (denoland/deno#36809): 2.9.6, and any later
 * release until one is known to keep them (then give this its upper
 * bound). 2.0.6 to 2.9.5 keep them (measured; `tests/deno_test.ts`).
 * Only there does the drain hold `shutdown()` back (`server/_body_hold.ts`).
 */
export function shutdownLosesBodies(version = Deno.version.deno): boolean {
  return compareVersions(version, "2.9.6") >= 0;
}

/**
 * True on releases that answer a keep-alive POST whose body arrives after
 * its head with `Connection: close` of their own and close the connection
 * (2.8.3 to 2.9.5, measured; `tests/deno_test.ts`). Nothing is lost: the
 * client opens a new connection. While draining, such a response carries
 * the server's `Connection: close` too (`close, close`: the same token
 * twice, which clients read as one).
 */
export function closesKeepAliveAfterPost(
  version = Deno.version.deno,
): boolean {
  return compareVersions(version, "2.8.3") >= 0 &&
    compareVersions(version, "2.9.6") < 0;
}

// --- What the running Deno has --------------------------------------------

/** One reliance on Deno beyond its documented API. */
export interface Reliance {
  /** What is relied on. */
  readonly name: string;
  /** What the library uses it for. */
  readonly usedFor: string;
  /** What degrades where it is missing (the line said at start). */
  readonly without: string;
  /** Whether the running Deno has it. */
  present(): boolean;
}

/** Every reliance on a Deno internal that can be looked for at start. */
export const RELIANCES: readonly Reliance[] = [
  {
    name: "ReadableStream [[state]] slot",
    usedFor:
      "knowing when a request body has been read to its end (where Deno's shutdown() loses unread bodies)",
    without:
      "where Deno loses unread bodies, the drain holds shutdown() until every handler of a request with a body has returned, even one that has read its body",
    present: () => streamState(new ReadableStream()) === "readable",
  },
  {
    name: "Response internal record (body length, source, stream)",
    usedFor: "telling a streaming body from a static one",
    without:
      "streams are cut by the exit at the deadline, not ended cleanly (endStreamsAtDeadline has no effect); where Deno loses unread bodies, one echoed into a response may be cut",
    present: () => {
      const stream = innerBody(new Response(new ReadableStream()));
      // (A string body with headers set: Deno 2.9 keeps a plain one
      // outside the record.)
      const fixed = innerBody(new Response("x", { headers: { "x-a": "1" } }));
      return stream !== undefined && stream.length === null &&
        stream.stream instanceof ReadableStream && fixed !== undefined &&
        fixed.source != null;
    },
  },
  {
    name: "Response [[associated_ws]] slot (Deno.upgradeWebSocket)",
    usedFor:
      "letting the closes the app starts at the drain finish before Deno's shutdown()",
    without:
      "a WebSocket the app closes at the drain may be closed by Deno's shutdown() before the client's reply: the client sees an unclean close (wasClean false)",
    present: () => {
      const { response, socket } = Deno.upgradeWebSocket(
        new Request("http://localhost/", {
          headers: {
            upgrade: "websocket",
            connection: "Upgrade",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
          },
        }),
      );
      return upgradedSocket(response) === socket;
    },
  },
  {
    name: "ReadableStream [[resourceBacking]] slot",
    usedFor: "leaving file and fetch() bodies on Deno's native path",
    without:
      "with endStreamsAtDeadline: true, file and fetch() bodies are copied through JS (slower)",
    present: () => slot(new ReadableStream(), "[[resourceBacking]]") !== null,
  },
];

/** The reliances the running Deno lacks. */
export function missingReliances(): Reliance[] {
  return RELIANCES.filter((reliance) => {
    try {
      return !reliance.present();
    } catch {
      return true;
    }
  });
}
