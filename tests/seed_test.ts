/** The seed scenario: the 3 s demo handler survives SIGINT and SIGTERM. */
import assert from "node:assert/strict";
import { assertRefused, Conn, exited, Proc, start } from "./_helpers.ts";

const demo = new URL("../server.ts", import.meta.url).pathname;

async function seed(signal: Deno.Signal) {
  const { proc, port } = await start({}, demo, [
    "--port",
    "0",
    "--host",
    "127.0.0.1",
  ]);
  await using _ = proc;
  const conn = await Conn.open(port);
  const sent = performance.now();
  const response = conn.request("/");
  await proc.waitFor(/GET \/: answering in 3000 ms/);
  proc.kill(signal);
  await proc.waitFor(/draining .* 1 in flight/);
  await assertRefused(port);
  const res = await response;
  const answered = performance.now();
  conn.close();
  assert.equal(res.status, 200);
  assert.equal(res.body, "hello world\n");
  assert.equal(res.headers.get("connection"), "close");
  assert.ok(answered - sent >= 2900, `answered after ${answered - sent} ms`);
  const { code, ms } = await exited(proc, answered);
  assert.equal(code, 0, proc.output());
  // ~25 ms measured; generous bound for a noisy machine.
  assert.ok(ms < 1000, `exited ${ms} ms after the last response`);
}

Deno.test("seed demo: SIGINT lets the 3 s request finish, exits 0", () =>
  seed("SIGINT"));
Deno.test("seed demo: SIGTERM lets the 3 s request finish, exits 0", () =>
  seed("SIGTERM"));

Deno.test("seed demo: idle server exits 0 soon after SIGINT", async () => {
  const { proc } = await start({}, demo, [
    "--port",
    "0",
    "--host",
    "127.0.0.1",
  ]);
  await using _ = proc;
  const signalled = performance.now();
  proc.kill("SIGINT");
  const { code, ms } = await exited(proc, signalled);
  assert.equal(code, 0);
  assert.ok(ms < 1000, `exited ${ms} ms after the signal`);
});

Deno.test("seed demo: port in use exits 1 with one readable line", async () => {
  const blocker = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const proc = new Proc([
      "run",
      "--allow-net",
      demo,
      "--port",
      String(blocker.addr.port),
      "--host",
      "127.0.0.1",
    ]);
    await using _ = proc;
    const { code } = await exited(proc, 0);
    assert.equal(code, 1);
    assert.equal(
      proc.stderr.trim(),
      `server.ts: cannot listen on 127.0.0.1:${blocker.addr.port}: address already in use`,
    );
  } finally {
    blocker.close();
  }
});

Deno.test("seed demo: bad flag exits 2 with usage", async () => {
  const proc = new Proc(["run", "--allow-net", demo, "--port", "http"]);
  await using _ = proc;
  const { code } = await exited(proc, 0);
  assert.equal(code, 2);
  assert.match(
    proc.stderr,
    /^server\.ts: --port: expected a whole number, got "http"\n$/,
  );
});

Deno.test("seed demo: importing server.ts starts nothing", async () => {
  const proc = new Proc([
    "eval",
    `const m = await import(${
      JSON.stringify(demo)
    }); console.log(typeof m.serve);`,
  ]);
  await using _ = proc;
  const { code } = await exited(proc, 0);
  assert.equal(code, 0);
  assert.equal(proc.stdout, "function\n");
});
