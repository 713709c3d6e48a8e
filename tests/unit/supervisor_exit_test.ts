/** The supervisor's exit code from its workers' exits at the stop. */
import assert from "node:assert/strict";
import { exitCodeOf, worstExit } from "../../supervisor/_reports.ts";

const exit = (pid: number, code: number) => ({ pid, generation: 1, code });

Deno.test("supervisor exit: 0 only when every worker drained cleanly", () => {
  assert.deepEqual(worstExit([]), { code: 0 });
  assert.equal(worstExit([exit(10, 0), exit(11, 0)]).code, 0);
});

Deno.test("supervisor exit: the worst wins, forced over cut over other errors over a failed hook, and names its worker", () => {
  assert.deepEqual(worstExit([exit(10, 0), exit(11, 1)]), exit(11, 1));
  assert.deepEqual(worstExit([exit(10, 1), exit(11, 3)]), exit(11, 3));
  assert.deepEqual(worstExit([exit(10, 3), exit(11, 124)]), exit(11, 124));
  assert.deepEqual(worstExit([exit(10, 124), exit(11, 143)]), exit(11, 143));
  assert.deepEqual(worstExit([exit(10, 137), exit(11, 124)]), exit(10, 137));
  // Equal severity: the first keeps it.
  assert.deepEqual(worstExit([exit(10, 124), exit(11, 124)]), exit(10, 124));
});

Deno.test("supervisor exit: a worker killed by a signal counts as 128 + its number", () => {
  assert.equal(
    exitCodeOf({ success: false, code: 137, signal: "SIGKILL" }),
    137,
  );
  assert.equal(exitCodeOf({ success: false, code: 0, signal: "SIGTERM" }), 143);
  assert.equal(exitCodeOf({ success: true, code: 0, signal: null }), 0);
  assert.equal(exitCodeOf({ success: false, code: 124, signal: null }), 124);
});
