/**
 * What Deno 2.9.6 does by itself, beside `serve()`, on the README's
 * scenarios: `Deno.serve` with `shutdown()` on SIGTERM (Deno's docs' recipe)
 * and `deno serve` (which drains on SIGTERM since 2.9.0), one handler each.
 * The README's table "What Deno does by itself" is these assertions.
 */
import assert from "node:assert/strict";
import { Conn, exited, freePort, inFlight, payload, Proc } from "./_helpers.ts";

const APP = new URL("./fixtures/builtin_app.ts", import.meta.url).pathname;
type How = "by hand" | "deno serve" | "serve()";

function launch(how: How, port: number): Proc {
  return how === "deno serve"
    ? new Proc([
      "serve",
      "--allow-net",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      APP,
    ])
    : new Proc([
      "run",
      "--allow-net",
      APP,
      how === "by hand" ? "by-hand" : "serve",
      String(port),
    ]);
}

/** One request in flight at SIGTERM: its answer, the exit and its time. */
async function atSigterm(how: How, path: string, body?: Uint8Array) {
  const port = freePort();
  const proc = launch(how, port);
  await using _ = proc;
  await proc.waitFor(/listening|Listening/);
  const conn = await Conn.open(port);
  const answer = conn.request(path, {}, body).then(
    (res) => `${res.status} ${res.body.trim()}`,
    () => "no answer",
  );
  await inFlight(proc, path);
  const start = performance.now();
  proc.kill("SIGTERM");
  // Anything still running 4 s after the signal has no deadline.
  const limit = setTimeout(() => proc.kill("SIGKILL"), 4000);
  const { code, signal } = await exited(proc, start);
  clearTimeout(limit);
  conn.close();
  return {
    answer: await answer,
    exit: signal === "SIGKILL" ? "killed at 4 s" : code,
  };
}

const HOWS: How[] = ["by hand", "deno serve", "serve()"];

Deno.test("what Deno does by itself: a request in flight at SIGTERM finishes under all three", async () => {
  for (const how of HOWS) {
    assert.deepEqual(await atSigterm(how, "/slow"), {
      answer: "200 done",
      exit: 0,
    }, how);
  }
});

Deno.test("what Deno does by itself: a body not read yet at SIGTERM is lost by hand and under deno serve (500), read whole under serve()", async () => {
  const body = payload(64 * 1024);
  const lost = {
    answer:
      "500 read failed: BadResource: Cannot read body as underlying resource unavailable",
    exit: 0,
  };
  assert.deepEqual(await atSigterm("by hand", "/upload", body), lost);
  assert.deepEqual(await atSigterm("deno serve", "/upload", body), lost);
  assert.deepEqual(await atSigterm("serve()", "/upload", body), {
    answer: "200 read 65536",
    exit: 0,
  });
});

Deno.test("what Deno does by itself: no deadline by hand or under deno serve (a handler that never answers keeps the process); serve() answers 503 at drainTimeout and exits 124", async () => {
  for (const how of ["by hand", "deno serve"] as const) {
    assert.deepEqual(await atSigterm(how, "/never"), {
      answer: "no answer",
      exit: "killed at 4 s",
    }, how);
  }
  assert.deepEqual(await atSigterm("serve()", "/never"), {
    answer: "503 server shutting down",
    exit: 124,
  });
});
