/** Every example, run as a real process and stopped with a real signal. */
import assert from "node:assert/strict";
import { assertCloses, Conn, get, Proc } from "./_helpers.ts";

async function example(name: string): Promise<{ proc: Proc; port: number }> {
  const path = new URL(`../examples/${name}`, import.meta.url).pathname;
  const proc = new Proc([
    "run",
    "--allow-net",
    "--allow-read",
    "--allow-env",
    path,
    "0",
  ]);
  const m = await proc.waitFor(/listening on http:\/\/[^:]+:(\d+)\//, 120_000);
  return { proc, port: Number(m[1]) };
}

Deno.test("example plain: in-flight request survives SIGTERM, health flips", async () => {
  const { proc, port } = await example("plain.ts");
  await using _ = proc;
  assert.equal((await get(port, "/healthz")).status, 200);
  const conn = await Conn.open(port);
  const pending = conn.request("/?ms=400");
  await proc.waitFor(/GET \/\?ms=400/);
  proc.kill("SIGTERM");
  await proc.waitFor(/still accepting for 500 ms/);
  const health = await get(port, "/healthz");
  assert.equal(health.status, 503);
  assert.equal(health.body, "draining\n");
  const res = await pending;
  conn.close();
  assert.equal(res.status, 200);
  assert.equal(res.body, "hello after 400 ms\n");
  assert.equal((await proc.status).code, 0);
});

Deno.test("example hono: a Hono app drains like any handler", async () => {
  const { proc, port } = await example("hono.ts");
  await using _ = proc;
  assert.equal((await get(port, "/")).body, "hello from hono\n");
  const conn = await Conn.open(port);
  const pending = conn.request("/slow");
  await proc.waitFor(/<-- GET \/slow/);
  proc.kill("SIGINT");
  const res = await pending;
  conn.close();
  assert.equal(res.status, 200);
  assert.equal(res.body, "slow hono\n");
  assertCloses(res.headers);
  assert.equal((await proc.status).code, 0);
});

Deno.test("example database: the pool closes after the last query, not before", async () => {
  const { proc, port } = await example("database.ts");
  await using _ = proc;
  const conn = await Conn.open(port);
  const pending = conn.request("/");
  await proc.waitFor(/query: select 1/);
  proc.kill("SIGTERM");
  const res = await pending;
  conn.close();
  assert.equal(res.body, "result of select 1\n");
  assert.equal((await proc.status).code, 0);
  // The hook closed the pool after the query was done, not before.
  const done = proc.stdout.indexOf("query done: select 1");
  const closed = proc.stdout.indexOf("database pool closed");
  assert.ok(done >= 0 && closed > done, proc.stdout);
});

Deno.test("example sse: clients get a last event and a normal end of stream", async () => {
  const { proc, port } = await example("sse.ts");
  await using _ = proc;
  const conn = await Conn.open(port);
  await conn.send("/events");
  let first!: () => void;
  const started = new Promise<void>((r) => (first = r));
  const stream = conn.read(() => first());
  await started;
  proc.kill("SIGTERM");
  const res = await stream;
  conn.close();
  assert.match(res.body, /^retry: 100\n\nid: (\d+)\ndata: \{"tick":\1,/);
  assert.match(res.body, /event: bye\ndata: server restarting\n\n$/);
  assert.equal((await proc.status).code, 0);
});

Deno.test("example websocket: clients get a last message and close code 1012", async () => {
  const { proc, port } = await example("websocket.ts");
  await using _ = proc;
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  const messages: string[] = [];
  const hello = Promise.withResolvers<void>();
  ws.onmessage = (e) => {
    messages.push(e.data);
    hello.resolve();
  };
  ws.onerror = () => hello.reject(new Error("websocket failed"));
  await hello.promise;
  const closed = new Promise<CloseEvent>((resolve) => (ws.onclose = resolve));
  proc.kill("SIGTERM");
  const event = await closed;
  assert.deepEqual(messages, [
    `hello ${proc.pid}`,
    "server restarting, reconnect shortly",
  ]);
  assert.equal(event.code, 1012);
  assert.equal(event.wasClean, true);
  assert.equal((await proc.status).code, 0);
});
