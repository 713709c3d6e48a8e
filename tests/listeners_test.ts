/**
 * The listener's stop with `--allow-ffi` (supervisor/_detach.ts) on real
 * sockets: with new connection attempts dropped, what waits in the accept
 * queue is still accepted, and an attempt made meanwhile is refused once
 * the listener is shut, never established and then reset.
 */
import assert from "node:assert/strict";

const linux = Deno.build.os === "linux";
if (!linux) console.error("skipped: the listeners' test needs Linux");

Deno.test({
  name:
    "listeners: new attempts dropped, the queued connection is still accepted; an attempt made meanwhile is refused once the listener is shut",
  ignore: !linux,
  async fn() {
    const probe = new URL("./fixtures/drop_new_probe.ts", import.meta.url);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-ffi",
        "--allow-read",
        probe.pathname,
      ],
      stderr: "inherit",
    }).output();
    assert.ok(out.success);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), {
      queued: 1,
      dropping: 1,
      meanwhile: "pending",
      accepted: true,
      after: "ConnectionRefused",
    });
  },
});
