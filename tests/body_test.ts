/**
 * Request bodies across the drain: every request in flight gets its whole
 * body, byte for byte, whatever state the body is in when the signal comes.
 * Each case compares the SHA-256 of what was sent with what the handler read.
 */
import assert from "node:assert/strict";
import {
  assertCloses,
  Conn,
  digest,
  exited,
  inFlight,
  payload,
  type Proc,
  start,
} from "./_helpers.ts";
import { closesKeepAliveAfterPost } from "../lifecycle/_deno.ts";

const encoder = new TextEncoder();
const ascii = (n: number) =>
  "abcdefghijklmnopqrstuvwxyz".repeat(n / 26 + 1).slice(0, n);

/** What went wrong in a drain that should have been clean. */
function assertClean(proc: Proc, read = "") {
  const all = proc.output();
  assert.doesNotMatch(all, /read failed|broken by the drain|BadResource/);
  // Reading req.signal would turn on Deno's legacy abort and its warning.
  // (Deno's own clone() reads it: raw Deno.serve prints it too.)
  if (!read.includes("clone")) {
    assert.doesNotMatch(all, /legacy behavior|deprecat/i);
  }
}

interface Case {
  body: Uint8Array;
  read?: string;
  wait?: number;
  headers?: Record<string, string>;
  /** What the handler should have read, if not `body` itself. */
  expected?: Uint8Array;
  options?: Record<string, unknown>;
}

/** Sends one POST, signals once the handler runs, checks the body arrived whole. */
async function acrossDrain(
  {
    body,
    read = "arrayBuffer",
    wait = 600,
    headers = {},
    expected = body,
    options = {},
  }: Case,
) {
  const { proc, port } = await start(options);
  await using _ = proc;
  const conn = await Conn.open(port);
  const response = conn.request(
    `/upload?wait=${wait}&read=${read}`,
    headers,
    body,
  );
  await inFlight(proc, "/upload");
  proc.kill("SIGTERM");
  const res = await response;
  conn.close();
  assert.equal(res.status, 200, proc.output());
  assert.equal(res.body, await digest(expected));
  assertCloses(res.headers);
  const { code } = await exited(proc, 0);
  assert.equal(code, 0, proc.output());
  assert.match(proc.stderr, /drained .*: 1 request\(s\) completed\n/);
  assertClean(proc, read);
}

for (const size of [0, 1024, 64 * 1024, 10 * 1024 * 1024]) {
  Deno.test(`body: a ${size} B POST read 600 ms after SIGTERM arrives whole`, () =>
    acrossDrain({ body: payload(size) }));
}

const sized = 64 * 1024;
for (
  const read of ["text", "arrayBuffer", "bytes", "blob", "stream", "clone"]
) {
  Deno.test(`body: ${read}() of a 64 KiB POST after SIGTERM reads every byte`, () =>
    acrossDrain({
      body: read === "text" ? encoder.encode(ascii(sized)) : payload(sized),
      read,
      wait: 300,
    }));
}

Deno.test("body: json() of a 64 KiB POST after SIGTERM", () => {
  const json = JSON.stringify({ d: ascii(sized) });
  return acrossDrain({
    body: encoder.encode(json),
    read: "json",
    wait: 300,
    headers: { "content-type": "application/json" },
  });
});

Deno.test("body: formData() of a 64 KiB form after SIGTERM", () => {
  const value = ascii(sized);
  return acrossDrain({
    body: encoder.encode(`f=${value}`),
    expected: encoder.encode(value),
    read: "formData",
    wait: 300,
    headers: { "content-type": "application/x-www-form-urlencoded" },
  });
});

Deno.test("body: a stream half read when SIGTERM comes is read to the end", async () => {
  const body = payload(4 * 1024 * 1024);
  const { proc, port } = await start();
  await using _ = proc;
  const conn = await Conn.open(port);
  const response = conn.request("/upload?read=partial&then=500", {}, body);
  await proc.waitFor(/first chunk read/);
  proc.kill("SIGTERM");
  const res = await response;
  conn.close();
  assert.equal(res.status, 200, proc.output());
  assert.equal(res.body, await digest(body));
  assert.equal((await proc.status).code, 0, proc.output());
  assertClean(proc);
});

Deno.test("body: a 20 MiB upload at 2 MiB/s across SIGTERM arrives whole; meanwhile new connections are answered with Connection: close", async () => {
  const body = payload(20 * 1024 * 1024);
  const { proc, port } = await start({ drainTimeout: 30_000 });
  await using _ = proc;
  const conn = await Conn.open(port);
  const response = conn.request("/upload", {}, body, 2 * 1024 * 1024);
  await inFlight(proc, "/upload");
  proc.kill("SIGTERM");
  await proc.waitFor(/waiting for 1 request body to be read/);
  // The listener is still open while the body arrives: a newcomer is served
  // and told to go away.
  const late = await Conn.open(port);
  const answer = await late.request("/");
  late.close();
  assert.equal(answer.status, 200);
  assertCloses(answer.headers);
  const res = await response;
  conn.close();
  assert.equal(res.status, 200, proc.output());
  assert.equal(res.body, await digest(body));
  assert.equal((await proc.status).code, 0, proc.output());
  assert.match(proc.stderr, /request bodies read after \d+ ms/);
  assertClean(proc);
});

/**
 * Sends `body` to `path` at `rate` bytes/s, SIGTERM once the handler runs,
 * waits for the drain to say it waits for the body; checks a clean 200 and
 * exit 0 and returns the response body.
 */
