/**
 * A stderr pipe nobody reads (a stalled log shipper, a `| head` that
 * stopped) must not stop the drain, the exit, or the supervisor: the
 * library's lines are dropped and counted, never waited for.
 */
import assert from "node:assert/strict";
import { Conn, freePort, SUPERVISOR_FLAGS, WORKER_FLAGS } from "./_helpers.ts";

const here = (path: string) => new URL(path, import.meta.url).pathname;
const APP = here("./fixtures/app.ts");
const RESTART = here("../restart.ts");
const decoder = new TextDecoder();

/**
 * Spawns `deno ARGS` with stderr a pipe that is never read and stdout read
 * as it comes; `waitFor` waits for a pattern on stdout.
 */
function stalled(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped", // never read
  }).spawn();
  let stdout = "";
  const waiters: (() => void)[] = [];
  (async () => {
    for await (const chunk of child.stdout) {
      stdout += decoder.decode(chunk, { stream: true });
      waiters.forEach((w) => w());
    }
  })();
  const waitFor = (pattern: RegExp, ms = 20_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const id = setTimeout(
        () => reject(new Error(`timed out waiting for ${pattern}: ${stdout}`)),
        ms,
      );
      const look = () => {
        const m = stdout.match(pattern);
        if (m) {
          clearTimeout(id);
          resolve(m);
        }
      };
      waiters.push(look);
      look();
    });
  const dispose = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // exited
    }
    await child.status;
    await child.stderr.cancel().catch(() => {});
  };
  return {
    child,
    waitFor,
    dispose,
    get stdout() {
      return stdout;
    },
  };
}

/** `promise`, or a failure naming `what` after `ms` (a hang fails the test). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let id: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      id = setTimeout(
        () => reject(new Error(`${what}: not within ${ms} ms`)),
        ms,
      );
    }),
  ]).finally(() => clearTimeout(id));
}

Deno.test("stalled stderr: serve() with a full, unread stderr pipe at SIGTERM answers the in-flight request and exits 0 within drainTimeout + 1 s", async () => {
  const proc = stalled([
    "run",
    "--allow-net",
    APP,
    JSON.stringify({ fillStderr: true, drainTimeout: 3000 }),
  ]);
  try {
    const m = await proc.waitFor(/listening on http:\/\/[^:]+:(\d+)\//);
    const conn = await Conn.open(Number(m[1]));
    const pending = conn.request("/slow?ms=1000");
    await proc.waitFor(/in flight: GET \/slow/);
    const signalled = performance.now();
    proc.child.kill("SIGTERM");
    const res = await within(pending, 10_000, "the in-flight response");
    conn.close();
    assert.equal(res.status, 200);
    const status = await within(proc.child.status, 10_000, "the exit");
    const took = performance.now() - signalled;
    assert.equal(status.code, 0);
    assert.ok(
      took < 3000 + 1000,
      `exited ${Math.round(took)} ms after SIGTERM`,
    );
  } finally {
    await proc.dispose();
  }
});

Deno.test("stalled stderr: the supervisor with a full, unread stderr restarts on SIGHUP (a new pid answers) and stops on SIGTERM (exit 0)", async () => {
  const port = freePort();
  const proc = stalled([
    ...SUPERVISOR_FLAGS,
    RESTART,
    "--",
    Deno.execPath(),
    "run",
    ...WORKER_FLAGS,
    APP,
    // Its worker logs 1 MiB at start: forwarded, it fills the supervisor's
    // own stderr, which nobody reads.
    JSON.stringify({ port, fillStderr: true }),
  ]);
  try {
    await proc.waitFor(/listening on/);
    const get = async () => {
      const res = await fetch(`http://127.0.0.1:${port}/`, {
        headers: { connection: "close" },
        signal: AbortSignal.timeout(2000),
      });
      return await res.text();
    };
    const before = await get();
    proc.child.kill("SIGHUP");
    await proc.waitFor(/(listening on[\s\S]*){2}/, 10_000);
    // The old worker drains and exits; then only the new one answers.
    let after = before;
    const deadline = performance.now() + 10_000;
    while (after === before && performance.now() < deadline) {
      after = await get();
    }
    assert.notEqual(after, before, "a new worker answers after SIGHUP");
    const signalled = performance.now();
    proc.child.kill("SIGTERM");
    const status = await within(proc.child.status, 10_000, "the exit");
    assert.equal(status.code, 0);
    assert.ok(
      performance.now() - signalled < 5000,
      `stopped ${Math.round(performance.now() - signalled)} ms after SIGTERM`,
    );
  } finally {
    await proc.dispose();
  }
});
