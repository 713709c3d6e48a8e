/**
 * A shutdown that ends in an exit keeps its signal listeners until
 * `Deno.exit` (shutdown.ts): a signal still on its way then (the group's
 * copy of a stop the supervisor began; the CI run on 2026-12-07 saw a
 * worker killed by it with 130) is taken as the same stop, not left to
 * the default action. `Deno.exit` is stubbed: nothing exits.
 */
import assert from "node:assert/strict";
import { Shutdown } from "../../shutdown.ts";

Deno.test("shutdown: exiting, the signal listeners stay installed until Deno.exit; without exit they are removed at the end", async () => {
  const exit = Deno.exit;
  const remove = Deno.removeSignalListener;
  const events: string[] = [];
  Deno.removeSignalListener = (signal, listener) => {
    events.push(`remove ${signal}`);
    remove(signal, listener);
  };
  Deno.exit = ((code?: number) => {
    events.push(`exit ${code}`);
  }) as typeof Deno.exit;
  try {
    const exiting = new Shutdown({ signals: ["SIGUSR2"], logger: false });
    exiting.listen();
    await exiting.start("stop command");
    assert.deepEqual(events, ["exit 0", "remove SIGUSR2"]);
    events.length = 0;
    const staying = new Shutdown({
      signals: ["SIGUSR2"],
      logger: false,
      exit: false,
    });
    staying.listen();
    await staying.start("stop command");
    assert.deepEqual(events, ["remove SIGUSR2"]);
  } finally {
    Deno.exit = exit;
    Deno.removeSignalListener = remove;
  }
});
