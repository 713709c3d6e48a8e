/**
 * Crash → drain: an uncaught error or unhandled rejection outside the
 * handlers, while a request is in flight, is logged and starts the
 * graceful shutdown; the request gets its answer, the exit code is 70. An
 * app's own listener that calls preventDefault() keeps the process
 * serving; `drainOnCrash: false` leaves it to Deno (the process dies).
 */
import assert from "node:assert/strict";
import { exited, freePort, get, inFlight, Proc } from "./_helpers.ts";

const APP = new URL("./fixtures/crash_app.ts", import.meta.url).pathname;

async function crashWhileServing(mode: string) {
  const port = freePort();
  const proc = new Proc(["run", "--allow-net", APP, mode, String(port)]);
  await proc.waitFor(/listening/);
  const response = get(port, "/slow").catch((error: Error) => error);
  await inFlight(proc, "/slow");
  return { proc, port, response };
}

for (
  const [mode, kind, what] of [
    ["throw", "uncaught error", "boom in a timer"],
    ["reject", "unhandled rejection", "boom in a task"],
  ]
) {
  Deno.test(`crash: an ${kind} outside the handlers drains: the request in flight gets 200, exit 70`, async () => {
    const { proc, response } = await crashWhileServing(mode);
    await using _ = proc;
    const res = await response;
    assert.ok(!(res instanceof Error), `${res}\n${proc.output()}`);
    assert.equal(res.status, 200, proc.output());
    assert.equal(res.body, "done\n");
    const { code } = await exited(proc, 0);
    assert.equal(code, 70, proc.output());
    assert.match(
      proc.stderr,
      new RegExp(`${kind} outside the handlers: Error: ${what}\\n`),
    );
    assert.match(
      proc.stderr,
      /\nshutting down gracefully ends with exit code 70\n/,
    );
    assert.match(proc.stderr, /drained .*: 1 request\(s\) completed/);
    assert.match(proc.stderr, /exit code 70\n$/);
  });
}

Deno.test("crash: an app's own error listener that calls preventDefault() keeps the process serving", async () => {
  const { proc, port, response } = await crashWhileServing("handled");
  await using _ = proc;
  await proc.waitFor(/app handled: Uncaught Error: boom in a timer/);
  assert.equal((await response as { status: number }).status, 200);
  assert.equal((await get(port)).body, "ok\n");
  assert.doesNotMatch(proc.stderr, /outside the handlers|draining/);
  proc.kill("SIGTERM");
  assert.equal((await exited(proc, 0)).code, 0, proc.output());
});

Deno.test("crash: drainOnCrash: false leaves it to Deno: the process dies at once, the request gets nothing", async () => {
  const { proc, response } = await crashWhileServing("off");
  await using _ = proc;
  const res = await response;
  assert.ok(res instanceof Error, `answered: ${JSON.stringify(res)}`);
  const { code } = await exited(proc, 0);
  assert.equal(code, 1, proc.output());
  assert.doesNotMatch(proc.stderr, /outside the handlers/);
});