async function slowUploadAcrossDrain(
  path: string,
  body: Uint8Array,
  rate: number,
): Promise<string> {
  const { proc, port } = await start({ drainTimeout: 30_000 });
  await using _ = proc;
  const conn = await Conn.open(port);
  const response = conn.request(path, {}, body, rate);
  await inFlight(proc, new URL(path, "http://x").pathname);
  proc.kill("SIGTERM");
  await proc.waitFor(/waiting for 1 request body to be read/);
  const res = await response;
  conn.close();
  assert.equal(res.status, 200, proc.output());
  assert.equal((await proc.status).code, 0, proc.output());
  assertClean(proc, path);
  return res.body;
}

for (const read of ["arrayBuffer", "stream", "clone", "captured"]) {
  Deno.test(`body: ${read} started before the handler's first await, on a slow upload across SIGTERM, arrives whole`, async () => {
    const body = payload(3 * 1024 * 1024);
    const got = await slowUploadAcrossDrain(
      `/upload?wait=none&read=${read}`,
      body,
      1024 * 1024,
    );
    assert.equal(got, await digest(body));
  });
}

for (
  const [path, handler] of [
    ["/echo", "an async handler"],
    ["/echo-sync", "a handler that answers at once (no promise)"],
  ]
) {
  Deno.test(`body: a slow upload echoed back through req.body (Deno's own stream) by ${handler} across SIGTERM is echoed whole`, async () => {
    const text = ascii(1024 * 1024);
    const got = await slowUploadAcrossDrain(
      path,
      encoder.encode(text),
      512 * 1024,
    );
    assert.equal(got.length, text.length);
    assert.ok(got === text, "the echo differs from what was sent");
  });
}

Deno.test("body: req.body taken before the first await and read after SIGTERM is Deno's stream, read whole", () =>
  acrossDrain({
    body: payload(sized),
    read: "stream&take=early",
    wait: 600,
  }));

Deno.test("body: an upload that has not arrived by drainTimeout is cut: 503, the handler's read fails, exit 124", async () => {
  const body = payload(8 * 1024 * 1024);
  const { proc, port } = await start({ drainTimeout: 1000 });
  await using _ = proc;
  const conn = await Conn.open(port);
  // The handler reads 300 ms after the signal; at the deadline it is
  // answered 503, then Deno's shutdown() fails its read.
  const response = conn.request("/upload?wait=300", {}, body, 1024 * 1024);
  await inFlight(proc, "/upload");
  proc.kill("SIGTERM");
  const res = await response.catch((error) => error);
  conn.close();
  // The 503 goes out while the client is still writing: it reads it, or
  // (if the server's close came first) sees the connection end.
  if (!(res instanceof Error)) {
    assert.equal(res.status, 503, proc.output());
    assertCloses(res.headers);
  }
  const { code } = await exited(proc, 0);
  assert.equal(code, 124, proc.output());
  assert.match(
    proc.stderr,
    /deadline of 1000 ms reached on .*: cut 1 request\(s\)\n {2}POST \/upload/,
  );
  await proc.waitFor(
    /read failed: BadResource/,
  );
});

Deno.test("body: several POSTs on one keep-alive connection, the last one across the drain", async () => {
  const { proc, port } = await start();
  await using _ = proc;
  let conn = await Conn.open(port);
  for (const size of [100, 5000, 70_000]) {
    const body = payload(size);
    const res = await conn.request("/upload", {}, body);
    assert.equal(res.body, await digest(body));
    if (closesKeepAliveAfterPost() && res.headers.has("connection")) {
      // Deno 2.8.3 to 2.9.5 close some keep-alive POSTs themselves.
      assertCloses(res.headers);
      conn.close();
      conn = await Conn.open(port);
    } else assert.equal(res.headers.get("connection"), null);
  }
  const body = payload(300_000);
  const response = conn.request("/upload?wait=400", {}, body);
  await inFlight(proc, "/upload", 4);
  proc.kill("SIGTERM");
  const res = await response;
  assert.equal(res.body, await digest(body));
  assertCloses(res.headers);
  assert.ok(await conn.closedByPeer());
  conn.close();
  assert.equal((await proc.status).code, 0, proc.output());
  assertClean(proc);
});

Deno.test("body: server.shutdown() (no signal) keeps the body too", async () => {
  const { proc, port } = await start({ shutdownOnUpload: true });
  await using _ = proc;
  const body = payload(256 * 1024);
  const conn = await Conn.open(port);
  const res = await conn.request("/upload?wait=500", {}, body);
  conn.close();
  assert.equal(res.body, await digest(body));
  assert.equal((await proc.status).code, 0, proc.output());
  assertClean(proc);
});

Deno.test("body: arrayBuffer() after req.body was locked to a reader fails with a TypeError, with or without a drain", async () => {
  const body = payload(64 * 1024);
  for (const drain of [false, true]) {
    const { proc, port } = await start();
    await using _ = proc;
    const conn = await Conn.open(port);
    const response = conn.request("/upload?wait=300&read=locked", {}, body);
    await inFlight(proc, "/upload");
    if (drain) proc.kill("SIGTERM");
    const res = await response;
    conn.close();
    assert.equal(res.status, 500, proc.output());
    assert.match(res.body, /^read failed: TypeError/, `drain: ${drain}`);
    if (drain) {
      assert.equal((await proc.status).code, 0, proc.output());
    } else {
      proc.kill("SIGTERM");
      await proc.status;
    }
  }
});
