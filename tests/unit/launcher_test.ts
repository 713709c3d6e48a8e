/** The launcher's start-up line (lifecycle/_launcher.ts), over what may be seen. */
import assert from "node:assert/strict";
import {
  launcherLine,
  PM2_KILL_TIMEOUT_DEFAULT,
  watching,
} from "../../lifecycle/_launcher.ts";

Deno.test("launcher: nothing seen, nothing said", () => {
  assert.equal(launcherLine({ env: {} }, 15_000), undefined);
  assert.equal(
    launcherLine({ env: {}, argv: ["deno", "run", "-A", "s.ts"] }, 15_000),
    undefined,
  );
});

Deno.test("launcher: PM2's default kill_timeout is below the budget → a warning naming the fix", () => {
  const said = launcherLine({ env: { pm_id: "3" } }, 15_000);
  assert.equal(said?.warn, true);
  assert.match(said!.line, /started by PM2 \(pm_id 3\)/);
  assert.match(
    said!.line,
    new RegExp(
      `SIGKILL after ${PM2_KILL_TIMEOUT_DEFAULT} ms \\(PM2's default\\)`,
    ),
  );
  assert.match(said!.line, /set kill_timeout above 15000/);
});

Deno.test("launcher: PM2's kill_timeout above the budget → an info line; equal is not enough", () => {
  const above = launcherLine(
    { env: { pm_id: "0", kill_timeout: "20000" } },
    15_000,
  );
  assert.equal(above?.warn, false);
  assert.match(above!.line, /which covers this process's drain budget/);
  const equal = launcherLine(
    { env: { pm_id: "0", kill_timeout: "15000" } },
    15_000,
  );
  assert.equal(equal?.warn, true);
});

Deno.test("launcher: PM2's kill_signal is named; a kill_timeout that is not a number counts as PM2's default", () => {
  const said = launcherLine(
    { env: { pm_id: "0", kill_signal: "SIGTERM", kill_timeout: "soon" } },
    1_000,
  );
  assert.match(said!.line, /send SIGTERM, then SIGKILL after 1600 ms/);
  assert.equal(said?.warn, false);
});

Deno.test("launcher: npm exec (npm_command or npx's lifecycle event) → a warning", () => {
  for (
    const env of [{ npm_command: "exec" }, { npm_lifecycle_event: "npx" }]
  ) {
    const said = launcherLine({ env }, 15_000);
    assert.equal(said?.warn, true);
    assert.match(said!.line, /not for production/);
  }
  assert.equal(launcherLine({ env: { npm_command: "ci" } }, 15_000), undefined);
});

Deno.test("launcher: --watch wins over the environment (PM2 may run deno run --watch)", () => {
  const said = launcherLine(
    { env: { pm_id: "0" }, argv: ["deno", "run", "--watch", "s.ts"] },
    15_000,
  );
  assert.match(said!.line, /deno run --watch/);
  assert.equal(
    launcherLine({ env: {}, argv: ["deno", "run", "--watch", "s.ts"] }, 400)
      ?.warn,
    false,
    "a drain budget within the 500 ms is not cut",
  );
});

Deno.test("launcher: watching() reads Deno's flags only, not the app's", () => {
  assert.equal(watching(["deno", "run", "--watch", "a.ts"]), true);
  assert.equal(watching(["deno", "run", "--watch=src,lib", "a.ts"]), true);
  assert.equal(watching(["deno", "run", "-A", "--watch-hmr", "a.ts"]), true);
  assert.equal(watching(["deno", "--watch", "main.ts"]), true);
  assert.equal(watching(["deno", "run", "-A", "a.ts", "--watch"]), false);
  assert.equal(watching(["deno", "run", "--watchdog", "a.ts"]), false);
  assert.equal(
    watching(["deno", "run", "https://x.dev/a.ts", "--watch"]),
    false,
  );
  assert.equal(watching(["deno", "run", "-A", "a.ts"]), false);
});
