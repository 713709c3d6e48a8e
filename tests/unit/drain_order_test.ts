/**
 * The drain's first steps (server/_drain.ts) over a fake server: when the
 * listener is shut in the kernel (detach), when Deno's shutdown() closes it,
 * and in which order against the drain signal, alone or under the
 * supervisor, with and without --allow-ffi, a body arriving, a delay;
 * and the first signal's early close (`closeEarly`).
 */
import assert from "node:assert/strict";
import {
  closeEarly,
  type DrainHost,
  mayCloseEarly,
  runDrain,
} from "../../server/_drain.ts";
import type { Traffic } from "../../server/_traffic.ts";
import { silentLogger } from "../../lifecycle/_log.ts";

interface Fake {
  host: DrainHost;
  events: string[];
  lines: string[];
  /** Lets the one body that is arriving arrive. */
  bodyArrives(): void;
}

function fake(
  { ffi = false, quiet = true, bodies = 0, steered = false, queued = () => 0 }:
    {
      ffi?: boolean;
      /** The listener's accept queue, as each look finds it. */
      queued?: () => number;
      /** What the census says, or a function of the time it asks. */
      quiet?: boolean | (() => boolean);
      bodies?: number;
      steered?: boolean;
    } = {},
): Fake {
  const events: string[] = [];
  const lines: string[] = [];
  const closed = Promise.withResolvers<void>();
  const arrived = Promise.withResolvers<void>();
  let pending = bodies;
  let draining = false;
  let listenerClosed = false;
  const traffic = {
    startDraining: () => {
      if (!draining) events.push("draining");
      draining = true;
    },
    get draining() {
      return draining;
    },
    get listenerClosed() {
      return listenerClosed;
    },
    get bodiesPending() {
      return pending;
    },
    bodiesIn: () => arrived.promise.then(() => true),
    webSockets: { mayBeOpen: false, closing: 0 },
    inFlight: 0,
    hasHealthPath: false,
    lastArrival: 0,
    healthRefused: new Promise(() => {}),
    cut: () => [],
    broken: [],
    counts: { drained: 0, lateRefused: 0 },
    closingListener: () => listenerClosed = true,
  } as unknown as Traffic;
  const host: DrainHost = {
    where: "127.0.0.1:1",
    traffic,
    logger: { ...silentLogger, info: (line) => lines.push(line) },
    drainTimeout: 20_000,
    streamsCounted: "events",
    finished: closed.promise,
    abort: () => events.push("abort"),
    detach: () => {
      events.push("detach");
      return ffi ? 1 : 0;
    },
    canDetach: () => ffi,
    dropNew: () => void events.push("dropNew"),
    queued: () => {
      const n = ffi ? queued() : 0;
      if (n > 0) events.push(`queued ${n}`);
      return n;
    },
    closeListener: () => {
      events.push("shutdown");
      closed.resolve();
      return closed.promise;
    },
    quiet: () =>
      ffi ? (typeof quiet === "function" ? quiet() : quiet) : undefined,
    steered: () => steered,
  };
  return {
    host,
    events,
    lines,
    bodyArrives: () => {
      pending = 0;
      arrived.resolve();
    },
  };
}

const NO_DELAY = { max: 0, quiet: undefined };
/** A server alone with --allow-ffi: new attempts dropped, then shut. */
const SHUT_ALONE = ["draining", "dropNew", "detach", "abort", "shutdown"];

Deno.test("drain, alone without --allow-ffi: Deno's shutdown() before the drain signal", async () => {
  const f = fake();
  await runDrain(f.host, "SIGTERM", NO_DELAY, undefined);
  assert.deepEqual(f.events, ["draining", "shutdown", "abort"]);
});

Deno.test("drain, alone with --allow-ffi: the listener is shut at the signal; shutdown() once every connection was told close", async () => {
  const f = fake({ ffi: true, quiet: true });
  const start = performance.now();
  await runDrain(f.host, "SIGTERM", NO_DELAY, undefined);
  assert.deepEqual(f.events, SHUT_ALONE);
  assert.ok(performance.now() - start < 150, "quiet at once: no settle wait");
  assert.ok(
    !f.lines.some((l) => /stopped accepting on/.test(l)),
    "nothing waited for, nothing said",
  );
});

Deno.test("drain, alone with --allow-ffi, a connection never told close: shutdown() after the 1000 ms bound", async () => {
  const f = fake({ ffi: true, quiet: false });
  const start = performance.now();
  await runDrain(f.host, "SIGTERM", NO_DELAY, undefined);
  const took = performance.now() - start;
  assert.deepEqual(f.events, SHUT_ALONE);
  assert.ok(took >= 990 && took < 3000, `${took} ms`);
  assert.ok(
    f.lines.some((l) => /stopped accepting on .*at most 1000 ms/.test(l)),
  );
});

Deno.test("drain, alone with --allow-ffi, connections in the accept queue at the signal: new attempts dropped, then the listener is shut once Deno has accepted them (shutting resets them), at most 50 ms", async () => {
  let looks = 0;
  const f = fake({ ffi: true, queued: () => ++looks <= 2 ? 1 : 0 });
  await runDrain(f.host, "SIGTERM", NO_DELAY, undefined);
  assert.deepEqual(f.events, [
    "draining",
    "dropNew",
    "queued 1",
    "queued 1",
    "detach",
    "abort",
    "shutdown",
  ]);
  const always = fake({ ffi: true, queued: () => 1 });
  const start = performance.now();
  await runDrain(always.host, "SIGTERM", NO_DELAY, undefined);
  const took = performance.now() - start;
  assert.ok(took >= 45 && took < 1000, `${took} ms`);
  assert.equal(always.events.filter((e) => e === "detach").length, 1);
});

