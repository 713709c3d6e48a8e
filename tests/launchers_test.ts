/**
 * The recipes in examples/deploy/, run as their users run them, with a 3 s
 * request in flight at the stop:
 * - PM2 (from npm, with a home of its own under the test's temp dir) with
 *   the ecosystem file: `pm2 stop` and `pm2 reload` → 200;
 * - the Dockerfile's command as PID 1 of a PID namespace (`unshare --pid
 *   --fork`), SIGTERM to PID 1 alone and SIGKILL 10 s later, as `docker
 *   stop` does → 200, exit 0;
 * - the systemd unit with `KillMode=mixed` (SIGTERM to the main process) and
 *   `KillMode=control-group` (SIGTERM and SIGCONT to every process of the
 *   unit), SIGKILL to all at `TimeoutStopSec` → 200, exit 0.
 * And the start-up line that names the launcher: PM2 (kill_timeout covers
 * the drain or not), npx, `deno run --watch`.
 */
import assert from "node:assert/strict";
import { freePort, Proc } from "./_helpers.ts";

const here = (path: string) => new URL(path, import.meta.url).pathname;
const ROOT = here("../");
const DEPLOY = here("../examples/deploy/");
const SERVER = here("../server.ts");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `path`'s text matches `pattern` (a log file another process writes). */
async function fileMatch(
  path: string,
  pattern: RegExp,
  ms = 20_000,
): Promise<string> {
  const end = performance.now() + ms;
  let text = "";
  while (performance.now() < end) {
    try {
      text = await Deno.readTextFile(path);
    } catch {
      text = "";
    }
    if (pattern.test(text)) return text;
    await sleep(50); // a file has no event to wait for here
  }
  throw new Error(`timed out waiting for ${pattern} in ${path}:\n${text}`);
}

/** GET / on the demo (3 s); resolves to "status body". */
async function slowGet(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/`);
  return `${res.status} ${(await res.text()).trim()}`;
}

// --- PM2 -----------------------------------------------------------------

const PM2_VERSION = "7.0.4";

/** PM2 from npm: GRACEFUL_TEST_PM2 (set by .ci/run), else installed once in ~/.cache. */
async function pm2Binary(): Promise<string> {
  const given = Deno.env.get("GRACEFUL_TEST_PM2");
  if (given) return given;
  const prefix = `${
    Deno.env.get("HOME") ?? "/root"
  }/.cache/graceful-http/pm2-${PM2_VERSION}`;
  const bin = `${prefix}/node_modules/.bin/pm2`;
  try {
    await Deno.stat(bin);
  } catch {
    const out = await new Deno.Command("npm", {
      args: ["install", "--silent", "--prefix", prefix, `pm2@${PM2_VERSION}`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(
      out.success,
      `npm install pm2: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return bin;
}

