/**
 * Every line this library writes to stderr (progress lines, the worker's
 * protocol reports, the supervisor's forwarding of its workers' output), in
 * order, without ever blocking the event loop.
 *
 * A pipe nobody reads (a stalled log shipper, a supervisor that stopped
 * reading) fills up, and a synchronous write to it blocks the whole process:
 * no request would be answered and no deadline would fire. Here one write
 * at a time runs on Deno's blocking pool (`Deno.stderr.write`); lines wait
 * behind it (and go out together in the next) up to {@linkcode QUEUE_LIMIT}
 * bytes, and past that a line is dropped and counted. The count is said as
 * soon as the pipe takes lines again, and the process flushes (bounded)
 * before it exits.
 *
 * It does not touch what the application writes itself: `console.error`
 * is synchronous, and an app that logs to a full pipe blocks there.
 */

/** Bytes that may wait behind a write in flight before lines are dropped. */
export const QUEUE_LIMIT = 1024 * 1024;
/** Most bytes written at once: a pipe's default capacity on Linux. */
const BATCH = 64 * 1024;

const encoder = new TextEncoder();

/** The write a sink does: `Deno.stderr.write` by default. */
export type Write = (bytes: Uint8Array) => Promise<number>;
/** The synchronous write {@linkcode Sink.flushSync} uses. */
export type WriteSync = (bytes: Uint8Array) => number;

/** One ordered, non-blocking queue of writes to a stream. */
export class Sink {
  #write: Write;
  #writeSync: WriteSync | undefined;
  #limit: number;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #writing = false;
  #dropped = 0;
  #broken = false;
  #idle: PromiseWithResolvers<void> | undefined;
  /** Bytes the stream has taken: a flush waits while this grows. */
  #taken = 0;

  constructor(write: Write, limit = QUEUE_LIMIT, writeSync?: WriteSync) {
    this.#write = write;
    this.#limit = limit;
    this.#writeSync = writeSync;
  }

  /** Lines dropped so far (and not yet said). */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Queues `text`; returns at once. A line that would push the queue past
   * its limit is dropped and counted, unless `keep` (the worker protocol's
   * reports, which the supervisor needs and never leaves unread).
   */
  write(text: string, keep = false): void {
    if (this.#broken) return;
    const bytes = encoder.encode(text);
    if (
      !keep && this.#queued > 0 && this.#queued + bytes.length > this.#limit
    ) {
      this.#dropped++;
      return;
    }
    this.#queue.push(bytes);
    this.#queued += bytes.length;
    if (!this.#writing) this.#pump();
  }

  /**
   * Resolves once everything queued is written, once the stream has taken
   * nothing for `ms` (a stalled pipe), or after `most` ms in all, whichever
   * is first: before `Deno.exit()`, which would drop what is still queued.
   * A slow reader that keeps taking gets the process's last lines.
   */
  async flush(ms: number, most: number = 10 * ms): Promise<void> {
    const end = performance.now() + most;
    while (this.#writing) {
      const before = this.#taken;
      const wait = Math.min(ms, end - performance.now());
      if (wait <= 0) return;
      this.#idle ??= Promise.withResolvers();
      let id: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#idle.promise,
        new Promise<void>((resolve) => id = setTimeout(resolve, wait)),
      ]);
      clearTimeout(id);
      if (this.#taken === before) return;
    }
  }

  /**
   * Writes what is queued synchronously, then `last` if given, for an exit
   * that cannot wait (a fatal configuration error at start, inside a
   * constructor). A write already in flight is left to finish on its own;
   * `last` bypasses the queue, so it cannot be that write. Unlike everything
   * else here, it blocks while the pipe is full, as `console.error` would:
   * use it only before the process serves anything.
   */
  flushSync(last?: string): void {
    if (!this.#writeSync || this.#broken) return;
    const rest = this.#queue.splice(0);
    if (last !== undefined) rest.push(encoder.encode(last));
    try {
      for (let bytes of rest) {
        while (bytes.length > 0) bytes = bytes.subarray(this.#writeSync(bytes));
      }
    } catch {
      this.#broken = true;
    }
  }

  /** Queues one line that counts the lines dropped so far, if any. */
  sayDropped(): void {
    if (this.#dropped === 0) return;
    const n = this.#dropped;
    this.#dropped = 0;
    this.write(
      `[graceful] ${n} line(s) dropped: stderr was not being read\n`,
      true,
    );
  }

  /**
   * What waits, up to {@linkcode BATCH} bytes (at least one line), taken off
   * the queue as one write: one trip to Deno's blocking pool. Larger writes
   * would hold the queue's room longer, and lines would be dropped meanwhile.
   */
  #next(): Uint8Array {
    let n = 1;
    let size = this.#queue[0].length;
    while (
      n < this.#queue.length && size + this.#queue[n].length <= BATCH
    ) size += this.#queue[n++].length;
    const parts = this.#queue.splice(0, n);
    if (n === 1) return parts[0];
    const all = new Uint8Array(size);
    parts.reduce((at, part) => (all.set(part, at), at + part.length), 0);
    return all;
  }

  async #pump() {
    this.#writing = true;
    while (this.#queue.length > 0) {
      let bytes = this.#next();
      while (bytes.length > 0) {
        let written: number;
        try {
          written = await this.#write(bytes);
        } catch {
          // Closed or broken: nothing will ever be written again.
          this.#broken = true;
          this.#queue = [];
          this.#queued = 0;
          break;
        }
        this.#queued -= written;
        this.#taken += written;
        bytes = bytes.subarray(written);
      }
      if (this.#queue.length === 0) this.sayDropped();
    }
    this.#writing = false;
    this.#idle?.resolve();
    this.#idle = undefined;
  }
}

/** The process's stderr, as a {@linkcode Sink}. */
export const stderr: Sink = new Sink(
  (bytes) => Deno.stderr.write(bytes),
  QUEUE_LIMIT,
  (bytes) => Deno.stderr.writeSync(bytes),
);

/**
 * How long the process waits for stderr to take its last lines while it
 * takes none (a stalled pipe); at most 10 times that in all.
 */
export const EXIT_FLUSH_MS = 500;
/** The same, when a second signal forces the exit. */
export const FORCED_FLUSH_MS = 100;

/**
 * Writes `line` to stderr synchronously, after what is queued (see
 * {@linkcode Sink.flushSync}), and exits with `code` at once: for fatal
 * errors found at start, inside a constructor, where nothing can be awaited.
 */
export function exitAtStart(code: number, line: string): never {
  stderr.flushSync(line.endsWith("\n") ? line : `${line}\n`);
  Deno.exit(code);
}

/**
 * Exits with `code` once stderr has taken what is queued, or once it has
 * taken nothing for `ms`, at most `10 × ms` in all (a stalled pipe must not
 * hold the exit; a slow one still gets the last lines).
 */
export async function exitFlushed(
  code: number,
  ms: number = EXIT_FLUSH_MS,
): Promise<never> {
  stderr.sayDropped();
  await stderr.flush(ms);
  Deno.exit(code);
}
