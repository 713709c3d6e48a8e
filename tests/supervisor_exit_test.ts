/**
 * The supervisor's exit code reflects its workers' drains: systemd and CI
 * must not record a clean stop when a worker cut a request or a hook failed.
 */
import assert from "node:assert/strict";
import { Conn, freePort, inFlight, superviseScript } from "./_helpers.ts";

const APP = new URL("./fixtures/app.ts", import.meta.url).pathname;

Deno.test("supervisor exit: a worker whose deadline cut a request makes the supervisor exit 124, with a line naming it", async () => {
  const port = freePort();
  const proc = await superviseScript([
    APP,
    JSON.stringify({ port, drainTimeout: 300 }),
  ]);
  await using _ = proc;
  const pid = proc.stderr.match(/worker pid (\d+) \(generation 1\) ready/)![1];
  const conn = await Conn.open(port);
  const pending = conn.request("/slow?ms=3000");
  await inFlight(proc, "/slow");
  proc.kill("SIGTERM");
  assert.equal((await pending).status, 503);
  conn.close();
  assert.equal((await proc.status).code, 124, proc.output());
  assert.match(
    proc.stderr,
    new RegExp(
      `worker pid ${pid} \\(generation 1\\) did not drain cleanly \\(exit code 124: requests were cut at the drain deadline\\): the supervisor exits with 124`,
    ),
  );
});

Deno.test("supervisor exit: a worker whose hook failed makes the supervisor exit 1", async () => {
  const port = freePort();
  const proc = await superviseScript([
    APP,
    JSON.stringify({ port, hooks: [{ name: "db", fail: true }] }),
  ]);
  await using _ = proc;
  proc.kill("SIGTERM");
  assert.equal((await proc.status).code, 1, proc.output());
  assert.match(proc.stderr, /exit code 1: a cleanup hook failed/);
});

Deno.test("supervisor exit: workers that drained cleanly after restarts: exit 0", async () => {
  const port = freePort();
  const proc = await superviseScript([APP, JSON.stringify({ port })], {
    flags: ["--workers", "2"],
  });
  await using _ = proc;
  proc.kill("SIGHUP");
  await proc.waitFor(/generation 2 serving in/);
  proc.kill("SIGTERM");
  assert.equal((await proc.status).code, 0, proc.output());
  assert.doesNotMatch(proc.stderr, /did not drain cleanly/);
});
