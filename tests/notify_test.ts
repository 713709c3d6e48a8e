/**
 * systemd's notify protocol from the supervisor (lifecycle/_notify.ts),
 * received on a datagram socket of the test's own as `NOTIFY_SOCKET`:
 * READY=1 once serving, WATCHDOG=1 pings, RELOADING=1 (with
 * MONOTONIC_USEC) then READY=1 around a SIGHUP restart, STOPPING=1 at the
 * stop. Sent through Debian's `systemd-notify`.
 */
import assert from "node:assert/strict";
import { exited, freePort, get, Proc, supervisorProc } from "./_helpers.ts";

const APP = new URL("./fixtures/app.ts", import.meta.url).pathname;

/** A notify socket of the test's own, in a temp dir removed at disposal. */
async function notifySocket() {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/notify`;
  const socket = Deno.listenDatagram({ path, transport: "unixpacket" });
  const messages: string[] = [];
  let wake = () => {};
  const reading = (async () => {
    for await (const [data] of socket) {
      messages.push(new TextDecoder().decode(data));
      wake();
    }
  })().catch(() => {});
  let taken = 0;
  return {
    path,
    messages,
    /**
     * The next message matching `pattern` (after those already taken);
     * fails, naming what came, if none does within 10 s.
     */
    async next(pattern: RegExp): Promise<string> {
      const limit = AbortSignal.timeout(10_000);
      while (!limit.aborted) {
        while (taken < messages.length) {
          const message = messages[taken++];
          if (pattern.test(message)) return message;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          limit.addEventListener("abort", () => resolve(), { once: true });
        });
      }
      throw new Error(`no ${pattern} in 10 s: ${JSON.stringify(messages)}`);
    },
    async [Symbol.asyncDispose]() {
      socket.close();
      await reading;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("systemd notify: READY=1 once serving, watchdog pings, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 at the stop", async () => {
  await using notify = await notifySocket();
  const port = freePort();
  const proc = supervisorProc([APP, JSON.stringify({ port })], {
    permissions: [
      "--allow-run",
      "--allow-read",
      "--allow-env=NOTIFY_SOCKET,WATCHDOG_USEC",
    ],
    env: { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: "400000" },
  });
  try {
    const ready = await notify.next(/READY=1/);
    assert.match(ready, new RegExp(`^MAINPID=${proc.pid}\n`), ready);
    assert.match(ready, /STATUS=serving generation 1 \(pids \d+\)/);
    // Sent once the worker serves.
    assert.equal((await get(port)).status, 200);
    await notify.next(/^MAINPID=\d+\nWATCHDOG=1$/);
    proc.kill("SIGHUP");
    const reloading = await notify.next(/RELOADING=1/);
    assert.match(reloading, /\nMONOTONIC_USEC=\d+\n/);
    const again = await notify.next(/READY=1/);
    assert.match(again, /STATUS=serving generation 2 \(pids \d+\)/);
    proc.kill("SIGTERM");
    await notify.next(/STOPPING=1/);
    assert.equal((await exited(proc, 0)).code, 0, proc.output());
    assert.doesNotMatch(proc.stderr, /systemd-notify|cannot tell systemd/);
  } finally {
    proc.kill("SIGKILL");
    await proc.status.catch(() => {});
  }
});

Deno.test("systemd notify: a serve() process on its own says READY=1 once listening and STOPPING=1 when its drain starts (with --allow-run=systemd-notify); without it, one line", async () => {
  await using notify = await notifySocket();
  const run = (allowRun: boolean) =>
    new Proc([
      "run",
      "--allow-net",
      "--allow-env=NOTIFY_SOCKET,WATCHDOG_USEC",
      ...(allowRun ? ["--allow-run=systemd-notify"] : []),
      APP,
      "{}",
    ], { NOTIFY_SOCKET: notify.path });
  const proc = run(true);
  await proc.waitFor(/listening on/);
  assert.match(
    await notify.next(/READY=1/),
    /READY=1\nSTATUS=serving on 127\.0\.0\.1:\d+/,
  );
  proc.kill("SIGTERM");
  assert.equal((await exited(proc, 0)).code, 0, proc.output());
  await notify.next(/STOPPING=1/);
  const without = run(false);
  await without.waitFor(/cannot tell systemd \(READY=1\): .*\(said once\)/);
  without.kill("SIGTERM");
  assert.equal((await exited(without, 0)).code, 0, without.output());
});

Deno.test("systemd notify: a supervisor stopped from code (supervisor.stop(), no signal) tells systemd STOPPING=1 before stopped resolves", async () => {
  await using notify = await notifySocket();
  const fixture = new URL("./fixtures/supervise_from_code.ts", import.meta.url)
    .pathname;
  const proc = new Proc([
    "run",
    "--allow-run",
    "--allow-read",
    "--allow-env",
    fixture,
    APP,
    JSON.stringify({ port: freePort() }),
  ], { NOTIFY_SOCKET: notify.path });
  try {
    await notify.next(/READY=1/);
    await proc.waitFor(/^stopped$/m);
    assert.equal((await exited(proc, 0)).code, 0, proc.output());
    // Sent before `stopped` resolved (read here as the socket delivers it).
    await notify.next(/STOPPING=1/);
  } finally {
    proc.kill("SIGKILL");
    await proc.status.catch(() => {});
  }
});
