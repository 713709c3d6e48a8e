/**
 * A first stop signal runs every drainer's `stopAccepting` before anything
 * else of the stop (shutdown.ts): if one stopped something, the signal's
 * line and the drainers wait for the promise it returned (a server alone:
 * until Deno has closed its idle connections), at most 100 ms. Not for
 * `start()`, nor for a signal that joins a stop under way. The signal
 * listener is captured, not sent: nothing leaves the process.
 */
import assert from "node:assert/strict";
import { Shutdown } from "../../shutdown.ts";

/**
 * A shutdown whose SIGUSR2 listener is handed back, and what happened;
 * `stops`: what its drainer's `stopAccepting` returns.
 */
function captured(stops: Promise<unknown> | undefined) {
  const add = Deno.addSignalListener;
  let listener: (() => void) | undefined;
  Deno.addSignalListener = (_signal, fn) => void (listener = fn);
  const events: string[] = [];
  const log = (line: string) => void events.push(`line: ${line}`);
  const shutdown = new Shutdown({
    signals: ["SIGUSR2"],
    exit: false,
    logger: { info: log, warn: log, error: log },
  });
  shutdown.addDrainer(() => {
    events.push("drain");
    return Promise.resolve();
  }, {
    stopAccepting: () => {
      events.push("stopAccepting");
      return stops;
    },
  });
  try {
    shutdown.listen();
  } finally {
    Deno.addSignalListener = add;
  }
  const remove = Deno.removeSignalListener;
  return {
    shutdown,
    events,
    signal: () => listener!(),
    [Symbol.dispose]: () => {
      Deno.removeSignalListener = () => {};
      shutdown[Symbol.dispose]();
      Deno.removeSignalListener = remove;
    },
  };
}

const turn = () => new Promise((r) => setTimeout(r, 0));

Deno.test("shutdown: a first signal runs stopAccepting first; when it stopped something, the line and the drainers wait for its promise", async () => {
  const acted = Promise.withResolvers<void>();
  using c = captured(acted.promise);
  c.signal();
  assert.deepEqual(c.events, ["stopAccepting"]);
  assert.equal(c.shutdown.started, true, "started while held");
  await turn();
  assert.deepEqual(c.events, ["stopAccepting"], "waits for the promise");
  acted.resolve();
  await turn();
  assert.match(c.events[1], /^line: SIGUSR2 received: shutting down/);
  assert.equal(c.events[2], "drain");
  await c.shutdown.start();
});

Deno.test("shutdown: a stopAccepting promise that never settles holds the stop 100 ms, no longer", async () => {
  using c = captured(new Promise(() => {}));
  const start = performance.now();
  c.signal();
  while (!c.events.includes("drain") && performance.now() - start < 5000) {
    await turn();
  }
  const took = performance.now() - start;
  assert.ok(took >= 95 && took < 2000, `${took} ms`);
  assert.match(c.events[1], /^line: SIGUSR2 received/);
  await c.shutdown.start();
});

Deno.test("shutdown: when stopAccepting stopped nothing, the stop goes on in the signal's own task", async () => {
  using c = captured(undefined);
  c.signal();
  assert.equal(c.events[0], "stopAccepting");
  assert.match(c.events[1], /^line: SIGUSR2 received/);
  assert.equal(c.events[2], "drain");
  await c.shutdown.start();
});

Deno.test("shutdown: stopAccepting is not called for start(), nor for a signal joining a stop under way", async () => {
  using c = captured(Promise.resolve());
  const done = c.shutdown.start("stop command");
  c.signal();
  await done;
  assert.ok(!c.events.includes("stopAccepting"), c.events.join(", "));
  assert.ok(c.events.some((e) => /already shutting down/.test(e)));
});

Deno.test("shutdown: a copy of the first signal while the stop is held is said after the stop's own line", async () => {
  const acted = Promise.withResolvers<void>();
  using c = captured(acted.promise);
  c.signal();
  c.signal(); // the group's copy (a terminal and `deno task` both send it)
  await turn();
  assert.deepEqual(c.events, ["stopAccepting"]);
  acted.resolve();
  await turn();
  const lines = c.events.filter((e) => e.startsWith("line: "));
  assert.match(lines[0], /SIGUSR2 received: shutting down/);
  assert.match(lines[1], /SIGUSR2 again within 200 ms/);
  await c.shutdown.start();
});
