/**
 * Streaming bodies that the drain deadline can end.
 *
 * Only bodies of unknown length are wrapped: a string, bytes, a Blob or a
 * body with a `content-length` header go to Deno untouched, so ordinary
 * responses keep their length and pay nothing. Telling a stream from a
 * static body needs Deno's internal response record (there is no public
 * API for it; see `_deno.ts`); where that record is not found, nothing is
 * wrapped and the deadline falls back to exiting the process.
 */
import { innerBody, isResourceBacked } from "../lifecycle/_deno.ts";

/**
 * True when `res` has a body whose length Deno does not know up front and
 * that is not resource-backed: a JS stream (SSE, a generated body), the
 * kind the deadline can end cleanly by wrapping it.
 */
export function hasOpenEndedBody(res: Response): boolean {
  const body = innerBody(res);
  // A stream given by the app has no `source`; a string body that Deno turned
  // into a stream (it does so when headers are set) keeps its source.
  // The resource check before the header: Deno builds `res.headers` on
  // first access, and a native body (an echoed request body, a file) would
  // pay for it on every request.
  return body !== undefined && body.length === null && body.source == null &&
    !isResourceBacked(body.stream) && !res.headers.has("content-length");
}

/**
 * Media types whose streams are sequences of self-contained messages, where
 * ending the stream between two of them is a clean end: server-sent events,
 * newline-delimited and sequence JSON, multipart replace.
 */
const EVENT_TYPES = [
  "text/event-stream",
  "application/x-ndjson",
  "application/jsonl",
  "application/json-seq",
  "multipart/x-mixed-replace",
];

/**
 * True when `res` is an event stream (by its `content-type`): one the
 * deadline may end cleanly. Any other stream cut short is a truncated body,
 * so it is better cut (the client sees an error) than ended as if whole.
 */
export function isEventStream(res: Response): boolean {
  const type = res.headers.get("content-type");
  if (type === null) return false;
  const lower = type.toLowerCase();
  return EVENT_TYPES.some((event) => lower.startsWith(event));
}

/** Chunks smaller than this are gathered; larger ones pass as they are. */
const SMALL_CHUNK = 1024;
/** Most bytes gathered into one chunk. */
const GATHER_BYTES = 16 * 1024;
const ignore = () => {};

function concat(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

/** A response body that the caller can end cleanly at any time. */
export interface EndableBody {
  /** The stream to hand to Deno in place of the original body. */
  readonly stream: ReadableStream<Uint8Array>;
  /** Ends the stream normally (the client sees a complete response) and
   * cancels the original body so its producer can stop. */
  end(): void;
}

/**
 * Wraps `body` so that `end()` finishes the response normally, and calls
 * `done` once when the stream is finished, ended or cancelled.
 */
export function endable(
  body: ReadableStream<Uint8Array>,
  done: () => void,
): EndableBody {
  const reader = body.getReader();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let finished = false;
  const finish = () => {
    if (finished) return false;
    finished = true;
    done();
    return true;
  };
  /** A read started while gathering, not answered yet: the next pull's. */
  let pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
  /** What the last gathering read brought, if it was answered at once. */
  let got: ReadableStreamReadResult<Uint8Array> | undefined;
  const take = (result: ReadableStreamReadResult<Uint8Array>) => {
    got = result;
  };
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    async pull(c) {
      try {
        const first = await (pending ?? reader.read());
        pending = undefined;
        if (finished) return;
        if (first.done) {
          finish();
          c.close();
          return;
        }
        // Small chunks (SSE events) the source has already queued are
        // gathered into one, without waiting for new ones: they then cost
        // one pass through this layer and one write in Deno, not one each.
        // Large chunks pass as they are (copying them would cost more).
        if (first.value.byteLength >= SMALL_CHUNK) {
          c.enqueue(first.value);
          return;
        }
        const parts = [first.value];
        let size = first.value.byteLength;
        let large: Uint8Array | undefined;
        let ended = false;
        while (size < GATHER_BYTES) {
          const next = reader.read();
          // A read the source can answer now is settled already: its
          // reaction runs before this function resumes from `await`.
          // Cheaper than racing it against a settled promise.
          got = undefined;
          next.then(take, ignore);
          await undefined;
          // (`take` may have set it meanwhile: TypeScript cannot see that.)
          const now = got as ReadableStreamReadResult<Uint8Array> | undefined;
          if (now === undefined) {
            // Not answered yet: the next pull takes it (and its rejection,
            // if any).
            pending = next;
            break;
          }
          if (now.done) {
            ended = true;
            break;
          }
          const value = now.value;
          if (value.byteLength >= SMALL_CHUNK) {
            large = value;
            break;
          }
          parts.push(value);
          size += value.byteLength;
        }
        if (finished) return;
        c.enqueue(parts.length === 1 ? parts[0] : concat(parts, size));
        if (large) c.enqueue(large);
        if (ended) {
          finish();
          c.close();
        }
      } catch (err) {
        if (finish()) c.error(err);
      }
    },
    cancel(reason) {
      finish();
      return reader.cancel(reason);
    },
  });
  return {
    stream,
    end() {
      if (!finish()) return;
      controller.close();
      reader.cancel("server shutting down").catch(() => {});
    },
  };
}
