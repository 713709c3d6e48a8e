/** In-process API tests: validation, idempotence, the graceful `signal`. */
import assert from "node:assert/strict";
import { ExitCode, serve, Shutdown } from "../mod.ts";
import { silentLogger } from "../lifecycle/_log.ts";
import { Traffic } from "../server/_traffic.ts";
import { assertCloses, exited, joined, Proc } from "./_helpers.ts";

const ok = () => new Response("ok");
const quiet = {
  port: 0,
  hostname: "127.0.0.1",
  onListen() {},
  shutdown: false as const,
};

Deno.test("bad options throw a TypeError naming the option and the value", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { drainTimeout: -1 },
      /^drainTimeout: expected a number of milliseconds from 0 to 2147483647, got -1$/,
    ],
    [{ drainTimeout: NaN }, /^drainTimeout: .* got NaN$/],
    [{ drainTimeout: "10" }, /^drainTimeout: .* got "10"$/],
    // A timer cannot hold more: Deno would fire it after 1 ms.
    [{ drainTimeout: 3e9 }, /^drainTimeout: .* got 3000000000$/],
    [{ hooksTimeout: 2 ** 31 }, /^hooksTimeout: .* got 2147483648$/],
    [{ drainDelay: Infinity }, /^drainDelay: .* got Infinity$/],
    [
      { drainDelay: "5000" },
      /^drainDelay: expected a number of milliseconds or \{ max, quiet \}, got "5000"$/,
    ],
    [
      { drainDelay: { quiet: 200 } },
      /^drainDelay\.max: required when drainDelay is an object$/,
    ],
    [{ drainDelay: { max: -1 } }, /^drainDelay\.max: .* got -1$/],
    [{ drainDelay: { max: 500, quiet: 2 ** 31 } }, /^drainDelay\.quiet: .*/],
    [
      { drainDelay: { max: 500, quite: 100 } },
      /^drainDelay: unknown key "quite" \(expected max, quiet\)$/,
    ],
    [
      { retryAfter: 1.5 },
      /^retryAfter: expected false or whole seconds from 0 to 86400, got 1\.5$/,
    ],
    [{ retryAfter: 86_401 }, /^retryAfter: .* got 86401$/],
    [{ retryAfter: true }, /^retryAfter: .*/],
    [{ gracePeriod: -1 }, /^gracePeriod: .* got -1$/],
    [{ hooksTimeout: -5 }, /^hooksTimeout: .* got -5$/],
    [
      { bodyBufferLimit: 1024 },
      /^bodyBufferLimit: no longer an option \(the drain reads no request body ahead: docs\/request-bodies\.md\), got 1024$/,
    ],
    [
      { healthPath: "healthz" },
      /^healthPath: expected a path starting with "\/", got "healthz"$/,
    ],
    [
      { signals: ["SIGFOO"] },
      /^signals: "SIGFOO" is not a signal Deno can listen to/,
    ],
    [
      { signals: ["SIGUSR1"] },
      /^signals: "SIGUSR1" cannot be used: Deno opens its inspector/,
    ],
    [
      { signals: "SIGINT" },
      /^signals: expected an array of signal names, got "SIGINT"$/,
    ],
    [
      { logger: {} },
      /^logger: expected false or an object with info\(\), warn\(\) and error\(\)/,
    ],
    [{ exit: "yes" }, /^exit: expected true or false, got "yes"$/],
    [
      { endStreamsAtDeadline: 1 },
      /^endStreamsAtDeadline: expected "events", true or false, got 1$/,
    ],
    [{ signal: "stop" }, /^signal: expected an AbortSignal, got "stop"$/],
    [
      { shutdown: {} },
      /^shutdown: expected a Shutdown or false, got an object$/,
    ],
    [
      { shutdown: new Shutdown({ exit: false }), signals: ["SIGTERM"] },
      /^signals: has no effect beside shutdown: a Shutdown \(set it on the Shutdown\), got an array \(\["SIGTERM"\]\)$/,
    ],
    [
      { shutdown: new Shutdown({ exit: false }), logger: false },
      /^logger: has no effect beside shutdown: a Shutdown/,
    ],
    [
      { shutdown: false, hooksTimeout: 100 },
      /^hooksTimeout: has no effect beside shutdown: false \(no signal is listened to and nothing exits\), got 100$/,
    ],
    [{ shutdown: false, exit: false }, /^exit: has no effect beside/],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => serve({ ...quiet, shutdown: undefined, ...options }, ok),
      (error: Error) =>
        error instanceof TypeError && message.test(error.message),
      JSON.stringify(options),
    );
  }
  assert.throws(
    () => serve(quiet, "nope" as never),
    /TypeError: handler: expected a function, got "nope"$/,
  );
  assert.throws(
    () => new Shutdown().onShutdown(() => {}, { timeout: -1 }),
    /TypeError: timeout: expected a number of milliseconds from 0 to 2147483647, got -1$/,
  );
});

