/**
 * The restart's pre-drain ends as soon as the old worker is quiet (Linux,
 * workers with --allow-ffi), and not while a client could still send it a
 * request unannounced. Real supervisor, workers, sockets and signals.
 */
import assert from "node:assert/strict";
import {
  Conn,
  freePort,
  get,
  inFlight,
  Proc,
  superviseScript,
} from "./_helpers.ts";

const here = (path: string) => new URL(path, import.meta.url).pathname;
const APP = here("./fixtures/app.ts");
const CENSUS = here("./fixtures/census_probe.ts");
const linux = Deno.build.os === "linux";
if (!linux) console.error("skipped: the pre-drain's early end is Linux only");

async function supervise(preDrain: number, ffi = true) {
  const port = freePort();
  const proc = await superviseScript([APP, JSON.stringify({ port })], {
    flags: ["--pre-drain", String(preDrain)],
    ffi,
  });
  return { proc, port };
}

/** Stops the supervisor: its workers drain, it exits 0. */
async function stop(proc: Proc) {
  proc.kill("SIGTERM");
  assert.equal((await proc.status).code, 0, proc.output());
}

/** SIGHUP, then ms until the generation 1 worker has exited. */
async function restart(proc: Proc): Promise<number> {
  const start = performance.now();
  proc.kill("SIGHUP");
  await proc.waitFor(/\(generation 1\) exited with code 0/, 30_000);
  return performance.now() - start;
}

Deno.test({
  name:
    "census: sees queued connections, accepted ones by peer, and drops a peer that closed",
  ignore: !linux,
  async fn() {
    for (const host of ["127.0.0.1", "::1"]) {
      const probe = new Proc([
        "run",
        "--allow-net",
        "--allow-ffi",
        CENSUS,
        host,
      ]);
      await using _ = probe;
      assert.equal((await probe.status).code, 0, probe.output());
      const seen = JSON.parse(probe.stdout.trim());
      assert.deepEqual(seen.before, { queued: 0, open: [] });
      assert.deepEqual(seen.queued, { queued: 2, open: [] });
      assert.deepEqual(seen.accepted, { queued: 1, open: [seen.expected] });
      assert.deepEqual(seen.peerClosed.open, []);
    }
  },
});

Deno.test({
  name:
    "pre-drain: an idle old worker is quiet at once; it exits long before --pre-drain, after the 50 ms rollback window",
  ignore: !linux,
  async fn() {
    const { proc, port } = await supervise(5000);
    await using _ = proc;
    const ms = await restart(proc);
    assert.ok(ms < 2500, `old worker exited ${ms} ms after SIGHUP`);
    const m = proc.stderr.match(/quiet (\d+) ms into its pre-drain: committed/);
    assert.ok(m, proc.stderr);
    assert.ok(Number(m[1]) >= 50, `committed after ${m[1]} ms`);
    assert.match(proc.stderr, /pre-drain: quiet after \d+ ms/);
    assert.equal((await get(port)).status, 200);
    await stop(proc);
  },
});

Deno.test({
  name:
    "pre-drain: an idle keep-alive connection that was never told Connection: close holds it to its end",
  ignore: !linux,
  async fn() {
    const { proc, port } = await supervise(1500);
    await using _ = proc;
    const conn = await Conn.open(port);
    try {
      const first = await conn.request("/");
      assert.equal(first.headers.get("connection"), null);
      const ms = await restart(proc);
      assert.ok(ms >= 1400, `old worker exited ${ms} ms after SIGHUP`);
      assert.doesNotMatch(proc.stderr, /pre-drain: quiet/);
    } finally {
      conn.close();
    }
    await stop(proc);
  },
});

/**
 * A supervisor with a 300 ms pre-drain and one kept-alive connection that
 * has had an answer; SIGHUP, then `fn` once the old worker's pre-drain is
 * over (its listener steered away, its connections kept), then the stop.
 */
async function afterPreDrain(fn: (conn: Conn, proc: Proc) => Promise<void>) {
  const { proc, port } = await supervise(300);
  await using _ = proc;
  const conn = await Conn.open(port);
  try {
    assert.equal((await conn.request("/")).status, 200);
    proc.kill("SIGHUP");
    await proc.waitFor(
      /steered away on \S+: new connections go elsewhere; open ones close once told Connection: close or closed by their client \(at most 5000 ms\)/,
    );
    await fn(conn, proc);
  } finally {
    conn.close();
  }
  await stop(proc);
}

