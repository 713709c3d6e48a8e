/**
 * Canaries: one per reliance on Deno beyond its documented API (listed in
 * `lifecycle/_deno.ts`). Each fails when the running Deno no longer behaves as the
 * library assumes, so an upgrade that breaks one is seen in CI, not in
 * production. Then the start-up lines that say what degrades, end to end.
 */
import assert from "node:assert/strict";
import {
  closesKeepAliveAfterPost,
  compareVersions,
  innerBody,
  isResourceBacked,
  missingReliances,
  RELIANCES,
  shutdownLosesBodies,
  streamState,
  upgradedSocket,
} from "../lifecycle/_deno.ts";
import {
  rangeText,
  runtimeWarnings,
  SUPPORTED,
} from "../lifecycle/_deno_check.ts";
import {
  exited,
  freePort,
  inFlight,
  payload,
  Proc,
  start,
} from "./_helpers.ts";

const APP = new URL("./fixtures/app.ts", import.meta.url).pathname;

Deno.test("canary: every reliance listed in lifecycle/_deno.ts is present on this Deno", () => {
  assert.deepEqual(missingReliances().map((r) => r.name), []);
  assert.deepEqual(
    runtimeWarnings(Deno.version.deno, []),
    [],
    `Deno ${Deno.version.deno} is inside ${rangeText()}`,
  );
});

Deno.test("canary: a stream's [[state]] slot tells readable, closed and errored", async () => {
  assert.equal(streamState(new ReadableStream()), "readable");
  const closed = new ReadableStream({ start: (c) => c.close() });
  assert.equal(streamState(closed), "closed");
  const errored = new ReadableStream({ start: (c) => c.error(new Error("x")) });
  await errored.getReader().read().catch(() => {});
  assert.equal(streamState(errored), "errored");
});

Deno.test("canary: Deno's response record tells a stream from a static body", () => {
  const stream = innerBody(new Response(new ReadableStream()));
  assert.ok(stream, "the record of a streaming response");
  assert.equal(stream.length, null);
  assert.equal(stream.source ?? null, null);
  assert.ok(stream.stream instanceof ReadableStream);
  const text = innerBody(
    new Response("static", { headers: { "content-type": "text/plain" } }),
  );
  assert.ok(text && text.source != null, "a string body keeps its source");
  // 2.9 keeps a plain string body outside the record: not a stream either.
  const plain = innerBody(new Response("static"));
  assert.ok(plain === undefined || plain.source != null);
  assert.equal(innerBody(new Response(null)), undefined);
});

Deno.test("canary: the [[resourceBacking]] slot marks file and fetch() bodies, not JS streams", async () => {
  const path = await Deno.makeTempFile();
  await Deno.writeFile(path, payload(1024));
  using file = await Deno.open(path);
  assert.equal(isResourceBacked(file.readable), true);
  assert.equal(isResourceBacked(new ReadableStream()), false);
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("x"),
  );
  const res = await fetch(`http://127.0.0.1:${server.addr.port}/`);
  assert.equal(isResourceBacked(res.body!), true);
  await res.body!.cancel();
  await Deno.remove(path);
});

Deno.test("canary: this Deno's own shutdown() takes unread bodies away exactly where shutdownLosesBodies() says (denoland/deno#36809)", async () => {
  // When a release fixes it, this fails: then give shutdownLosesBodies()
  // its upper bound (the guard runs either way: one behaviour everywhere).
  let lost = false;
  const arrived = Promise.withResolvers<void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      arrived.resolve();
      await new Promise((r) => setTimeout(r, 200));
      try {
        await req.arrayBuffer();
      } catch {
        lost = true;
      }
      return new Response("done");
    },
  );
  const res = fetch(`http://127.0.0.1:${server.addr.port}/`, {
    method: "POST",
    body: payload(64 * 1024),
  });
  await arrived.promise;
  await server.shutdown();
  await (await res).text();
  assert.equal(lost, shutdownLosesBodies(), `Deno ${Deno.version.deno}`);
});

Deno.test("canary: this Deno closes a keep-alive POST whose body follows its head exactly where closesKeepAliveAfterPost() says", async () => {
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => new Response(String((await req.arrayBuffer()).byteLength)),
  );
  using conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  const encoder = new TextEncoder();
  let closed = false;
  for (let i = 0; i < 3 && !closed; i++) {
    await conn.write(
      encoder.encode(
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\n\r\n",
      ),
    );
    await conn.write(payload(5000));
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    const head = new TextDecoder().decode(buf.subarray(0, n ?? 0));
    assert.match(head, /^HTTP\/1\.1 200/);
    closed = /\r\nconnection: close\r\n/i.test(head);
  }
  assert.equal(closed, closesKeepAliveAfterPost(), `Deno ${Deno.version.deno}`);
});

