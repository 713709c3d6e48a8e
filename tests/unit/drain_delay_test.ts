/** The self-ending drain delay's wait (server/_drain_delay.ts), on fake arrivals. */
import assert from "node:assert/strict";
import { waitForQuiet } from "../../server/_drain_delay.ts";

/**
 * Runs `fn` recording every setTimeout delay the drain delay asks for
 * (timers that other code in the process sets meanwhile are not its own).
 */
async function timeouts<T>(fn: () => Promise<T>): Promise<[T, number[]]> {
  const asked: number[] = [];
  const original = globalThis.setTimeout;
  globalThis.setTimeout = ((cb: () => void, ms?: number) => {
    if (new Error().stack?.includes("_drain_delay.ts")) asked.push(ms ?? 0);
    return original(cb, ms);
  }) as typeof setTimeout;
  try {
    return [await fn(), asked];
  } finally {
    globalThis.setTimeout = original;
  }
}

Deno.test("drain delay: a health path never asked waits to the max with no negative timer and no spin", async () => {
  const start = performance.now();
  const [end, asked] = await timeouts(() =>
    waitForQuiet({ max: 120, quiet: 10 }, {
      hasHealthPath: true,
      lastArrival: 0,
      healthRefused: new Promise(() => {}),
    }, start)
  );
  assert.equal(end.timedOut, true);
  assert.ok(asked.every((ms) => ms >= 0), `timers: ${asked}`);
  assert.ok(asked.length >= 1 && asked.length <= 3, `${asked.length} timers`);
});

Deno.test("drain delay: the health path's first 503, then the quiet period, ends it early", async () => {
  const start = performance.now();
  const refused = Promise.withResolvers<number>();
  setTimeout(() => refused.resolve(performance.now()), 30);
  const end = await waitForQuiet({ max: 2000, quiet: 20 }, {
    hasHealthPath: true,
    lastArrival: 0,
    healthRefused: refused.promise,
  }, start);
  assert.equal(end.timedOut, false);
  assert.ok(end.waited >= 25 && end.waited < 1000, `${end.waited} ms`);
  assert.ok(end.firstRefusal !== undefined);
});
