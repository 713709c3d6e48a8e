/**
 * The read-ahead's reads, on a byte stream that records every view it is
 * asked to fill: what the drain asks of Deno per read (Deno 2.9's
 * HTTP/1.1 connection keeps a scratch buffer as large as the largest read
 * ever asked of it, so the size asked is memory kept per connection), and
 * what it keeps (one buffer per 64 KiB, handed over without a copy).
 */
import assert from "node:assert/strict";
import {
  Budget,
  chunkReader,
  READ_PIECE,
  readPiece,
  Route,
} from "../server/_read_ahead.ts";

/**
 * A byte stream of `length` bytes (byte i is i % 251) that hands over at
 * most `socket` bytes per pull, as a socket does, and records the size of
 * every view it was asked to fill.
 */
function recordingBody(length: number, socket = 16 * 1024) {
  const asked: number[] = [];
  let sent = 0;
  const stream = new ReadableStream({
    type: "bytes",
    pull(controller) {
      const view = controller.byobRequest!.view as Uint8Array;
      asked.push(view.byteLength);
      const n = Math.min(view.byteLength, socket, length - sent);
      for (let i = 0; i < n; i++) view[i] = (sent + i) % 251;
      sent += n;
      controller.byobRequest!.respond(n);
      if (sent === length) controller.close();
    },
  });
  return { stream, asked };
}

function assertBytes(chunks: Uint8Array[], length: number) {
  let at = 0;
  for (const chunk of chunks) {
    for (const byte of chunk) {
      if (byte !== at % 251) assert.fail(`byte ${at} is ${byte}`);
      at++;
    }
  }
  assert.equal(at, length);
}

Deno.test("read-ahead: a 64 KiB body is asked of Deno in pieces of at most READ_PIECE, kept in one buffer of its size", async () => {
  const { stream, asked } = recordingBody(64 * 1024);
  const ended = Promise.withResolvers<void>();
  const route = new Route(
    chunkReader(stream, 64 * 1024),
    new Budget(1024 * 1024),
    ended.resolve,
  );
  route.pumpAhead();
  await ended.promise;
  // The pump settles a turn after the end is noted.
  await new Promise((resolve) => setTimeout(resolve, 0));
  const whole = route.takeWhole();
  assert.ok(whole, "the read-ahead holds the whole body");
  assert.equal(whole.length, 1);
  assert.equal(whole[0].byteLength, 64 * 1024);
  assert.equal(whole[0].buffer.byteLength, 64 * 1024);
  assertBytes(whole, 64 * 1024);
  assert.ok(asked.length >= 16, `${asked}`);
  assert.ok(asked.every((size) => size <= READ_PIECE), `${asked}`);
});

Deno.test("read-ahead: the handler's whole-body read (rest) fills buffers of up to 64 KiB through views of readPiece(length); a 64 KiB body is one chunk", async () => {
  for (const length of [1, 4096, 64 * 1024, 200 * 1024 + 3]) {
    const { stream, asked } = recordingBody(length, 3000);
    const route = new Route(
      chunkReader(stream, length),
      new Budget(1024 * 1024),
      () => {},
    );
    const chunks = await route.rest();
    assertBytes(chunks, length);
    assert.equal(chunks.length, Math.ceil(length / (64 * 1024)), `${length}`);
    for (const chunk of chunks) {
      // Each chunk fills its own buffer: nothing kept beyond the bytes.
      assert.equal(chunk.byteLength, chunk.buffer.byteLength);
    }
    const piece = readPiece(length);
    assert.ok(asked.every((size) => size <= piece), `${asked}`);
    assert.equal(route.used, true);
  }
});

Deno.test("read-ahead: a streamed read returns one piece in a buffer of that piece's size, not one sized for the rest of the body", async () => {
  const { stream, asked } = recordingBody(64 * 1024, 1000);
  const reader = chunkReader(stream, 64 * 1024);
  const { done, value } = await reader.read();
  assert.equal(done, false);
  assert.equal(value!.byteLength, 1000);
  assert.ok(value!.buffer.byteLength <= READ_PIECE, `${value!.buffer}`);
  assert.deepEqual(asked, [READ_PIECE]);
  await reader.cancel();
});

Deno.test("read-ahead: the size asked grows with the body (1/16 of it, 4 KiB to 64 KiB), known or not", async () => {
  assert.equal(readPiece(0), READ_PIECE);
  assert.equal(readPiece(64 * 1024), READ_PIECE);
  assert.equal(readPiece(128 * 1024), 8 * 1024);
  assert.equal(readPiece(1024 * 1024), 64 * 1024);
  assert.equal(readPiece(1024 ** 3), 64 * 1024);
  const length = 4 * 1024 * 1024;
  for (const known of [length, undefined]) {
    const { stream, asked } = recordingBody(length, 64 * 1024);
    const route = new Route(
      chunkReader(stream, known),
      new Budget(64 * 1024 * 1024),
      () => {},
    );
    assertBytes(await route.rest(), length);
    assert.ok(Math.max(...asked) <= 64 * 1024, `${known}`);
    // Most of a 4 MiB body in 64 KiB reads, not 1 024 reads of 4 KiB.
    assert.ok(asked.length < 200, `${known}: ${asked.length} reads`);
  }
});