Deno.test("port in use: the error names the address", async () => {
  const server = serve(quiet, ok);
  try {
    assert.throws(
      () => serve({ ...quiet, port: server.addr.port }, ok),
      (error: Error) =>
        error instanceof Deno.errors.AddrInUse &&
        error.message ===
          `cannot listen on 127.0.0.1:${server.addr.port}: address already in use`,
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("shutdown() is idempotent and aborts server.signal", async () => {
  const server = serve(quiet, ok);
  assert.equal(server.draining, false);
  const first = server.shutdown("test");
  assert.equal(server.shutdown("again"), first);
  assert.equal(server.draining, true);
  assert.equal(server.signal.aborted, true);
  assert.equal(server.signal.reason, "test");
  const result = await first;
  assert.equal(result.forced, false);
  assert.equal(result.reason, "test");
  await server.finished;
});

Deno.test("the signal option drains gracefully: the in-flight request completes", async () => {
  const controller = new AbortController();
  const started = Promise.withResolvers<void>();
  const server = serve(
    { ...quiet, logger: false, signal: controller.signal },
    async () => {
      started.resolve();
      await new Promise((r) => setTimeout(r, 200));
      return new Response("finished");
    },
  );
  const pending = fetch(`http://127.0.0.1:${server.addr.port}/`);
  await started.promise;
  controller.abort();
  const res = await pending;
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "finished");
  assertCloses(res.headers);
  await server.finished;
  assert.equal(server.draining, true);
});

Deno.test("handlers get the drain signal as info.signal, and Deno's info members", async () => {
  let seen: AbortSignal | undefined;
  let has = false;
  let remote: Deno.NetAddr | undefined;
  let completed: Promise<void> | undefined;
  const server = serve({ ...quiet, logger: false }, (req, info) => {
    seen = info.signal;
    has = "signal" in info;
    remote = info.remoteAddr;
    completed = info.completed;
    // Both paths: a request with a body, whose handler answers later.
    return req.text().then((text) => new Response(text));
  });
  const res = await fetch(`http://127.0.0.1:${server.addr.port}/`, {
    method: "POST",
    body: "x",
  });
  assert.equal(await res.text(), "x");
  assert.equal(seen, server.signal);
  assert.equal(has, true);
  assert.equal(remote?.hostname, "127.0.0.1");
  assert.equal(remote?.transport, "tcp");
  await completed; // resolves once the response is sent
  await server.shutdown();
});

Deno.test("info.signal where Deno's info takes no property: through a Proxy", () => {
  const controller = new AbortController();
  const traffic = new Traffic({
    handler: (_req, info) => {
      assert.equal(info.signal, controller.signal);
      assert.equal("signal" in info, true);
      assert.equal(info.remoteAddr.port, 4242);
      return new Response("ok");
    },
    endStreams: false,
    holdBodies: false,
    retryAfter: false,
    signal: controller.signal,
    logger: silentLogger,
  });
  const remoteAddr = { transport: "tcp", hostname: "127.0.0.1", port: 4242 };
  const frozen = Object.freeze({ remoteAddr, completed: Promise.resolve() });
  const res = traffic.handle(
    new Request("http://localhost/"),
    frozen as Deno.ServeHandlerInfo<Deno.NetAddr>,
  );
  assert.equal((res as Response).status, 200);
});

Deno.test("signal listeners: installed by serve(), removed after shutdown()", async () => {
  // After a programmatic shutdown the default action of SIGINT is back: the
  // process dies of it (status 130) instead of shutting down gracefully.
  const mod = new URL("../mod.ts", import.meta.url).href;
  const proc = new Proc([
    "eval",
    `import { serve } from ${JSON.stringify(mod)};
     const server = serve({ port: 0, hostname: "127.0.0.1", logger: false, onListen() {} }, () => new Response());
     await server.shutdown();
     console.log("uninstalled");
     setTimeout(() => console.log("still alive"), 5000);`,
  ]);
  await using _ = proc;
  await proc.waitFor(/uninstalled/);
  proc.kill("SIGINT");
  const { signal } = await exited(proc, 0);
  assert.equal(signal, "SIGINT");
  assert.doesNotMatch(proc.stdout, /still alive/);
});

Deno.test("importing the module installs nothing: SIGINT still kills at once", async () => {
  const mod = new URL("../mod.ts", import.meta.url).href;
  const proc = new Proc([
    "eval",
    `await import(${
      JSON.stringify(mod)
    }); console.log("imported"); setTimeout(() => {}, 5000);`,
  ]);
  await using _ = proc;
  await proc.waitFor(/imported/);
  proc.kill("SIGINT");
  assert.equal((await exited(proc, 0)).signal, "SIGINT");
});

Deno.test("Shutdown without a server: drainers, then hooks in reverse, result", async () => {
  const shutdown = new Shutdown({ exit: false, logger: false, signals: [] });
  const order: string[] = [];
  shutdown.addDrainer(async () => {
    await new Promise((r) => setTimeout(r, 20));
    order.push("drained");
  });
  shutdown.onShutdown(() => void order.push("first registered"));
  shutdown.onShutdown(() => void order.push("last registered"));
  const remove = shutdown.onShutdown(() => void order.push("removed"));
  remove();
  const result = await shutdown.start("manual");
  assert.deepEqual(order, ["drained", "last registered", "first registered"]);
  assert.equal(shutdown.signal.aborted, true);
  assert.deepEqual(
    {
      code: result.exitCode,
      forced: result.forced,
      failed: result.failedHooks,
    },
    { code: 0, forced: false, failed: [] },
  );
});

Deno.test("Shutdown: one exit code per cause, the first of deadline, failed drain, failed hook", async () => {
  const cases: [
    { forced?: boolean; rejects?: boolean; broken?: string[]; hook?: boolean },
    number,
  ][] = [
    [{}, ExitCode.Ok],
    [{ hook: true }, ExitCode.HookFailed],
    [{ rejects: true, hook: true }, ExitCode.DrainFailed],
    [{ broken: ["POST /x (BadResource)"], hook: true }, ExitCode.DrainFailed],
    [{ forced: true, rejects: true, hook: true }, ExitCode.DeadlineExceeded],
  ];
  for (const [given, code] of cases) {
    const shutdown = new Shutdown({ exit: false, logger: false, signals: [] });
    shutdown.addDrainer(() =>
      Promise.resolve({ forced: given.forced ?? false, broken: given.broken })
    );
    if (given.rejects) {
      shutdown.addDrainer(() => Promise.reject(new Error("drainer broke")));
    }
    if (given.hook) {
      shutdown.onShutdown(() => {
        throw new Error("hook broke");
      });
    }
    const result = await shutdown.start("test");
    assert.equal(result.exitCode, code, JSON.stringify(given));
  }
  assert.deepEqual(
    [
      ExitCode.Ok,
      ExitCode.HookFailed,
      ExitCode.DrainFailed,
      ExitCode.DeadlineExceeded,
    ],
    [0, 1, 69, 124],
  );
});

Deno.test("Shutdown: hooksTimeout bounds all hooks together; a hook's signal aborts at its limit", async () => {
  const shutdown = new Shutdown({
    exit: false,
    logger: false,
    signals: [],
    hooksTimeout: 150,
  });
  let aborted = false;
  shutdown.onShutdown(() => "never runs: budget used up", { name: "late" });
  shutdown.onShutdown((signal) =>
    new Promise((resolve) => {
      signal.addEventListener("abort", () => {
        aborted = true;
        resolve(undefined);
      });
    }), { name: "slow" });
  const started = performance.now();
  const result = await shutdown.start();
  const took = performance.now() - started;
  assert.equal(aborted, true);
  assert.deepEqual(result.failedHooks, ["slow", "late"]);
  assert.equal(result.exitCode, 1);
  assert.ok(took >= 140 && took < 1000, `took ${took} ms`);
});

Deno.test("signal: an already aborted signal drains the server at once", async () => {
  const server = serve(
    { ...quiet, signal: AbortSignal.abort() },
    ok,
  );
  await server.finished;
  assert.equal(server.draining, true);
});

Deno.test("a host that does not resolve: the error names the address", () => {
  assert.throws(
    () => serve({ ...quiet, hostname: "no-such-host.invalid" }, ok),
    /cannot listen on no-such-host\.invalid:0: /,
  );
});

Deno.test("stream detection: resource-backed bodies (a file) keep Deno's native path; JS streams are made endable", async () => {
  const { hasOpenEndedBody } = await import("../server/_response_body.ts");
  const path = await Deno.makeTempFile();
  await Deno.writeTextFile(path, "x".repeat(1000));
  const file = await Deno.open(path);
  try {
    assert.equal(hasOpenEndedBody(new Response(file.readable)), false);
    const js = new ReadableStream({ pull: (c) => c.close() });
    assert.equal(hasOpenEndedBody(new Response(js)), true);
    assert.equal(hasOpenEndedBody(new Response("static")), false);
  } finally {
    file.close();
    await Deno.remove(path);
  }
});

Deno.test("endable: small chunks already queued are gathered, large ones pass as they are; every byte arrives in order; end() closes cleanly", async () => {
  const { endable } = await import("../server/_response_body.ts");
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < 300; i++) {
    // Mostly 12-byte events, with a 20 KiB chunk now and then.
    const size = i % 50 === 49 ? 20 * 1024 : 12;
    chunks.push(new Uint8Array(size).fill(i % 251));
  }
  let sent = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(c) {
      for (let i = 0; i < 16 && sent < chunks.length; i++) {
        c.enqueue(chunks[sent++]);
      }
      if (sent === chunks.length) c.close();
    },
  });
  let done = 0;
  const body = endable(source, () => done++);
  const parts: Uint8Array[] = [];
  for await (const part of body.stream) parts.push(part);
  assert.deepEqual(joined(parts), joined(chunks));
  assert.equal(done, 1);
  // 300 chunks in: the 12-byte ones queued together leave as one (one per
  // pull of the source, about 19), the six large ones as they are.
  assert.ok(parts.length <= 40, `${parts.length} chunks out, expected <= 40`);
  assert.equal(parts.filter((p) => p.byteLength === 20 * 1024).length, 6);
  // end(): a never-ending source is ended cleanly and cancelled.
  let cancelled = false;
  const endless = new ReadableStream<Uint8Array>({
    pull(c) {
      c.enqueue(new Uint8Array(12));
    },
    cancel() {
      cancelled = true;
    },
  });
  const ending = endable(endless, () => done++);
  const reader = ending.stream.getReader();
  await reader.read();
  ending.end();
  while (!(await reader.read()).done) {
    // what was already queued, then the end
  }
  assert.equal(done, 2);
  await Promise.resolve();
  assert.ok(cancelled);
});

