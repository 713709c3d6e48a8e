/** The non-blocking stderr queue, over a fake write that can stall. */
import assert from "node:assert/strict";
import { QUEUE_LIMIT, Sink } from "../../lifecycle/_stderr.ts";

const decoder = new TextDecoder();

/** A write that stalls until `release()`, then takes `step` bytes a call. */
function pipe(step = Infinity) {
  const written: string[] = [];
  let gate = Promise.withResolvers<void>();
  let open = true;
  return {
    written,
    stall() {
      open = false;
      gate = Promise.withResolvers();
    },
    release() {
      open = true;
      gate.resolve();
    },
    write: async (bytes: Uint8Array) => {
      if (!open) await gate.promise;
      const n = Math.min(step, bytes.length);
      written.push(decoder.decode(bytes.subarray(0, n)));
      return n;
    },
  };
}

Deno.test("stderr sink: lines are written whole and in order, even when the pipe takes them in parts", async () => {
  const p = pipe(3);
  const sink = new Sink(p.write);
  sink.write("first line\n");
  sink.write("second\n", true);
  sink.write("third\n");
  await sink.flush(1000);
  assert.equal(p.written.join(""), "first line\nsecond\nthird\n");
});

Deno.test("stderr sink: a stalled pipe never blocks the caller; past the limit lines are dropped, counted, and the count is said once it drains", async () => {
  const p = pipe();
  const sink = new Sink(p.write, 20);
  p.stall();
  sink.write("0123456789\n"); // in flight, stalled
  const start = performance.now();
  for (let i = 0; i < 1000; i++) sink.write(`line ${i}\n`);
  assert.ok(performance.now() - start < 500, "write() returned at once");
  assert.equal(sink.dropped, 999);
  const dropped = sink.dropped;
  p.release();
  await sink.flush(1000);
  const text = p.written.join("");
  // 11 bytes in flight and "line 0\n" make 18 of the 20: the rest dropped.
  assert.match(text, /^0123456789\nline 0\n\[graceful\]/);
  assert.match(
    text,
    new RegExp(
      `\\[graceful\\] ${dropped} line\\(s\\) dropped: stderr was not being read\\n$`,
    ),
  );
  assert.equal(sink.dropped, 0);
});

Deno.test("stderr sink: a kept line (the worker protocol) is queued past the limit", async () => {
  const p = pipe();
  const sink = new Sink(p.write, 8);
  p.stall();
  sink.write("0123456789\n");
  sink.write("dropped\n");
  sink.write("graceful: ready x 1\n", true);
  p.release();
  await sink.flush(1000);
  assert.match(p.written.join(""), /graceful: ready x 1\n/);
  assert.doesNotMatch(p.written.join(""), /^dropped/m);
});

Deno.test("stderr sink: flush() is bounded when the pipe never drains", async () => {
  const p = pipe();
  const sink = new Sink(p.write);
  p.stall();
  sink.write("stuck\n");
  const start = performance.now();
  await sink.flush(50);
  const took = performance.now() - start;
  assert.ok(took >= 40 && took < 1000, `flush took ${took} ms`);
  p.release();
  await sink.flush(1000);
});

Deno.test("stderr sink: flush() waits while a slow pipe keeps taking, up to its cap, so the last line is written", async () => {
  const written: string[] = [];
  // Takes 10 bytes every 20 ms: slower than one flush interval in all.
  let slow = true;
  const sink = new Sink(async (bytes) => {
    if (!slow) {
      written.push(decoder.decode(bytes));
      return bytes.length;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    const n = Math.min(10, bytes.length);
    written.push(decoder.decode(bytes.subarray(0, n)));
    return n;
  });
  sink.write("x".repeat(200) + "\n");
  sink.write("the last line\n");
  const start = performance.now();
  await sink.flush(50, 5000);
  assert.ok(performance.now() - start > 100, "waited past one interval");
  assert.match(written.join(""), /the last line\n$/);
  // The cap holds however long it keeps taking.
  sink.write("y".repeat(10_000) + "\n");
  const capped = performance.now();
  await sink.flush(50, 200);
  const took = performance.now() - capped;
  assert.ok(took >= 150 && took < 1000, `flush took ${took} ms`);
  slow = false;
  await sink.flush(1000);
  assert.match(written.join(""), /y\n$/);
});

Deno.test("stderr sink: a broken pipe (the write throws) drops everything after, quietly", async () => {
  let calls = 0;
  const sink = new Sink(() => {
    calls++;
    return Promise.reject(new Error("EPIPE"));
  });
  sink.write("a\n");
  await sink.flush(100);
  sink.write("b\n");
  await sink.flush(100);
  assert.equal(calls, 1);
});

Deno.test("stderr: flushSync writes what is queued behind a write in flight, in order, once", () => {
  const written: string[] = [];
  const decoder = new TextDecoder();
  const sink = new Sink(
    () => new Promise<number>(() => {}), // the first write never ends
    QUEUE_LIMIT,
    (bytes) => {
      written.push(decoder.decode(bytes.subarray(0, 2)));
      return Math.min(bytes.length, 2); // partial writes
    },
  );
  sink.write("a\n");
  sink.write("bcd\n");
  sink.write("e\n");
  sink.flushSync();
  assert.deepEqual(written, ["bc", "d\n", "e\n"]);
  sink.flushSync();
  assert.equal(written.length, 3, "nothing twice");
});

Deno.test("stderr: flushSync writes its last line after the queue, never as the write in flight", () => {
  const written: string[] = [];
  const decoder = new TextDecoder();
  const sink = new Sink(
    () => new Promise<number>(() => {}),
    QUEUE_LIMIT,
    (bytes) => (written.push(decoder.decode(bytes)), bytes.length),
  );
  sink.write("a\n");
  sink.write("b\n");
  sink.flushSync("fatal\n");
  assert.deepEqual(written, ["b\n", "fatal\n"]);
});

Deno.test("stderr sink: lines queued while a write is in flight go out in one write (one trip to Deno's blocking pool)", async () => {
  const p = pipe();
  const sink = new Sink(p.write);
  p.stall();
  sink.write("first\n");
  sink.write("second\n");
  sink.write("third\n");
  p.release();
  await sink.flush(1000);
  assert.deepEqual(p.written, ["first\n", "second\nthird\n"]);
});

Deno.test("stderr sink: one write takes at most 64 KiB of what waits: a larger one would hold the queue's room while it lasts, and lines would be dropped meanwhile", async () => {
  const p = pipe();
  const sink = new Sink(p.write);
  p.stall();
  const line = "y".repeat(40 * 1024 - 1) + "\n";
  for (let i = 0; i < 4; i++) sink.write(line);
  sink.write("short\n");
  p.release();
  await sink.flush(1000);
  assert.deepEqual(
    p.written.map((text) => text.length),
    [40 * 1024, 40 * 1024, 40 * 1024, 40 * 1024 + 6],
  );
});