Deno.test({
  name:
    "canary: after shutdown(2) of a reusePort listener (the restart's detach), Deno's finished settles once shutdown() is called",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const proc = new Proc([
      "run",
      "--allow-net",
      "--allow-ffi",
      "--unstable-net",
      new URL("./fixtures/detach_probe.ts", import.meta.url).pathname,
      String(freePort()),
    ]);
    await using _ = proc;
    const { code } = await exited(proc, 0);
    assert.equal(code, 0, proc.output());
    const seen = JSON.parse(proc.stdout.trim());
    assert.equal(seen.detached, 1, proc.output());
    // What the server expects: a rejection (EINVAL from the accept loop),
    // taken as the end, or a plain resolution; never a hang.
    assert.match(seen.finished, /^(resolved|rejected: .*)$/, proc.output());
    assert.equal(seen.refusedAfter, true, proc.output());
  },
});

Deno.test("versions: compareVersions orders releases", () => {
  assert.ok(compareVersions("2.1.0", "2.10.0") < 0);
  assert.ok(compareVersions("2.9.6", "2.9.10") < 0);
  assert.equal(compareVersions("2.9.6", "2.9.6"), 0);
  assert.ok(compareVersions("3.0.0", "2.9.6") > 0);
  assert.ok(compareVersions("2.9.6-rc.1", "2.9.5") > 0);
});

Deno.test("versions: outside the range one line names the version and what degrades", () => {
  const [older] = runtimeWarnings("2.0.6", []);
  assert.match(
    older,
    new RegExp(
      `^Deno 2\\.0\\.6 is older than the supported range \\(${rangeText()}\\): .+; upgrade Deno$`,
    ),
  );
  const [patch] = runtimeWarnings("2.9.5", []);
  assert.match(patch, /keep-alive POST clients lose a few requests/);
  assert.doesNotMatch(patch, /stdin|preload/);
  const [old] = runtimeWarnings("2.3.7", []);
  assert.match(old, /stdin.*; .*nginx.*; .*--preload/);
  assert.match(runtimeWarnings("1.46.3", [])[0], /: not tested; upgrade Deno$/);
  const [newer] = runtimeWarnings("3.0.0", []);
  assert.match(newer, /^Deno 3\.0\.0 is newer than the supported range/);
  assert.match(newer, /request bodies are still held/);
  assert.deepEqual(runtimeWarnings(SUPPORTED.oldest, []), []);
  assert.deepEqual(runtimeWarnings(SUPPORTED.newest, []), []);
  const lines = runtimeWarnings(SUPPORTED.newest, RELIANCES);
  assert.equal(lines.length, RELIANCES.length);
  for (const [i, line] of lines.entries()) {
    assert.ok(line.startsWith(`Deno ${SUPPORTED.newest} lacks `), line);
    assert.ok(line.endsWith(RELIANCES[i].without), line);
  }
});

/**
 * A preload that hides every internal the library reads, as a Deno release
 * that renamed them would: the slots' symbols disappear from
 * `Object.getOwnPropertySymbols`.
 */
const HIDE_INTERNALS = `
const own = Object.getOwnPropertySymbols;
Object.getOwnPropertySymbols = (o) => own(o).filter((k) =>
  !["[[state]]", "[[resourceBacking]]", "response", "[[associated_ws]]"]
    .includes(k.description));
`;

