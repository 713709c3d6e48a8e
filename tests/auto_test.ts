/** Zero code change: the ./auto preload and the ./serve_default runner. */
import assert from "node:assert/strict";
import {
  assertCloses,
  Conn,
  exited,
  freePort,
  get,
  inFlight,
  payload,
  Proc,
  SUPERVISOR_FLAGS,
} from "./_helpers.ts";

const here = (path: string) => new URL(path, import.meta.url).pathname;
const AUTO = here("../auto.ts");
const SERVE_DEFAULT = here("../serve_default.ts");
const RESTART = here("../restart.ts");
const LOAD = here("./fixtures/load.ts");
const APPS = {
  plain: here("./fixtures/plain_app.ts"),
  hono: here("./fixtures/hono_app.ts"),
};
const LISTENING = /listening on http:\/\/[^:]+:(\d+)\//;

/** `deno run` an unmodified app under the auto preload. */
function preloadArgs(app: string, port = 0, flags: string[] = []): string[] {
  return [
    "run",
    "--preload",
    AUTO,
    "--allow-net",
    "--allow-env",
    "--allow-read",
    ...flags,
    app,
    String(port),
  ];
}

async function preloaded(
  app: string,
  env: Record<string, string> = {},
  port = 0,
) {
  const proc = new Proc(preloadArgs(app, port), env);
  const m = await proc.waitFor(LISTENING, 120_000);
  return { proc, port: Number(m[1]) };
}

/** The seed scenario on an unmodified app: returns the in-flight response. */
async function seed(proc: Proc, port: number, signal: Deno.Signal = "SIGINT") {
  const conn = await Conn.open(port);
  const pending = conn.request("/slow?ms=600");
  await inFlight(proc, "/slow");
  proc.kill(signal);
  try {
    return await pending;
  } finally {
    conn.close();
  }
}

for (const [name, app] of Object.entries(APPS)) {
  Deno.test(`auto, ${name} app: the in-flight request survives SIGINT, with Connection: close`, async () => {
    const { proc, port } = await preloaded(app);
    await using _ = proc;
    const res = await seed(proc, port);
    assert.equal(res.status, 200);
    assert.match(res.body, /^slow done \d+\n$/);
    assertCloses(res.headers);
    assert.equal((await proc.status).code, 0);
    assert.match(
      proc.stderr,
      /draining 127\.0\.0\.1:\d+ \(SIGINT\): 1 in flight/,
    );
  });

  Deno.test(`auto, ${name} app under the supervisor: 3 restarts under keep-alive load, 0 failures`, async () => {
    const port = freePort();
    const proc = new Proc([
      ...SUPERVISOR_FLAGS,
      RESTART,
      "--",
      Deno.execPath(),
      ...preloadArgs(app, port, ["--unstable-net"]),
    ]);
    await using _ = proc;
    await proc.waitFor(/generation 1\) ready/, 120_000);
    const load = new Proc([
      "run",
      "--allow-net",
      LOAD,
      JSON.stringify({
        port,
        rate: 500,
        duration: 15_000,
        mode: "keepalive",
        connections: 5,
      }),
    ]);
    await using __ = load;
    await load.waitFor(/load running/);
    for (let generation = 2; generation <= 4; generation++) {
      proc.kill("SIGHUP");
      await proc.waitFor(new RegExp(`generation ${generation} serving`));
      await proc.waitFor(
        new RegExp(`\\(generation ${generation - 1}\\) exited with code 0`),
      );
    }
    load.kill("SIGTERM");
    await load.status;
    const result = JSON.parse(load.stdout.trim().split("\n").pop()!);
    assert.deepEqual(result.failures, {}, result.samples.join("\n"));
    assert.equal(result.pids.length, 4);
    assert.ok(result.ok > 500);
    proc.kill("SIGTERM");
    assert.equal((await proc.status).code, 0);
  });
}

Deno.test("without the preload the same app cuts the in-flight request (the problem)", async () => {
  const proc = new Proc(["run", "--allow-net", APPS.plain, "0"]);
  await using _ = proc;
  const port = Number((await proc.waitFor(LISTENING))[1]);
  await assert.rejects(seed(proc, port), /connection closed by server/);
  assert.equal((await proc.status).signal, "SIGINT");
});

Deno.test("auto: an app that never calls Deno.serve is unchanged (SIGINT kills it)", async () => {
  const proc = new Proc([
    "run",
    "--preload",
    AUTO,
    "--allow-env",
    here("./fixtures/no_server.ts"),
  ]);
  await using _ = proc;
  await proc.waitFor(/started/);
  proc.kill("SIGINT");
  assert.equal((await exited(proc, 0)).signal, "SIGINT");
  assert.equal(proc.stderr, "");
});

