/**
 * What steering relies on, checked on this kernel with real sockets (the
 * probe fixture), and its input bounds. The restarts it makes lossless are
 * tested in restart_test.ts.
 */
import assert from "node:assert/strict";
import { commandLine, parseCommand } from "../supervisor/_protocol.ts";
import { steerProgram } from "../supervisor/_steer.ts";
import { exited, freePort, Proc } from "./_helpers.ts";

const PROBE = new URL("./fixtures/steer_probe.ts", import.meta.url).pathname;

async function probe(ffi: boolean) {
  const proc = new Proc([
    "run",
    "--allow-net",
    ...(ffi ? ["--allow-ffi"] : []),
    "--unstable-net",
    PROBE,
    String(freePort()),
  ]);
  await using _ = proc;
  const { code } = await exited(proc, 0);
  assert.equal(code, 0, proc.output());
  return JSON.parse(proc.stdout.trim());
}

const sum = (counts: number[]) => counts.reduce((a, b) => a + b, 0);

Deno.test({
  name:
    "steer: on this kernel a program sends no new connection to the excluded listener, never picks a closed one, and unsteer restores the hash",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const steps = await probe(true);
    assert.equal(steps.attach, undefined, JSON.stringify(steps));
    // Three listeners, joined in order; the second (index 1) excluded.
    assert.equal(steps.awayFromOne[1], 0, JSON.stringify(steps));
    assert.ok(steps.awayFromOne[0] > 0 && steps.awayFromOne[2] > 0);
    // The first left: its slot went to the third; the program's index past
    // the end fell back to the hash over the two left. None to the closed one.
    assert.equal(steps.afterLeave[0], 0);
    assert.equal(sum(steps.afterLeave), 30);
    assert.ok(steps.afterLeave[2] > 0, JSON.stringify(steps));
    assert.equal(steps.detach, undefined);
    assert.equal(steps.unsteered[0], 0);
    assert.ok(steps.unsteered[1] > 0 && steps.unsteered[2] > 0);
  },
});

Deno.test("steer: without --allow-ffi it does nothing and says why", async () => {
  const steps = await probe(false);
  assert.equal(steps.attach, "needs --allow-ffi on Linux");
  // The kernel's hash spreads connections as before.
  assert.equal(sum(steps.awayFromOne), 30);
  assert.ok(steps.awayFromOne[1] > 0);
});

Deno.test("steer: the program and the protocol refuse impossible indices", () => {
  assert.throws(
    () => steerProgram(2, 2),
    /steer: expected 0 <= exclude < count <= 256, count >= 2; got exclude 2, count 2/,
  );
  assert.throws(() => steerProgram(0, 1), RangeError);
  assert.throws(() => steerProgram(0, 257), RangeError);
  assert.throws(() => steerProgram(-1, 3), RangeError);
  assert.equal(steerProgram(1, 3).length, 48);
  assert.deepEqual(parseCommand("steer 1 3"), {
    kind: "steer",
    exclude: 1,
    count: 3,
  });
  assert.equal(
    commandLine({ kind: "steer", exclude: 1, count: 3 }),
    "steer 1 3\n",
  );
  assert.deepEqual(parseCommand("unsteer"), { kind: "unsteer" });
  for (
    const line of [
      "steer 3 3",
      "steer 0 1",
      "steer 0 257",
      "steer -1 3",
      "steer 1",
      "steer 1 3 4",
      "unsteer now",
    ]
  ) {
    assert.equal(parseCommand(line), undefined, line);
  }
});