Deno.test("endable: a source that fails while small chunks are gathered passes on what came before, then its error", async () => {
  const { endable } = await import("../server/_response_body.ts");
  let pulls = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(c) {
      if (pulls++ === 0) {
        for (let i = 0; i < 5; i++) c.enqueue(new Uint8Array(12).fill(i));
      } else {
        // Fails a read the gathering loop started and left to the next pull.
        return Promise.reject(new Error("source broke"));
      }
    },
  });
  let done = 0;
  const body = endable(source, () => done++);
  const reader = body.stream.getReader();
  const first = await reader.read();
  assert.equal(first.value?.byteLength, 60);
  await assert.rejects(reader.read(), /source broke/);
  assert.equal(done, 1);
});

Deno.test("Supervisor: bad options throw a TypeError naming the option and the value, before anything starts", async () => {
  const { Supervisor } = await import("../restart.ts");
  const command = ["deno", "run", "server.ts"];
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ steer: "yes" }, /^steer: expected true or false, got "yes"$/],
    [{ preDrain: -1 }, /^preDrain: .* got -1$/],
    [
      { rollbackWindow: 2000 },
      /^rollbackWindow: expected at most preDrain \(1000 ms\), got 2000$/,
    ],
    [{ rollbackWindow: "soon" }, /^rollbackWindow: .* got "soon"$/],
    [{ workers: 65 }, /workers/],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => new Supervisor({ command, logger: false, ...options }),
      (error: Error) =>
        error instanceof TypeError && message.test(error.message),
      JSON.stringify(options),
    );
  }
  // steer: false is accepted (the --no-steer flag), and a window as long as
  // the pre-drain (the fixed pre-drain), or none with none.
  new Supervisor({ command, logger: false, steer: false });
  new Supervisor({ command, logger: false, rollbackWindow: 1000 });
  new Supervisor({ command, logger: false, preDrain: 0 });
});

