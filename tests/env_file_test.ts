/**
 * Reload with new configuration: `restart.ts --env-file` is read once per
 * generation, so each restart's workers get the file as it is then; a bad
 * file rolls the restart back with the reason. The worker command's own
 * `deno run --env-file` is re-read per generation too (a new process).
 */
import assert from "node:assert/strict";
import { exited, freePort, get, supervisorProc } from "./_helpers.ts";

const SERVER = new URL("../server.ts", import.meta.url).href;

Deno.test("env file: each restart's workers get the file as it is then (the supervisor's --env-file and deno's own); a bad file rolls back with the reason", async () => {
  const dir = await Deno.makeTempDir();
  const port = freePort();
  const app = `${dir}/app.ts`;
  await Deno.writeTextFile(
    app,
    `import { serve } from ${JSON.stringify(SERVER)};
serve({ hostname: "127.0.0.1", port: ${port}, onListen() {} }, () =>
  new Response(\`\${Deno.env.get("GREETING")} \${Deno.env.get("OWN")}\\n\`));`,
  );
  const supervised = `${dir}/supervised.env`;
  const own = `${dir}/own.env`;
  await Deno.writeTextFile(supervised, "GREETING=v1\n");
  await Deno.writeTextFile(own, "OWN=a\n");
  const proc = supervisorProc([`--env-file=${own}`, app], {
    flags: ["--env-file", supervised],
    ffi: false,
  });
  try {
    await proc.waitFor(/\(generation 1\) ready/);
    assert.equal((await get(port)).body, "v1 a\n");
    await Deno.writeTextFile(supervised, "# new release\nGREETING='v2'\n");
    await Deno.writeTextFile(own, "OWN=b\n");
    proc.kill("SIGHUP");
    await proc.waitFor(/generation 2 serving/);
    assert.equal((await get(port)).body, "v2 b\n");
    await Deno.writeTextFile(supervised, "GREETING v3\n");
    proc.kill("SIGHUP");
    await proc.waitFor(
      /generation 3 failed, rolled back: env file \S+supervised\.env: line 1: expected KEY=VALUE, got "GREETING v3"; serving: pid \d+ \(generation 2\)/,
    );
    assert.equal((await get(port)).body, "v2 b\n");
    proc.kill("SIGTERM");
    assert.equal((await exited(proc, 0)).code, 0, proc.output());
  } finally {
    proc.kill("SIGKILL");
    await proc.status.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