Deno.test("drain, alone, a body arriving: with --allow-ffi the listener is shut at once, without it stays open; shutdown() once the body is in", async () => {
  for (const ffi of [true, false]) {
    const f = fake({ ffi, bodies: 1 });
    const drained = runDrain(f.host, "SIGTERM", NO_DELAY, undefined);
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(!f.events.includes("shutdown"), "waits for the body");
    assert.equal(f.events.includes("detach"), ffi);
    const waiting = f.lines.find((l) => l.startsWith("waiting for 1"));
    assert.equal(/still accepting/.test(waiting ?? ""), !ffi, waiting);
    f.bodyArrives();
    await drained;
    assert.equal(f.events.at(-1), "shutdown");
  }
});

Deno.test("drain under the supervisor without detach (tcp_migrate_req=0): never shut, shutdown() at once", async () => {
  const f = fake({ ffi: true });
  await runDrain(f.host, "restart", NO_DELAY, false);
  assert.deepEqual(f.events, ["draining", "shutdown", "abort"]);
});

Deno.test("drain under the supervisor with detach: shut, settled, then shutdown()", async () => {
  const f = fake({ ffi: true });
  await runDrain(f.host, "restart", NO_DELAY, true);
  assert.deepEqual(f.events, ["draining", "abort", "detach", "shutdown"]);
  assert.ok(f.lines.some((l) => /detached the listener/.test(l)));
});

Deno.test("drain under the supervisor, steered: the listener stays open until the connections settle; an idle one is kept until its client closes it", async () => {
  const start = performance.now();
  // The census sees an idle kept-alive connection for 150 ms, then none.
  const f = fake({
    ffi: true,
    steered: true,
    quiet: () => performance.now() - start > 150,
  });
  await runDrain(f.host, "restart", NO_DELAY, false);
  const took = performance.now() - start;
  assert.deepEqual(f.events, ["draining", "abort", "shutdown"]);
  assert.ok(took >= 150 && took < 1000, `${took} ms`);
  assert.ok(
    f.lines.some((l) =>
      /steered away .*closed by their client \(at most 5000 ms\)/.test(l)
    ),
    f.lines.join("\n"),
  );
});

Deno.test("drain under the supervisor, steered, a connection never quiet: shutdown() at half the deadline when that is sooner, not forced", async () => {
  const f = fake({ ffi: true, steered: true, quiet: false });
  f.host = { ...f.host, drainTimeout: 400 };
  const start = performance.now();
  const result = await runDrain(f.host, "restart", NO_DELAY, false);
  const took = performance.now() - start;
  assert.equal(f.events.at(-1), "shutdown");
  assert.ok(took >= 190 && took < 390, `${took} ms`);
  assert.equal(result.forced, false);
  assert.ok(f.lines.some((l) => /at most 200 ms/.test(l)), f.lines.join("\n"));
});

Deno.test("drain, alone with a fixed delay and --allow-ffi: the listener is shut at the delay's end, not at the signal", async () => {
  const f = fake({ ffi: true });
  const start = performance.now();
  await runDrain(f.host, "SIGTERM", { max: 60, quiet: undefined }, undefined);
  assert.deepEqual(f.events, [
    "draining",
    "abort",
    "dropNew",
    "detach",
    "shutdown",
  ]);
  assert.ok(performance.now() - start >= 55);
});

Deno.test("drain, alone without --allow-ffi: closeEarly calls shutdown() first thing at the signal, then starts the drain; runDrain does not call it again", async () => {
  const f = fake();
  assert.equal(mayCloseEarly(f.host, NO_DELAY), true);
  assert.equal(closeEarly(f.host, NO_DELAY, true), undefined, "dry run");
  assert.deepEqual(f.events, [], "mayCloseEarly and a dry run: no effect");
  const acted = closeEarly(f.host, NO_DELAY);
  assert.ok(acted instanceof Promise);
  assert.deepEqual(f.events, ["shutdown", "draining"]);
  await acted;
  await runDrain(f.host, "SIGTERM", NO_DELAY, undefined);
  assert.deepEqual(f.events, ["shutdown", "draining", "abort"]);
});

Deno.test("drain: closeEarly leaves the listener to the drain with --allow-ffi, a body arriving, a delay, or a drain under way", () => {
  const cases: [string, Fake, { max: number; quiet: undefined }][] = [
    ["--allow-ffi", fake({ ffi: true }), NO_DELAY],
    ["a body arriving", fake({ bodies: 1 }), NO_DELAY],
    ["a delay", fake(), { max: 100, quiet: undefined }],
  ];
  const under = fake();
  under.host.traffic.startDraining();
  cases.push(["a drain under way", under, NO_DELAY]);
  for (const [what, f, delay] of cases) {
    const before = [...f.events];
    assert.equal(closeEarly(f.host, delay), undefined, what);
    assert.deepEqual(f.events, before, what);
  }
});
