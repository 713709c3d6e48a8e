/** The seed scenario: the 3 s demo handler survives SIGINT and SIGTERM. */
import assert from "node:assert/strict";
import {
  assertCloses,
  assertRefused,
  Conn,
  exited,
  freePort,
  Proc,
  start,
} from "./_helpers.ts";

const demo = new URL("../server.ts", import.meta.url).pathname;

async function seed(signal: Deno.Signal) {
  const { proc, port } = await start({}, demo, [
    "--port",
    "0",
    "--host",
    "127.0.0.1",
  ]);
  await using _ = proc;
  const conn = await Conn.open(port);
  const sent = performance.now();
  const response = conn.request("/");
  await proc.waitFor(/GET \/: answering in 3000 ms/);
  proc.kill(signal);
  await proc.waitFor(/draining .* 1 in flight/);
  await assertRefused(port);
  const res = await response;
  const answered = performance.now();
  conn.close();
  assert.equal(res.status, 200);
  assert.equal(res.body, "hello world\n");
  assertCloses(res.headers);
  assert.ok(answered - sent >= 2900, `answered after ${answered - sent} ms`);
  const { code, ms } = await exited(proc, answered);
  assert.equal(code, 0, proc.output());
  // ~25 ms measured; generous bound for a noisy machine.
  assert.ok(ms < 1000, `exited ${ms} ms after the last response`);
}

Deno.test("seed demo: SIGINT lets the 3 s request finish, exits 0", () =>
  seed("SIGINT"));
Deno.test("seed demo: SIGTERM lets the 3 s request finish, exits 0", () =>
  seed("SIGTERM"));

Deno.test("seed demo: idle server exits 0 soon after SIGINT", async () => {
  const { proc } = await start({}, demo, [
    "--port",
    "0",
    "--host",
    "127.0.0.1",
  ]);
  await using _ = proc;
  const signalled = performance.now();
  proc.kill("SIGINT");
  const { code, ms } = await exited(proc, signalled);
  assert.equal(code, 0);
  assert.ok(ms < 1000, `exited ${ms} ms after the signal`);
});

Deno.test("seed demo: port in use exits 1 with one readable line", async () => {
  const blocker = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const proc = new Proc([
      "run",
      "--allow-net",
      demo,
      "--port",
      String(blocker.addr.port),
      "--host",
      "127.0.0.1",
    ]);
    await using _ = proc;
    const { code } = await exited(proc, 0);
    assert.equal(code, 1);
    assert.equal(
      proc.stderr.trim(),
      `server.ts: cannot listen on 127.0.0.1:${blocker.addr.port}: address already in use`,
    );
  } finally {
    blocker.close();
  }
});

for (
  const [args, message] of <[string[], string][]> [
    [
      ["--port", "http"],
      '--port: expected a whole number from 0 to 65535, got "http"',
    ],
    [
      ["--port", "0x10"],
      '--port: expected a whole number from 0 to 65535, got "0x10"',
    ],
    [["--foo"], 'unknown option "--foo"'],
    [["--port"], "--port needs a value"],
    [
      ["--delay", "3e3"],
      '--delay: expected a whole number from 0 to 2147483647, got "3e3"',
    ],
  ]
) {
  Deno.test(`seed demo: ${args.join(" ")} exits 2 with one line and the usage`, async () => {
    const proc = new Proc(["run", "--allow-net", demo, ...args]);
    await using _ = proc;
    const { code } = await exited(proc, 0);
    assert.equal(code, 2);
    assert.equal(
      proc.stderr,
      `server.ts: ${message}\nusage: deno run --allow-net server.ts [--port N] [--host NAME] [--delay MS]\n`,
    );
  });
}

Deno.test("seed demo: importing server.ts starts nothing", async () => {
  const proc = new Proc([
    "eval",
    `const m = await import(${
      JSON.stringify(demo)
    }); console.log(typeof m.serve);`,
  ]);
  await using _ = proc;
  const { code } = await exited(proc, 0);
  assert.equal(code, 0);
  assert.equal(proc.stdout, "function\n");
});

// Run the way users run it: `deno task start`, Ctrl+C to the whole group.
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const LOCAL = ["--host", "127.0.0.1"];
/** `deno task start` on a free local port, as a user would type it. */
const START_TASK = [
  "task",
  "--config",
  CONFIG,
  "start",
  "--port",
  "0",
  ...LOCAL,
];

/** Sends the demo's 3 s request and waits until the server has it. */
async function inFlightDemo(proc: Proc, port: number) {
  const conn = await Conn.open(port);
  const response = conn.request("/");
  await proc.waitFor(/GET \/: answering in 3000 ms/);
  return { conn, response };
}

