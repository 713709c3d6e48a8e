/**
 * Readiness the app controls (`readyWhen`, `setReady`) on the health path,
 * and a liveness path apart that answers while the process lives, draining
 * included. Under the supervisor a worker reports ready once its app is.
 */
import assert from "node:assert/strict";
import { exited, get, start, supervisorProc } from "./_helpers.ts";
import { serve } from "../mod.ts";

const APP = new URL("./fixtures/app.ts", import.meta.url).pathname;
const probes = { healthPath: "/healthz", livenessPath: "/livez" };

Deno.test("readiness: the health path answers 503 not ready until readyWhen resolves, then 200; requests are served meanwhile; liveness is 200 throughout", async () => {
  const { proc, port } = await start({ ...probes, readyAfter: 1000 });
  await using _ = proc;
  const early = await get(port, "/healthz");
  assert.equal(early.status, 503, proc.output());
  assert.equal(early.body, "not ready\n");
  assert.equal((await get(port, "/livez")).body, "alive\n");
  assert.equal((await get(port, "/")).status, 200);
  await proc.waitFor(/ready after \d+ ms \(readyWhen\)/);
  const ready = await get(port, "/healthz");
  assert.equal(ready.status, 200);
  assert.equal(ready.body, "ok\n");
  proc.kill("SIGTERM");
  assert.equal((await exited(proc, 0)).code, 0, proc.output());
});

Deno.test("readiness: setReady(false) turns the health path to 503 and back; liveness stays 200, with Connection: close while draining", async () => {
  const { proc, port } = await start({ ...probes, drainDelay: 1500 });
  await using _ = proc;
  assert.equal((await get(port, "/set-ready?on=0")).body, "ready false\n");
  assert.equal((await get(port, "/healthz")).status, 503);
  assert.equal((await get(port, "/livez")).status, 200);
  assert.equal((await get(port, "/set-ready?on=1")).body, "ready true\n");
  assert.equal((await get(port, "/healthz")).status, 200);
  proc.kill("SIGTERM");
  await proc.waitFor(/still accepting for 1500 ms/);
  const draining = await get(port, "/healthz");
  assert.equal(draining.status, 503);
  assert.equal(draining.body, "draining\n");
  const alive = await get(port, "/livez");
  assert.equal(alive.status, 200);
  assert.equal(alive.headers.get("connection"), "close");
  assert.equal((await exited(proc, 0)).code, 0, proc.output());
});

Deno.test("readiness: a readyWhen that rejects says why in one line; the health path stays 503", async () => {
  const { proc, port } = await start({
    ...probes,
    readyAfter: 100,
    readyFails: true,
  });
  await using _ = proc;
  await proc.waitFor(
    /not ready: readyWhen rejected: cache warm-up failed; the health path answers 503 until the process ends/,
  );
  assert.equal((await get(port, "/healthz")).status, 503);
  assert.equal((await get(port, "/")).status, 200);
  proc.kill("SIGTERM");
  assert.equal((await exited(proc, 0)).code, 0, proc.output());
});

Deno.test("readiness: bad values name the option", async () => {
  const quiet = {
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    shutdown: false as const,
    logger: false as const,
  };
  assert.throws(
    () => serve({ ...quiet, readyWhen: 5 as never }, () => new Response()),
    /^TypeError: readyWhen: expected a promise, got 5$/,
  );
  assert.throws(
    () =>
      serve(
        { ...quiet, healthPath: "/h", livenessPath: "/h" },
        () => new Response(),
      ),
    /^TypeError: livenessPath: expected another path than healthPath, got "\/h"$/,
  );
  const server = serve(quiet, () => new Response());
  try {
    assert.throws(
      () => server.setReady("yes" as never),
      /setReady: expected true or false, got "yes"/,
    );
  } finally {
    await server.shutdown();
  }
});

function supervised(app: Record<string, unknown>, flags: string[] = []) {
  return supervisorProc([APP, JSON.stringify({ port: 0, ...app })], {
    flags,
    ffi: false,
  });
}

Deno.test("readiness under the supervisor: a worker reports ready only once its readyWhen resolved", async () => {
  const proc = supervised({ readyAfter: 1200 });
  await using _ = proc;
  const [, ms] = await proc.waitFor(
    /worker pid \d+ \(generation 1\) ready in (\d+) ms/,
  );
  assert.ok(Number(ms) >= 1200, `ready in ${ms} ms`);
  assert.match(proc.stderr, /ready after \d+ ms \(readyWhen\)/);
  proc.kill("SIGTERM");
  assert.equal((await exited(proc, 0)).code, 0, proc.output());
});

Deno.test("readiness under the supervisor: a readyWhen that rejects is a start that fails at --ready-timeout, with the reason", async () => {
  const proc = supervised({ readyAfter: 100, readyFails: true }, [
    "--ready-timeout",
    "1500",
  ]);
  await using _ = proc;
  const { code } = await exited(proc, 0);
  assert.equal(code, 1, proc.output());
  assert.match(
    proc.stderr,
    /not ready within 1500 ms[\s\S]*not ready: readyWhen rejected: cache warm-up failed/,
  );
});
