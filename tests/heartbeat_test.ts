/**
 * Wedged workers: with `--heartbeat`, a worker stopped by SIGSTOP (alive,
 * answering nothing) is noticed and replaced with the usual handoff: a new
 * worker takes its slot once ready, then the wedged one is killed.
 */
import assert from "node:assert/strict";
import { exited, freePort, get, supervisorProc } from "./_helpers.ts";

const APP = new URL("./fixtures/app.ts", import.meta.url).pathname;

/** True while `pid` exists (asked of `ps`: the suite may not read /proc). */
async function running(pid: number): Promise<boolean> {
  const out = await new Deno.Command("ps", {
    args: ["-o", "stat=", "-p", String(pid)],
    stdout: "piped",
  }).output();
  const stat = new TextDecoder().decode(out.stdout).trim();
  return out.success && stat !== "" && !stat.startsWith("Z");
}

Deno.test("heartbeat: a worker stopped with SIGSTOP is replaced (new worker ready, then the wedged one killed); the port keeps serving", async () => {
  const port = freePort();
  const proc = supervisorProc([APP, JSON.stringify({ port })], {
    flags: ["--heartbeat", "600"],
  });
  await using _ = proc;
  const [, first] = await proc.waitFor(
    /worker pid (\d+) \(generation 1\) ready/,
  );
  const wedged = Number(first);
  assert.equal((await get(port)).body, `ok ${wedged}\n`);
  Deno.kill(wedged, "SIGSTOP");
  await proc.waitFor(
    new RegExp(
      `worker pid ${wedged} \\(generation 1\\) has not answered for \\d+ ms \\(--heartbeat 600\\): wedged; replacing it`,
    ),
  );
  const [, second] = await proc.waitFor(
    new RegExp(`worker pid (?!${wedged}\\b)(\\d+) \\(generation 1\\) ready`),
  );
  // Killed once its successor serves (SIGKILL reaches a stopped process).
  for (let i = 0; i < 100 && await running(wedged); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(await running(wedged), false, "the wedged worker is gone");
  assert.equal((await get(port)).body, `ok ${second}\n`);
  assert.doesNotMatch(proc.stderr, /crashed; replacing it/);
  proc.kill("SIGTERM");
  assert.equal((await exited(proc, 0)).code, 0, proc.output());
});