async function ctrlCUnderTask(
  proc: Proc,
  press: () => Promise<void>,
  expectedCode = 0,
) {
  await using _ = proc;
  const m = await proc.waitFor(/listening on http:\/\/[^:]+:(\d+)\//);
  const { conn, response } = await inFlightDemo(proc, Number(m[1]));
  await press();
  const res = await response;
  const answered = performance.now();
  conn.close();
  assert.equal(res.status, 200, proc.output());
  assert.equal(res.body, "hello world\n");
  const { code, ms } = await exited(proc, answered);
  assert.equal(code, expectedCode, proc.output());
  assert.ok(ms > 0 && ms < 2000, `exited ${ms} ms after the response`);
  assert.match(
    proc.output(),
    /shutdown complete in \d+ ms \(SIGINT\), exit code 0/,
  );
  assert.doesNotMatch(proc.output(), /second SIGINT/);
}

Deno.test("seed under `deno task start`: Ctrl+C to the process group lets the 3 s request finish, exit 0", async () => {
  const proc = Proc.group(START_TASK);
  await ctrlCUnderTask(proc, () => Promise.resolve(proc.kill("SIGINT")));
});

/** Digits, addresses and ports as `N`, so a transcript compares across runs. */
const shape = (line: string) => line.replace(/\d+([.:]\d+)*/g, "N");

Deno.test("seed under `deno task start` in a real terminal: Ctrl+C lets the 3 s request finish, exit 0; the README's transcript is what the terminal shows", async () => {
  const proc = Proc.pty(START_TASK);
  await ctrlCUnderTask(proc, () => proc.press("\x03"));
  const readme = await Deno.readTextFile(
    new URL("../README.md", import.meta.url),
  );
  const transcript = readme.match(
    /<!-- readme-transcript[^>]*-->\s*```\n\$ npx -y deno@[\d.]+ task start\n([\s\S]*?)```/,
  );
  assert.ok(transcript, "the README has the quick start transcript");
  const seen = proc.stdout.replaceAll("\r", "").trim().split("\n");
  // The flags this test adds show on the `Task` line only.
  assert.match(seen[0], /^Task start deno run --allow-net server\.ts /);
  // Ctrl+C reaches the group and `deno task` forwards it: the copies may
  // merge (no line), or not (a line each, wherever the copy lands among
  // the drain's lines). Each such line is the README's; the rest match it
  // line for line.
  const echo = /taken as the same one/;
  const readmeLines = transcript[1].trim().split("\n").slice(1);
  const echoLine = readmeLines.find((line) => echo.test(line));
  assert.ok(echoLine, "the README shows the copy's line");
  for (const line of seen.filter((l) => echo.test(l))) {
    assert.equal(shape(line), shape(echoLine));
  }
  const expected = readmeLines.filter((line) => !echo.test(line));
  const lines = seen.slice(1).filter((line) => !echo.test(line));
  assert.deepEqual(lines.map(shape), expected.map(shape));
});

const npx = await new Deno.Command("npx", {
  args: ["--version"],
  stdout: "null",
  stderr: "null",
})
  .output().then((o) => o.success, () => false);
if (!npx) {
  console.error(
    "skipped: the `npx deno task` test needs npx on PATH (it is not)",
  );
}

Deno.test({
  name:
    "seed under `npx deno@2.9.6 task start`: Ctrl+C to the process group lets the request finish, the server exits 0",
  ignore: !npx,
  async fn() {
    const proc = new Proc([], {}, [
      "setsid",
      "npx",
      "-y",
      `deno@${Deno.version.deno}`,
      ...START_TASK,
    ], true);
    // npm's own rule: npx waits for the task, then reports 130 for any
    // Ctrl+C, whatever the task's status. The server's last line says 0.
    await ctrlCUnderTask(proc, () => Promise.resolve(proc.kill("SIGINT")), 130);
  },
});

Deno.test("seed under `deno task start`: a deliberate second Ctrl+C 1 s later forces exit 130", async () => {
  const proc = Proc.group(START_TASK);
  await using _ = proc;
  const m = await proc.waitFor(/listening on http:\/\/[^:]+:(\d+)\//);
  const { conn, response } = await inFlightDemo(proc, Number(m[1]));
  proc.kill("SIGINT");
  await proc.waitFor(/draining/);
  await new Promise((r) => setTimeout(r, 1000)); // the person presses again
  proc.kill("SIGINT");
  await assert.rejects(response); // cut: that is what forcing means
  conn.close();
  const { code } = await exited(proc, 0);
  // `deno task` reports its child's status.
  assert.equal(code, 130, proc.output());
  assert.match(proc.stderr, /second SIGINT: exiting now with code 130/);
});

Deno.test("supervisor under `deno task start:supervised`: Ctrl+C to the group drains, the 3 s request finishes, exit 0", async () => {
  const port = String(freePort());
  const proc = Proc.group([
    "task",
    "--config",
    CONFIG,
    "start:supervised",
    "--port",
    port,
    ...LOCAL,
  ]);
  await using _ = proc;
  await proc.waitFor(/generation 1\) ready/);
  const { conn, response } = await inFlightDemo(proc, Number(port));
  proc.kill("SIGINT");
  const res = await response.catch((error) => {
    throw new Error(`the in-flight request failed: ${error}\n${proc.output()}`);
  });
  conn.close();
  assert.equal(res.status, 200, proc.output());
  assert.equal(res.body, "hello world\n");
  const { code } = await exited(proc, 0);
  assert.equal(code, 0, proc.output());
  assert.match(proc.stderr, /all workers stopped/);
  assert.doesNotMatch(proc.output(), /second SIGINT/);
});