Deno.test("start-up: where the internals are gone, one line each says what degrades, and the drain still works", async () => {
  const preload = await Deno.makeTempFile({ suffix: ".js" });
  await Deno.writeTextFile(preload, HIDE_INTERNALS);
  const proc = new Proc([
    "run",
    "--allow-net",
    "--preload",
    preload,
    APP,
    "{}",
  ]);
  await using _ = proc;
  const port = Number(
    (await proc.waitFor(/listening on http:\/\/[^:]+:(\d+)\//))[1],
  );
  // The lines go to stderr without blocking: they may follow the
  // listening line on stdout.
  for (const reliance of RELIANCES) {
    const line =
      `[graceful] Deno ${Deno.version.deno} lacks ${reliance.name}: ${reliance.without}`;
    await proc.waitFor(new RegExp(line.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  }
  const response = fetch(`http://127.0.0.1:${port}/slow?ms=500`);
  await inFlight(proc, "/slow");
  proc.kill("SIGTERM");
  const res = await response;
  assert.equal(res.status, 200);
  assert.match(await res.text(), /^slow done \d+\n$/);
  const { code } = await exited(proc, 0);
  assert.equal(code, 0, proc.output());
  await Deno.remove(preload);
});

Deno.test("start-up: on this Deno, with its internals in place, no such line", async () => {
  const { proc, port } = await start({}, APP);
  await using _ = proc;
  await (await fetch(`http://127.0.0.1:${port}/`)).text();
  proc.kill("SIGTERM");
  await exited(proc, 0);
  assert.doesNotMatch(proc.stderr, /lacks|supported range|npm's Node wrapper/);
});

Deno.test({
  name:
    "start-up: under npm's Node wrapper (node …/deno/bin.cjs) one line says signals to the wrapper never reach Deno, and they do not",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const node = await new Deno.Command("node", { args: ["--version"] })
      .output().then((o) => o.success, () => false);
    if (!node) {
      throw new Error("node is not on PATH (CI installs Deno with npm)");
    }
    // The wrapper as the deno npm package up to 2.6 ships it: spawnSync,
    // stdio inherited, no signal forwarded.
    const dir = await Deno.makeTempDir();
    await Deno.mkdir(`${dir}/deno`);
    await Deno.writeTextFile(
      `${dir}/deno/bin.cjs`,
      `const r = require("child_process").spawnSync(${
        JSON.stringify(Deno.execPath())
      }, process.argv.slice(2), { stdio: "inherit" });\nprocess.exitCode = r.status;\n`,
    );
    const proc = new Proc([], { NO_COLOR: "1" }, [
      "node",
      `${dir}/deno/bin.cjs`,
      "run",
      // Deno reads another process's /proc entry only with every permission.
      "--allow-all",
      APP,
      "{}",
    ], true);
    await using _ = proc;
    const m = await proc.waitFor(/listening on http:\/\/[^:]+:(\d+)\//);
    assert.match(
      proc.stderr,
      /\[graceful\] this Deno was started by npm's Node wrapper \(pid \d+: node .*\/deno\/bin\.cjs\): a signal sent to that pid .* never reaches this process; start the deno binary itself/,
    );
    // Deno is the wrapper's child (`/proc` of another process is out of
    // this test's permissions: pgrep reads it).
    const found = await new Deno.Command("pgrep", {
      args: ["-P", String(proc.pid)],
    }).output();
    const server = Number(new TextDecoder().decode(found.stdout).trim());
    assert.ok(server > 0, "the wrapper's child");
    try {
      // What the line warns of: SIGTERM to the wrapper's pid ends it...
      proc.kill("SIGTERM");
      assert.equal((await proc.child.status).signal, "SIGTERM");
      // ...and Deno never hears of it: it serves on, not draining.
      const res = await fetch(`http://127.0.0.1:${m[1]}/`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("connection"), null);
      await res.text();
    } finally {
      Deno.kill(server, "SIGTERM");
    }
    await proc.status;
    assert.match(proc.stderr, /SIGTERM received/);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("the supported range reads the same in lifecycle/_deno.ts, .ci/run and the README", async () => {
  const read = (path: string) =>
    Deno.readTextFile(new URL(`../${path}`, import.meta.url));
  const ci = await read(".ci/run");
  assert.match(ci, new RegExp(`^OLDEST_VERSION=${SUPPORTED.oldest}$`, "m"));
  assert.match(ci, new RegExp(`^DENO_VERSION=${SUPPORTED.newest}$`, "m"));
  const below = ci.match(/^BELOW_VERSION=(\S+)$/m)?.[1];
  assert.ok(below && compareVersions(below, SUPPORTED.oldest) < 0, below);
  const readme = await read("README.md");
  assert.match(
    readme,
    new RegExp(
      `Supported on\\s+\\*\\*Deno ${rangeText().replaceAll(".", "\\.")}\\*\\*`,
    ),
    "the README states the range",
  );
});

Deno.test("canary: the 101 response of Deno.upgradeWebSocket names its socket ([[associated_ws]]), so the drain can let the app's close finish", async () => {
  let seen: boolean | undefined;
  const plain = upgradedSocket(new Response("x"));
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req);
      seen = upgradedSocket(response) === socket;
      socket.onopen = () => socket.close(1000);
      return response;
    },
  );
  const ws = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
  const { promise, resolve } = Promise.withResolvers<void>();
  ws.onclose = () => resolve();
  await promise;
  assert.equal(seen, true);
  assert.equal(plain, undefined);
});