Deno.test({
  name:
    "after the pre-drain, an idle kept-alive connection is not closed under its client: a request on it is answered with Connection: close, then the old worker exits",
  ignore: !linux,
  fn: () =>
    afterPreDrain(async (conn, proc) => {
      assert.doesNotMatch(proc.stderr, /\(generation 1\) exited/);
      // Past the pre-drain's end, where it used to be closed: still open.
      const late = await conn.request("/");
      assert.equal(late.status, 200);
      assert.equal(late.headers.get("connection"), "close");
      await proc.waitFor(/\(generation 1\) exited with code 0/, 3000);
    }),
});

Deno.test({
  name:
    "after the pre-drain, an event stream asked for on a kept-alive connection (the drain signal already aborted) is told Connection: close and ended after 100 ms: the old worker exits at once, not at the deadline",
  ignore: !linux,
  // /sse-coop ends its stream from an abort listener, which an already
  // aborted signal never calls: left alone, it would run to the deadline.
  fn: () =>
    afterPreDrain(async (conn, proc) => {
      const late = await conn.request("/sse-coop");
      assert.equal(late.headers.get("connection"), "close");
      assert.match(late.body, /^data: hello\n\n(data: tick\n\n){0,4}$/);
      await proc.waitFor(/\(generation 1\) exited with code 0/, 3000);
    }),
});

Deno.test({
  name:
    "after the pre-drain, an idle kept-alive connection its client closes lets the old worker exit at once, long before the 5 s bound",
  ignore: !linux,
  fn: () =>
    afterPreDrain(async (conn, proc) => {
      const closed = performance.now();
      conn.close();
      await proc.waitFor(/\(generation 1\) exited with code 0/, 10_000);
      const ms = performance.now() - closed;
      assert.ok(ms < 2000, `exited ${ms} ms after the client closed`);
    }),
});

Deno.test({
  name:
    "pre-drain: a keep-alive connection that sends during it gets Connection: close, and then the worker is quiet",
  ignore: !linux,
  async fn() {
    const { proc, port } = await supervise(10_000);
    await using _ = proc;
    const conn = await Conn.open(port);
    try {
      assert.equal((await conn.request("/")).status, 200);
      const start = performance.now();
      proc.kill("SIGHUP");
      await proc.waitFor(/pre-drain on \S+: Connection: close/);
      const res = await conn.request("/");
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("connection"), "close");
      await proc.waitFor(/\(generation 1\) exited with code 0/, 30_000);
      const ms = performance.now() - start;
      assert.ok(ms < 5000, `old worker exited ${ms} ms after SIGHUP`);
      assert.match(proc.stderr, /into its pre-drain: committed/);
    } finally {
      conn.close();
    }
    await stop(proc);
  },
});

Deno.test({
  name:
    "pre-drain: a 3 s request in flight does not hold it (its response says close); it completes with 200 from the old worker",
  ignore: !linux,
  async fn() {
    const { proc, port } = await supervise(10_000);
    await using _ = proc;
    const oldPid = proc.stderr.match(/worker pid (\d+) \(generation 1\)/)![1];
    const conn = await Conn.open(port);
    try {
      const slow = conn.request("/slow?ms=3000");
      await inFlight(proc, "/slow");
      proc.kill("SIGHUP");
      await proc.waitFor(/into its pre-drain: committed/);
      const res = await slow;
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("connection"), "close");
      assert.match(res.body, new RegExp(`${oldPid}`));
    } finally {
      conn.close();
    }
    await proc.waitFor(/\(generation 1\) exited with code 0/, 30_000);
    await stop(proc);
  },
});

Deno.test({
  name:
    "pre-drain: without --allow-ffi it runs its full time and says why, once",
  ignore: !linux,
  async fn() {
    const { proc } = await supervise(800, false);
    await using _ = proc;
    const ms = await restart(proc);
    assert.ok(ms >= 700, `old worker exited ${ms} ms after SIGHUP`);
    const why = proc.stderr.match(/pre-drain: runs its full time/g) ?? [];
    assert.equal(why.length, 1, proc.stderr);
    await stop(proc);
  },
});
