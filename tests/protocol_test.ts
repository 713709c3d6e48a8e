/**
 * The worker protocol survives whatever the app writes on stderr: its
 * reports are found behind unterminated text and after megabytes of it, and
 * a worker's secret never appears in the supervisor's output.
 */
import assert from "node:assert/strict";
import { freePort, superviseScript } from "./_helpers.ts";

const APP = new URL("./fixtures/app.ts", import.meta.url).pathname;

for (const noise of ["short", "huge"] as const) {
  Deno.test(`protocol: a worker whose app leaves ${noise === "huge" ? "3 MiB of" : "a progress"} text unterminated on stderr before its ready report becomes ready, restarts, and its secret is never printed`, async () => {
    const port = freePort();
    const proc = await superviseScript(
      [APP, JSON.stringify({ port, stderrNoise: noise })],
      { flags: ["--ready-timeout", "10000"] },
    );
    await using _ = proc;
    proc.kill("SIGHUP");
    await proc.waitFor(/generation 2 serving in/);
    // The app's text is forwarded as a line of its own.
    if (noise === "short") {
      assert.match(proc.stderr, /^loading config\.\.\. $/m);
    }
    proc.kill("SIGTERM");
    assert.equal((await proc.status).code, 0, proc.output().slice(-2000));
    assert.doesNotMatch(proc.stdout + proc.stderr, /[0-9a-f]{32}/);
    assert.doesNotMatch(proc.stderr, /graceful: (ready|quiet)/);
  });
}
