/**
 * HTTP/1.0 keep-alive clients (ApacheBench's `-k`) while a server drains or
 * pre-drains: one `Connection: close` header, and the connection closed
 * after the response. Deno 2.9 adds a `connection: keep-alive` of its own
 * to such a response and keeps the connection unless the body cannot be
 * delimited otherwise.
 */
import assert from "node:assert/strict";
import {
  Conn,
  freePort,
  inFlight,
  start,
  superviseScript,
} from "./_helpers.ts";

const APP = new URL("./fixtures/app.ts", import.meta.url).pathname;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A raw connection that writes HTTP/1.0 keep-alive requests. */
async function http10(port: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const reader = conn.readable.getReader();
  let buffered = "";
  return {
    /** Sends `GET path` and reads until the response is whole or EOF. */
    async get(path: string): Promise<{ text: string; eof: boolean }> {
      await conn.write(
        encoder.encode(
          `GET ${path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n`,
        ),
      );
      while (true) {
        const head = buffered.indexOf("\r\n\r\n");
        const length = buffered.match(/content-length: (\d+)/i);
        if (
          head >= 0 && length &&
          buffered.length >= head + 4 + Number(length[1])
        ) {
          const text = buffered.slice(0, head + 4 + Number(length[1]));
          buffered = buffered.slice(text.length);
          return { text, eof: false };
        }
        const { done, value } = await reader.read();
        if (done) {
          const text = buffered;
          buffered = "";
          return { text, eof: true };
        }
        buffered += decoder.decode(value, { stream: true });
      }
    },
    /** True if the server closes the connection within `ms`. */
    async closed(ms = 2000): Promise<boolean> {
      const id = setTimeout(() => reader.cancel(), ms);
      try {
        const { done } = await reader.read();
        return done;
      } catch {
        return true;
      } finally {
        clearTimeout(id);
      }
    },
    close: () => {
      try {
        conn.close();
      } catch {
        // closed
      }
    },
  };
}

/** The response's Connection header values, in order. */
const connectionHeaders = (text: string) =>
  [...text.matchAll(/^connection: *([^\r]*)$/gim)].map((m) =>
    m[1].toLowerCase()
  );

Deno.test("HTTP/1.0 keep-alive: before a drain the connection is kept (Deno's own keep-alive)", async () => {
  const { proc } = await start({});
  await using _ = proc;
  const port = Number(proc.stdout.match(/:(\d+)\//)![1]);
  const c = await http10(port);
  const first = await c.get("/");
  assert.match(first.text, /^HTTP\/1\.0 200/);
  assert.deepEqual(connectionHeaders(first.text), ["keep-alive"]);
  const second = await c.get("/");
  assert.match(second.text, /^HTTP\/1\.0 200/);
  c.close();
});

Deno.test("HTTP/1.0 keep-alive during a drain: one Connection: close, the body whole, then the connection closed", async () => {
  const { proc, port } = await start({ drainDelay: 1500 });
  await using _ = proc;
  const c = await http10(port);
  assert.deepEqual(connectionHeaders((await c.get("/")).text), ["keep-alive"]);
  const slow = await Conn.open(port);
  const pending = slow.request("/slow?ms=500");
  await inFlight(proc, "/slow");
  proc.kill("SIGTERM");
  await proc.waitFor(/draining .* still accepting/);
  const during = await c.get("/");
  assert.match(during.text, /^HTTP\/1\.0 200/);
  assert.deepEqual(connectionHeaders(during.text), ["close"]);
  assert.match(during.text, /\r\n\r\nok \d+\n$/);
  assert.ok(during.eof || await c.closed(), "closed after the response");
  c.close();
  assert.equal((await pending).status, 200);
  slow.close();
  assert.equal((await proc.status).code, 0);
});

Deno.test("HTTP/1.1 client sending keep-alive during a drain: Connection: close and the whole body", async () => {
  const { proc, port } = await start({ drainDelay: 1500 });
  await using _ = proc;
  const conn = await Conn.open(port);
  const slow = await Conn.open(port);
  const pending = slow.request("/slow?ms=500");
  await inFlight(proc, "/slow");
  proc.kill("SIGTERM");
  await proc.waitFor(/draining .* still accepting/);
  const res = await conn.request("/", { connection: "keep-alive" });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("connection"), "close");
  assert.match(res.body, /^ok \d+\n$/);
  conn.close();
  assert.equal((await pending).status, 200);
  slow.close();
  assert.equal((await proc.status).code, 0);
});

Deno.test("HTTP/1.0 keep-alive during a restart's pre-drain: one Connection: close, then the connection closed", async () => {
  const port = freePort();
  // No --allow-ffi: the pre-drain cannot end early, it runs its 3 s.
  const proc = await superviseScript([APP, JSON.stringify({ port })], {
    flags: ["--pre-drain", "3000", "--rollback-window", "100"],
    ffi: false,
  });
  await using _ = proc;
  const c = await http10(port);
  assert.deepEqual(connectionHeaders((await c.get("/")).text), ["keep-alive"]);
  proc.kill("SIGHUP");
  await proc.waitFor(/pre-drain on .*: Connection: close on every response/);
  const during = await c.get("/");
  assert.match(during.text, /^HTTP\/1\.0 200/);
  assert.deepEqual(connectionHeaders(during.text), ["close"]);
  assert.ok(during.eof || await c.closed(), "closed after the response");
  c.close();
  await proc.waitFor(/generation 2 serving in/);
  proc.kill("SIGTERM");
  assert.equal((await proc.status).code, 0);
});