Deno.test("hooks run however a server with its own lifecycle stops: shutdown(), await using, the signal option; never an exit", async () => {
  const { shutdown: _, ...own } = quiet;
  const ran: string[] = [];
  const first = serve({ ...own, logger: false }, ok);
  first.onShutdown(() => void ran.push("shutdown()"));
  const result = await first.shutdown("test");
  assert.equal(result.forced, false);
  {
    await using second = serve({ ...own, logger: false }, ok);
    second.onShutdown(() => void ran.push("await using"));
  }
  const controller = new AbortController();
  const third = serve(
    { ...own, logger: false, signal: controller.signal },
    ok,
  );
  const hooked = Promise.withResolvers<void>();
  third.onShutdown(() => {
    ran.push("signal option");
    hooked.resolve();
  });
  controller.abort();
  await hooked.promise;
  await third.finished;
  assert.deepEqual(ran, ["shutdown()", "await using", "signal option"]);
});

Deno.test("with a shared Shutdown, server.shutdown() drains that server only; the hooks wait for the Shutdown", async () => {
  const shared = new Shutdown({ exit: false, logger: false, signals: [] });
  const ran: string[] = [];
  shared.onShutdown(() => void ran.push("hook"));
  const a = serve({ ...quiet, shutdown: shared }, ok);
  const b = serve({ ...quiet, shutdown: shared }, ok);
  await a.shutdown();
  assert.deepEqual(ran, []);
  assert.equal(b.draining, false);
  await shared.start("test");
  assert.deepEqual(ran, ["hook"]);
  assert.equal(b.draining, true);
});

Deno.test("serve(): Deno's timers are set up after Deno.serve has started, not before (set up before it, Deno 2.9.6 delivered signals later while clients were connected)", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      new URL("./fixtures/timer_order.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const order: string[] = JSON.parse(text);
  assert.equal(order[0], "Deno.serve", text);
  assert.ok(order.includes("setTimeout"), text);
});