/** A PM2 of the test's own: its home (daemon, logs) in a temp dir. */
async function pm2Home() {
  const bin = await pm2Binary();
  const dir = await Deno.makeTempDir({ prefix: "graceful-pm2-" });
  const env = {
    PM2_HOME: `${dir}/home`,
    // PM2 finds `deno` (the ecosystem's interpreter) on PATH: this Deno.
    PATH: `${Deno.execPath().replace(/\/[^/]+$/, "")}:${Deno.env.get("PATH")}`,
  };
  const run = async (...args: string[]) => {
    const out = await new Deno.Command(bin, {
      args,
      cwd: dir,
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) +
      new TextDecoder().decode(out.stderr);
    assert.ok(out.success, `pm2 ${args.join(" ")}:\n${text}`);
    return text;
  };
  return {
    dir,
    run,
    log: (name: string, kind: "out" | "error") =>
      `${dir}/home/logs/${name}-${kind}.log`,
    async [Symbol.asyncDispose]() {
      // The daemon, then anything it left, by pid.
      let daemon: number | undefined;
      try {
        daemon = Number(await Deno.readTextFile(`${dir}/home/pm2.pid`));
      } catch {
        daemon = undefined;
      }
      try {
        await run("kill");
      } catch {
        // ended below
      }
      if (daemon) {
        try {
          Deno.kill(daemon, "SIGKILL");
        } catch {
          // gone
        }
      }
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** The ecosystem file as shipped, on a free port and this checkout's server.ts. */
async function ecosystem(dir: string, port: number): Promise<string> {
  const shipped = await Deno.readTextFile(
    `${DEPLOY}ecosystem.config.cjs`,
  );
  assert.match(shipped, /script: "server\.ts"/);
  assert.match(shipped, /--port 8080/);
  assert.match(shipped, /kill_timeout: (\d+)/);
  const text = shipped
    .replace(`script: "server.ts"`, `script: ${JSON.stringify(SERVER)}`)
    .replace("--port 8080", `--port ${port}`);
  const path = `${dir}/ecosystem.config.cjs`;
  await Deno.writeTextFile(path, text);
  return path;
}

Deno.test("PM2 with the ecosystem file: pm2 stop and pm2 reload with a 3 s request in flight → 200; the start-up line says kill_timeout covers the drain", async () => {
  await using pm2 = await pm2Home();
  const port = freePort();
  const file = await ecosystem(pm2.dir, port);
  const out = pm2.log("app", "out");
  const err = pm2.log("app", "error");
  await pm2.run("start", file);
  await fileMatch(out, /listening on/);
  await fileMatch(
    err,
    /started by PM2 \(pm_id 0\): .*SIGKILL after 20000 ms \(the app's kill_timeout\), which covers this process's drain budget of 15000 ms/,
  );

  // pm2 stop: SIGINT, then SIGKILL after kill_timeout.
  let answer = slowGet(port);
  await fileMatch(out, /GET \/: answering/);
  await pm2.run("stop", "app");
  assert.equal(await answer, "200 hello world");
  await fileMatch(err, /shutdown complete in \d+ ms \(SIGINT\), exit code 0/);

  // pm2 reload (fork mode: a stop, then a start).
  await pm2.run("start", "app");
  await fileMatch(out, /(listening on[\s\S]*){2}/);
  answer = slowGet(port);
  await fileMatch(out, /(GET \/: answering[\s\S]*){2}/);
  await pm2.run("reload", "app");
  assert.equal(await answer, "200 hello world");
  const log = await fileMatch(
    err,
    /(shutdown complete in \d+ ms \(SIGINT\), exit code 0[\s\S]*){2}/,
  );
  assert.doesNotMatch(log, /second SIG|exiting now/);
  await fileMatch(out, /(listening on[\s\S]*){3}/); // reloaded: serving again
  await pm2.run("delete", "app");
});

Deno.test("PM2 without kill_timeout: the start-up line warns that SIGKILL comes after 1600 ms, before the drain budget", async () => {
  await using pm2 = await pm2Home();
  const port = freePort();
  await pm2.run(
    "start",
    SERVER,
    "--name",
    "bare",
    "--interpreter",
    "deno",
    "--interpreter-args",
    "run --allow-net --allow-env=pm_id,kill_timeout,kill_signal",
    "--",
    "--port",
    String(port),
  );
  await fileMatch(
    pm2.log("bare", "error"),
    /started by PM2 \(pm_id 0\): .*SIGKILL after 1600 ms \(PM2's default\), before this process's drain budget of 15000 ms ends: .*set kill_timeout above 15000/,
  );
  await pm2.run("delete", "bare");
});

// --- A container ---------------------------------------------------------

/** The Dockerfile's ENTRYPOINT + CMD, on a free port and this checkout's server.ts. */
async function dockerCommand(port: number): Promise<string[]> {
  const text = await Deno.readTextFile(`${DEPLOY}Dockerfile`);
  const json = (word: string) => {
    const m = text.match(new RegExp(`^${word} (\\[.*\\])$`, "m"));
    assert.ok(m, `the Dockerfile has an exec-form ${word}`);
    return JSON.parse(m[1]) as string[];
  };
  const argv = [...json("ENTRYPOINT"), ...json("CMD")];
  assert.equal(argv[0], "deno", "Deno itself is PID 1");
  assert.ok(argv.includes("server.ts") && argv.includes("8080"));
  return argv.map((arg) =>
    arg === "deno"
      ? Deno.execPath()
      : arg === "server.ts"
      ? SERVER
      : arg === "8080"
      ? String(port)
      : arg
  );
}

/** Runs `command` and returns its stdout (the suite may not read /proc itself: Deno asks --allow-all for it). */
async function output(command: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(command, { args, stdout: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout);
}

/** The pids of `pid`'s children (`pgrep -P`). */
async function children(pid: number): Promise<number[]> {
  return (await output("pgrep", "-P", String(pid))).split(/\s+/)
    .filter(Boolean).map(Number);
}

/** The host pid of PID 1 in the namespace `unshare --fork` (pid `outer`) made. */
async function pidOne(outer: number): Promise<number> {
  const [pid, ...more] = await children(outer);
  assert.ok(pid && more.length === 0, `unshare's one child: ${pid} ${more}`);
  const status = await output("cat", `/proc/${pid}/status`);
  const nspid = status.match(/^NSpid:\s+(.*)$/m)?.[1].split(/\s+/);
  assert.equal(nspid?.at(-1), "1", `pid ${pid} is PID 1 inside: ${nspid}`);
  return pid;
}

Deno.test("container: the Dockerfile's command as PID 1 of a PID namespace, SIGTERM to PID 1 alone, SIGKILL 10 s later (docker stop): the 3 s request gets 200, exit 0", async () => {
  const port = freePort();
  const argv = await dockerCommand(port);
  const proc = new Proc([], {}, [
    "unshare",
    "--pid",
    "--fork",
    "--kill-child",
    ...argv,
  ], true);
  await using _ = proc;
  await proc.waitFor(/listening on/);
  const one = await pidOne(proc.pid);
  const answer = slowGet(port);
  await proc.waitFor(/GET \/: answering/);
  const stopped = performance.now();
  Deno.kill(one, "SIGTERM");
  const kill = setTimeout(() => {
    try {
      Deno.kill(one, "SIGKILL");
    } catch {
      // gone
    }
  }, 10_000);
  try {
    assert.equal(await answer, "200 hello world");
    const status = await proc.status;
    assert.equal(status.code, 0, proc.output());
    assert.ok(performance.now() - stopped < 10_000, "exited before SIGKILL");
    assert.match(proc.stderr, /shutdown complete in \d+ ms \(SIGTERM\)/);
  } finally {
    clearTimeout(kill);
  }
});

// --- systemd -------------------------------------------------------------

interface Unit {
  command: string[];
  timeoutStopSec: number;
  env: Record<string, string>;
}

/** app.service's ExecStart (on this checkout and this Deno), TimeoutStopSec and Environment. */
async function unit(port: number): Promise<Unit> {
  const text = (await Deno.readTextFile(`${DEPLOY}app.service`))
    .replace(/\\\n\s*/g, "");
  const value = (key: string) => {
    const m = text.match(new RegExp(`^${key}=(.*)$`, "m"));
    assert.ok(m, `app.service sets ${key}`);
    return m[1].trim();
  };
  assert.equal(value("KillMode"), "mixed", "the unit as shipped");
  assert.equal(value("Type"), "notify-reload", "the unit as shipped");
  const [name, val] = value("Environment").split("=");
  const command = value("ExecStart").split(/\s+/).map((arg) =>
    arg === "/usr/bin/deno"
      ? Deno.execPath()
      : arg.startsWith("/srv/app/")
      ? `${ROOT}${arg.slice("/srv/app/".length)}`
      : arg
  );
  return {
    command: [...command, "--port", String(port)],
    timeoutStopSec: Number(value("TimeoutStopSec")),
    env: { [name]: val },
  };
}

for (const mode of ["mixed", "control-group"] as const) {
  Deno.test(
    `systemd: app.service stopped as KillMode=${mode} does it (SIGTERM ${
      mode === "mixed" ? "to the main process" : "and SIGCONT to every process"
    }, SIGKILL to all at TimeoutStopSec): the 3 s request gets 200, every process exits 0`,
    async () => {
      const port = freePort();
      const service = await unit(port);
      // A process group of its own stands for the unit's cgroup.
      const proc = new Proc(
        [],
        service.env,
        ["setsid", ...service.command],
        true,
      );
      await using _ = proc;
      const ready = await proc.waitFor(
        /worker pid (\d+) \(generation 1\) ready/,
      );
      const worker = Number(ready[1]);
      const answer = slowGet(port);
      await proc.waitFor(/GET \/: answering/);
      if (mode === "mixed") Deno.kill(proc.pid, "SIGTERM");
      else {
        // systemd signals each process of the cgroup, then SIGCONT to each.
        for (const pid of [proc.pid, worker]) Deno.kill(pid, "SIGTERM");
        for (const pid of [proc.pid, worker]) Deno.kill(pid, "SIGCONT");
      }
      const kill = setTimeout(
        () => proc.kill("SIGKILL"),
        service.timeoutStopSec * 1000,
      );
      try {
        assert.equal(await answer, "200 hello world");
        const status = await proc.status;
        assert.equal(status.code, 0, proc.output());
        assert.match(
          proc.stderr,
          new RegExp(
            `worker pid ${worker} \\(generation 1\\) exited with code 0 `,
          ),
        );
        assert.doesNotMatch(proc.stderr, /second SIG|exiting now/);
      } finally {
        clearTimeout(kill);
      }
    },
  );
}

// --- Launchers the start-up line names --------------------------------------

/** Every descendant of `pid`, deepest last (`pgrep -P`, level by level). */
async function descendants(pid: number): Promise<number[]> {
  const found: number[] = [];
  for (let level = [pid]; level.length > 0;) {
    const next: number[] = [];
    for (const parent of level) next.push(...await children(parent));
    found.push(...next);
    level = next;
  }
  return found;
}

Deno.test("npx: the start-up line says npm exec is for trying it, not production (a signal to npm's pid never reaches Deno)", async () => {
  const port = freePort();
  const proc = new Proc([], {}, [
    "npx",
    "-y",
    `deno@${Deno.version.deno}`,
    "run",
    "--allow-net",
    "--allow-env=npm_command,npm_lifecycle_event",
    SERVER,
    "--port",
    String(port),
  ], true);
  // npm does not pass signals on: every process is ended by pid, found
  // while npm is still their parent.
  let started: number[] = [];
  try {
    await proc.waitFor(/listening on/, 60_000);
    started = await descendants(proc.pid);
    await proc.waitFor(
      /started by npm exec \(npx\): fine for trying it, not for production/,
    );
  } finally {
    if (started.length === 0) started = await descendants(proc.pid);
    for (const pid of started.reverse()) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    await proc[Symbol.asyncDispose]();
  }
});

Deno.test("deno run --watch: the start-up line says a file change cancels the drain after 500 ms, and it does (a 10 s request is cut)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "graceful-watch-" });
  const script = `${dir}/app.ts`;
  const port = freePort();
  await Deno.writeTextFile(
    script,
    `import { serve } from ${JSON.stringify(SERVER)};
serve({ port: ${port}, onListen() { console.log("listening on " + ${port}); } },
  async () => { console.log("in flight"); await new Promise((r) => setTimeout(r, 10000)); return new Response("late"); });
`,
  );
  try {
    await using proc = new Proc([
      "run",
      `--watch=${dir}`,
      "--allow-all",
      script,
    ]);
    await proc.waitFor(/listening on/);
    await proc.waitFor(
      /started by deno run --watch: on a file change Deno sends this process a SIGTERM and cancels it 500 ms later/,
    );
    const answer = fetch(`http://127.0.0.1:${port}/`).then(
      (res) => res.text(),
      (error) => `cut: ${error}`,
    );
    await proc.waitFor(/in flight/);
    // Deno's watcher registers its paths after the program starts and has
    // once (1 CI run in ~20) not seen a single change: change the file again
    // each second until the drain begins, ten times at most.
    for (let tries = 1;; tries++) {
      await Deno.writeTextFile(script, "// changed\n", { append: true });
      try {
        await proc.waitFor(/draining/, 1_000);
        break;
      } catch (error) {
        if (tries === 10) throw error;
      }
    }
    assert.match(await answer, /^cut: /, "Deno cancels the drain");
    await proc.waitFor(/(listening on[\s\S]*){2}/); // restarted
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