Deno.test("auto: if Deno.serve cannot be replaced, it says so and the app still runs", async () => {
  const dir = await Deno.makeTempDir();
  const freeze = `${dir}/freeze.ts`;
  await Deno.writeTextFile(
    freeze,
    `Object.defineProperty(Deno, "serve", { value: Deno.serve, writable: false, configurable: false });\n`,
  );
  try {
    const proc = new Proc([
      "run",
      "--preload",
      freeze,
      "--preload",
      AUTO,
      "--allow-net",
      "--allow-env",
      APPS.plain,
      "0",
    ]);
    await using _ = proc;
    await proc.waitFor(LISTENING);
    assert.match(
      proc.stderr,
      /auto: cannot replace Deno\.serve in Deno [\d.]+: servers will stop without draining/,
    );
    proc.kill("SIGINT");
    assert.equal((await proc.status).signal, "SIGINT");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("auto: settings come from GRACEFUL_* variables", async () => {
  const { proc, port } = await preloaded(APPS.plain, {
    GRACEFUL_HEALTH_PATH: "/healthz",
    GRACEFUL_DRAIN_TIMEOUT: "300",
  });
  await using _ = proc;
  assert.equal((await get(port, "/healthz")).status, 200);
  // A 600 ms request against a 300 ms deadline: answered 503 at the deadline.
  const res = await seed(proc, port, "SIGTERM");
  assert.equal(res.status, 503);
  assert.equal((await proc.status).code, 124);
  assert.match(proc.stderr, /deadline 300 ms/);
});

Deno.test("auto: a bad variable stops the app at start with one line naming it", async () => {
  for (
    const [name, value, message] of [
      [
        "GRACEFUL_DRAIN_TIMEOUT",
        "soon",
        /GRACEFUL_DRAIN_TIMEOUT: expected a whole number of milliseconds from 0 to 2147483647, got "soon"/,
      ],
      [
        "GRACEFUL_DRAIN_TIMEOUT",
        "3000000000",
        /GRACEFUL_DRAIN_TIMEOUT: .* got "3000000000"/,
      ],
      ["GRACEFUL_DRAIN_DELAY", "0x10", /GRACEFUL_DRAIN_DELAY: .* got "0x10"/],
      ["GRACEFUL_HOOKS_TIMEOUT", "1e3", /GRACEFUL_HOOKS_TIMEOUT: .* got "1e3"/],
      [
        "GRACEFUL_HEALTH_PATH",
        "healthz",
        /GRACEFUL_HEALTH_PATH: expected a path starting with "\/", got "healthz"/,
      ],
      [
        "GRACEFUL_SIGNALS",
        "SIGINT,SIGUSR1",
        /GRACEFUL_SIGNALS: "SIGUSR1" cannot be used/,
      ],
      ["GRACEFUL_QUIET", "yes", /GRACEFUL_QUIET: expected 0 or 1, got "yes"/],
      [
        "GRACEFUL_GRACE_PERIOD",
        "25",
        /GRACEFUL_GRACE_PERIOD: renamed GRACEFUL_GRACE_PERIOD_SECONDS/,
      ],
      [
        "GRACEFUL_LIVENESS_PATH",
        "livez",
        /GRACEFUL_LIVENESS_PATH: expected a path starting with "\/", got "livez"/,
      ],
      // An empty list would turn graceful shutdown off without a word.
      [
        "GRACEFUL_SIGNALS",
        ",,,",
        /GRACEFUL_SIGNALS: expected signal names such as SIGINT,SIGTERM, got ",,,"/,
      ],
      [
        "GRACEFUL_SIGNALS",
        " ",
        /GRACEFUL_SIGNALS: expected signal names such as SIGINT,SIGTERM, got " "/,
      ],
      [
        "GRACEFUL_SUPERVISOR",
        "127.0.0.1:1/abc/x",
        /GRACEFUL_SUPERVISOR: expected "stdio-1" \(set by restart\.ts\), got "127\.0\.0\.1:1\/abc\/x"/,
      ],
    ] as const
  ) {
    const proc = new Proc(preloadArgs(APPS.plain), {
      [name]: value,
    });
    await using _ = proc;
    assert.equal((await proc.status).code, 2);
    assert.match(proc.stderr, message);
    assert.equal(proc.stderr.trim().split("\n").length, 1);
  }
});

/** Runs the serve_default runner with `args`. */
function serveDefault(...args: string[]): Proc {
  return new Proc([
    "run",
    "--allow-net",
    "--allow-env",
    "--allow-read",
    SERVE_DEFAULT,
    ...args,
  ]);
}

Deno.test("serve_default: a `deno serve` module drains on SIGTERM", async () => {
  const proc = serveDefault(
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    here("./fixtures/default_app.ts"),
  );
  await using _ = proc;
  const port = Number((await proc.waitFor(LISTENING))[1]);
  const res = await seed(proc, port, "SIGTERM");
  assert.equal(res.status, 200);
  assertCloses(res.headers);
  assert.equal((await proc.status).code, 0);
});

Deno.test("serve_default: a module without default { fetch } is one clear line, exit 2", async () => {
  const proc = serveDefault(here("./fixtures/no_server.ts"));
  await using _ = proc;
  assert.equal((await proc.status).code, 2);
  assert.match(
    proc.stderr,
    /^serve_default\.ts: default export: expected an object with a fetch\(request\) method/m,
  );
});

Deno.test("auto: an unmodified app's POST in flight keeps its whole body across SIGINT", async () => {
  const { proc, port } = await preloaded(APPS.plain);
  await using _ = proc;
  const conn = await Conn.open(port);
  const pending = conn.request("/echo", {}, payload(256 * 1024));
  await inFlight(proc, "/echo");
  proc.kill("SIGINT");
  const res = await pending;
  conn.close();
  assert.equal(res.status, 200, proc.output());
  assert.equal(res.body, "262144\n");
  assertCloses(res.headers);
  assert.equal((await proc.status).code, 0, proc.output());
});

Deno.test("serve_default: a module path with #, ?, % and a space is loaded as the file it names", async () => {
  const base = await Deno.makeTempDir();
  const dir = `${base}/a#b?c%41 d`;
  await Deno.mkdir(dir);
  const module = `${dir}/app #1.ts`;
  await Deno.copyFile(here("./fixtures/default_app.ts"), module);
  try {
    const proc = serveDefault("--port", "0", "--host", "127.0.0.1", module);
    await using _ = proc;
    const port = Number((await proc.waitFor(LISTENING))[1]);
    assert.match((await get(port)).body, /^ok \d+\n$/);
    proc.kill("SIGTERM");
    assert.equal((await proc.status).code, 0, proc.output());
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
