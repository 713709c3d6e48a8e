/**
 * The body hold (server/_body_hold.ts) over plain Requests: which requests
 * hold Deno's shutdown() back, when the wait ends, and late requests.
 */
import assert from "node:assert/strict";
import { BodyHold } from "../../server/_body_hold.ts";

const post = (body: BodyInit | null = "hello") =>
  new Request("http://localhost/", { method: "POST", body });

Deno.test("body hold: an unread body holds; a read one, none, or a GET does not", async () => {
  const hold = new BodyHold();
  const unread = post();
  const read = post();
  await read.text();
  const get = new Request("http://localhost/");
  assert.equal(hold.holding([unread, read, post(null), get]), 1);
  const half = post(new ReadableStream({ pull() {} }));
  const reader = half.body!.getReader();
  void reader.read();
  assert.equal(hold.holding([half]), 1, "a read under way still holds");
});

Deno.test("body hold: released once the last body is read (looked at every few ms), or false at the deadline", async () => {
  const hold = new BodyHold();
  const request = post();
  const never = Promise.withResolvers<void>();
  const released = hold.released(() => [request], never.promise);
  await request.text();
  assert.equal(await released, true);

  const stuck = post();
  const deadline = Promise.withResolvers<void>();
  const cut = hold.released(() => [stuck], deadline.promise);
  deadline.resolve();
  assert.equal(await cut, false);
});

Deno.test("body hold: a request leaving the list releases at once (changed), not at the next look", async () => {
  const hold = new BodyHold();
  let running = [post()];
  const released = hold.released(() => running, new Promise(() => {}));
  running = [];
  hold.changed();
  assert.equal(await released, true);
});

Deno.test("body hold: a stream answered over an unread body is an echo until its response completes", async () => {
  const hold = new BodyHold();
  const completed = Promise.withResolvers<void>();
  // (A stream of its own, as Deno's request bodies are: a string body
  // keeps its source, and is not a stream to Deno's response record.)
  const echoed = post(new ReadableStream({ pull() {} }));
  hold.answered(echoed, new Response(echoed.body), completed.promise);
  assert.equal(hold.holding([]), 1);
  // Not echoes: a static answer, a stream over a body already read, a GET.
  hold.answered(post(), new Response("ok"), completed.promise);
  const read = post();
  await read.text();
  hold.answered(read, new Response(new ReadableStream()), completed.promise);
  hold.answered(
    new Request("http://localhost/"),
    new Response(new ReadableStream()),
    completed.promise,
  );
  assert.equal(hold.holding([]), 1);
  completed.resolve();
  await completed.promise;
  await Promise.resolve();
  assert.equal(hold.holding([]), 0);
});

Deno.test("body hold: a late request gets its body read whole, or undefined if it is gone", async () => {
  const hold = new BodyHold();
  const copy = await hold.late(post("abc"));
  assert.equal(copy?.method, "POST");
  assert.equal(await copy?.text(), "abc");
  const gone = post(
    new ReadableStream({ start: (c) => c.error(new Error("taken")) }),
  );
  assert.equal(await hold.late(gone), undefined);
});
