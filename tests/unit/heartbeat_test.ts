/** The supervisor's pings (supervisor/_heartbeat.ts) over fake workers. */
import assert from "node:assert/strict";
import { heartbeat } from "../../supervisor/_heartbeat.ts";
import type { Worker } from "../../supervisor/_worker.ts";

function fake(name: string, answers: boolean, retiring = false) {
  const worker = {
    name,
    retiring,
    gone: false,
    lastAlive: performance.now(),
    pings: 0,
    send() {
      this.pings++;
      if (answers) this.lastAlive = performance.now();
    },
  };
  return worker;
}

Deno.test("heartbeat: pings every quarter of the bound; one that stops answering is reported once; retiring ones are left alone", async () => {
  const alive = fake("alive", true);
  const silent = fake("silent", false);
  const leaving = fake("leaving", false, true);
  const wedged: [string, number][] = [];
  const stop = heartbeat(
    () => [alive, silent, leaving] as unknown as Worker[],
    80,
    (w, ms) => wedged.push([(w as unknown as { name: string }).name, ms]),
  );
  await new Promise((resolve) => setTimeout(resolve, 400));
  stop();
  assert.deepEqual(wedged.map(([name]) => name), ["silent"]);
  // Said rounded: silent for more than 80 ms can read 80.
  assert.ok(wedged[0][1] >= 80, `silent for ${wedged[0][1]} ms`);
  assert.ok(alive.pings >= 8, `alive pinged ${alive.pings} times`);
  assert.equal(leaving.pings, 0);
  const pings = alive.pings;
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(alive.pings, pings, "stopped");
});
