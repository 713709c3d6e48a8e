/** Test helpers: real processes, real sockets, a raw HTTP/1.1 client. */
import assert from "node:assert/strict";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

const live = new Set<Proc>();

/** This process's environment without the launchers' marks (see `_launcher.ts`). */
function inherited(): Record<string, string> {
  const env = Deno.env.toObject();
  for (const name of Object.keys(env)) {
    // (And a systemd the suite itself may run under: not the servers'.)
    if (
      /^(npm_|pm_id$|kill_timeout$|kill_signal$|NOTIFY_SOCKET$|WATCHDOG_)/
        .test(name)
    ) {
      delete env[name];
    }
  }
  return env;
}

// A request that fails while a test is not awaiting it yet surfaces as an
// unhandled rejection: show what the child processes said, to explain it.
globalThis.addEventListener("unhandledrejection", () => {
  for (const proc of live) console.error(`pid ${proc.pid}:\n${proc.output()}`);
});

/** A child process whose output is collected as it arrives. */
export class Proc {
  /**
   * Longest a process may run (ms): a hang fails its test instead of
   * hanging CI. `undefined` for none (the benchmarks' long runs).
   */
  static limitMs: number | undefined = 120_000;
  readonly child: Deno.ChildProcess;
  stdout = "";
  stderr = "";
  #waiters: { test: () => boolean; resolve: () => void }[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  readonly started = performance.now();

  /** True when the process leads a process group of its own (see {@linkcode Proc.group}). */
  readonly leadsGroup: boolean;

  /**
   * Runs `deno ARGS`, behind `prefix` (e.g. `ip netns exec NS`) if given;
   * with `raw`, runs `prefix` alone as the whole command line.
   */
  constructor(
    args: string[],
    env: Record<string, string> = {},
    prefix: string[] = [],
    raw = false,
  ) {
    this.leadsGroup = prefix[0] === "setsid";
    const [command, ...rest] = raw
      ? prefix
      : [...prefix, Deno.execPath(), ...args];
    this.child = new Deno.Command(command, {
      args: rest,
      // What would tell a server it was started by npx or PM2 (the suite
      // itself may run under `npx deno task test`) is not passed on: the
      // launcher tests set it themselves.
      clearEnv: true,
      env: { ...inherited(), NO_COLOR: "1", ...env },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    live.add(this);
    const pump = async (
      stream: ReadableStream<Uint8Array>,
      key: "stdout" | "stderr",
    ) => {
      for await (const chunk of stream) {
        this[key] += decoder.decode(chunk, { stream: true });
        this.#check();
      }
    };
    const done = Promise.all([
      pump(this.child.stdout, "stdout"),
      pump(this.child.stderr, "stderr"),
    ]);
    const exit = done.then(() => this.child.status).then((status) => {
      live.delete(this);
      this.output = () => `${this.#output()}--- exit ${status.code}\n`;
      this.#check(true);
      return status;
    });
    // A process that hangs fails its test instead of hanging the suite.
    let limit: ReturnType<typeof setTimeout> | undefined;
    const ms = Proc.limitMs;
    this.status = ms === undefined ? exit : Promise.race([
      exit,
      new Promise<never>((_, reject) => {
        limit = setTimeout(() => {
          reject(
            new Error(
              `pid ${this.pid} still running after ${ms} ms\n${this.output()}`,
            ),
          );
          this.kill("SIGKILL");
        }, ms);
      }),
    ]).finally(() => clearTimeout(limit));
    this.status.catch(() => {});
  }

  get pid(): number {
    return this.child.pid;
  }

  /**
   * Runs `deno ARGS` as a shell runs a command: in a process group of its
   * own (`setsid`, which does not fork here: a spawned child leads no group),
   * so that {@linkcode Proc.kill} reaches every process in it, as Ctrl+C does.
   */
  static group(args: string[], env: Record<string, string> = {}): Proc {
    return new Proc(args, env, ["setsid"]);
  }

  /**
   * Runs `deno ARGS` in a real pseudo-terminal (`script` from util-linux):
   * {@linkcode Proc.press} then types into it, so `"\x03"` is a real Ctrl+C
   * that the terminal turns into SIGINT for its whole foreground group.
   * Output arrives on stdout (the terminal merges both streams).
   *
   * `script` starts `$SHELL -c LINE`; the line `exec`s deno so the shell is
   * not in the terminal's foreground group. A user's interactive shell is not
   * either, but a non-interactive one is: dash dies of the Ctrl+C and `script`
   * then reports 130 whatever deno did (measured: CI, where `SHELL` is `sh`).
   */
  static pty(args: string[], env: Record<string, string> = {}): Proc {
    const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;
    const line = "exec " + [Deno.execPath(), ...args].map(quote).join(" ");
    return new Proc([], env, ["script", "-qfec", line, "/dev/null"], true);
  }

  /** Types `keys` into the process's stdin (its terminal, for {@linkcode Proc.pty}). */
  async press(keys: string): Promise<void> {
    const writer = this.child.stdin.getWriter();
    await writer.write(encoder.encode(keys));
    writer.releaseLock();
  }

  /** Resolves when `pattern` appears in stdout+stderr; rejects if the process ends first or after `ms`. */
  waitFor(pattern: RegExp, ms = 20_000): Promise<RegExpMatchArray> {
    const found = () => (this.stdout + "\n" + this.stderr).match(pattern);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(`timed out waiting for ${pattern}\n${this.output()}`),
          ),
        ms,
      );
      const test = () => {
        const m = found();
        if (m) {
          clearTimeout(timer);
          resolve(m);
          return true;
        }
        return false;
      };
      if (test()) return;
      this.#waiters.push({
        test,
        resolve: () => {
          clearTimeout(timer);
          reject(
            new Error(`process ended before ${pattern}\n${this.output()}`),
          );
        },
      });
    });
  }

  #check(ended = false) {
    this.#waiters = this.#waiters.filter((w) => {
      if (w.test()) return false;
      if (ended) {
        w.resolve();
        return false;
      }
      return true;
    });
  }

  output(): string {
    return this.#output();
  }

  #output(): string {
    return `--- stdout\n${this.stdout}--- stderr\n${this.stderr}`;
  }

  /** Signals the process, or its whole group if it leads one (like Ctrl+C). */
  kill(signal: Deno.Signal = "SIGTERM") {
    try {
      Deno.kill(this.leadsGroup ? -this.pid : this.pid, signal);
    } catch {
      // already gone
    }
  }

  /** Ends the process if a test left it running, and waits for it. */
  async [Symbol.asyncDispose]() {
    this.kill("SIGKILL");
    try {
      this.child.stdin.close();
    } catch {
      // closed already
    }
    await this.status;
  }
}

/**
 * The permissions the restart supervisor runs with in tests and benchmarks:
 * no network at all (its channel to the workers is their stdin and stderr).
 */
export const SUPERVISOR_FLAGS: string[] = [
  "run",
  "--allow-run",
  "--allow-read",
];

const RESTART = new URL("../restart.ts", import.meta.url).pathname;

/** The flags a supervised worker needs (plus `--allow-ffi` to steer). */
export const WORKER_FLAGS: string[] = [
  "--allow-net",
  "--allow-env",
  "--unstable-net",
];

/**
 * Starts `restart.ts` (with its own `flags`) over `deno run WORKER_FLAGS
 * [--allow-ffi] ...script`, and waits until a generation 1 worker is ready.
 */
export async function superviseScript(
  script: string[],
  options: SupervisorProcOptions = {},
): Promise<Proc> {
  const proc = supervisorProc(script, options);
  await proc.waitFor(/\(generation 1\) ready/);
  return proc;
}

/** How {@linkcode supervisorProc} runs `restart.ts`. */
export interface SupervisorProcOptions {
  /** restart.ts's own flags. */
  flags?: string[];
  /** `--allow-ffi` for the workers (default true). */
  ffi?: boolean;
  /** The supervisor's permissions (default {@linkcode SUPERVISOR_FLAGS}). */
  permissions?: string[];
  /** Its environment, over the inherited one. */
  env?: Record<string, string>;
}

/**
 * Starts `restart.ts` (with its own `flags`) over `deno run WORKER_FLAGS
 * [--allow-ffi] ...script`; does not wait.
 */
export function supervisorProc(
  script: string[],
  { flags = [], ffi = true, permissions, env = {} }: SupervisorProcOptions = {},
): Proc {
  return new Proc([
    ...(permissions ? ["run", ...permissions] : SUPERVISOR_FLAGS),
    RESTART,
    ...flags,
    "--",
    Deno.execPath(),
    "run",
    ...WORKER_FLAGS,
    ...(ffi ? ["--allow-ffi"] : []),
    ...script,
  ], env);
}

/** Starts the fixture app (or `script`) and waits for its listening line. */
export async function start(
  options: Record<string, unknown> = {},
  script = new URL("./fixtures/app.ts", import.meta.url).pathname,
  extraArgs: string[] = [],
  env: Record<string, string> = {},
): Promise<{ proc: Proc; port: number }> {
  const proc = new Proc([
    "run",
    "--allow-net",
    script,
    ...(script.endsWith("app.ts") ? [JSON.stringify(options)] : []),
    ...extraArgs,
  ], env);
  const m = await proc.waitFor(/listening on http:\/\/[^:]+:(\d+)\//);
  return { proc, port: Number(m[1]) };
}

/** A parsed HTTP/1.1 response. */
export interface RawResponse {
  status: number;
  headers: Headers;
  body: string;
}

/** One keep-alive HTTP/1.1 connection, driven by hand. */
export class Conn {
  #conn: Deno.TcpConn;
  #buffer = new Uint8Array(0);
  #reader: ReadableStreamDefaultReader<Uint8Array>;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.#reader = conn.readable.getReader();
  }

  static async open(port: number, hostname = "127.0.0.1"): Promise<Conn> {
    return new Conn(await Deno.connect({ hostname, port }));
  }

  /**
   * Writes a request: a GET, or a POST when `body` is given (all at once, or
   * `rate` bytes/s in 64 KiB writes for a slow upload).
   */
  async send(
    path: string,
    headers: Record<string, string> = {},
    body?: Uint8Array,
    rate = Infinity,
  ): Promise<void> {
    const lines = [
      `${body ? "POST" : "GET"} ${path} HTTP/1.1`,
      "host: 127.0.0.1",
    ];
    if (body) lines.push(`content-length: ${body.length}`);
    for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
    const head = encoder.encode(lines.join("\r\n") + "\r\n\r\n");
    // Head and body in two writes, as fetch, curl and Node's http send them:
    // the server sees the request before its body.
    await this.#write(head);
    if (!body) return;
    if (rate === Infinity) {
      await this.#write(body);
      return;
    }
    const start = performance.now();
    for (let at = 0; at < body.length; at += 65536) {
      await this.#write(body.subarray(at, at + 65536));
      const due = start + ((at + 65536) / rate) * 1000;
      await new Promise((r) =>
        setTimeout(r, Math.max(0, due - performance.now()))
      );
    }
  }

  async #write(bytes: Uint8Array) {
    for (let at = 0; at < bytes.length;) {
      at += await this.#conn.write(bytes.subarray(at));
    }
  }

  /**
   * Sends a request and reads its response. The promise is marked handled:
   * tests often await it only after signalling the server, and a failure in
   * between must surface at that await, not as an unhandled rejection that
   * hides the test's own assertion.
   */
  request(
    path: string,
    headers: Record<string, string> = {},
    body?: Uint8Array,
    rate?: number,
  ): Promise<RawResponse> {
    const response = this.send(path, headers, body, rate).then(() =>
      this.read()
    );
    response.catch(() => {});
    return response;
  }

  /** Reads one whole response (content-length or chunked). */
  async read(onChunk?: (text: string) => void): Promise<RawResponse> {
    const head = await this.#until("\r\n\r\n");
    const [statusLine, ...headerLines] = head.split("\r\n");
    const headers = new Headers();
    for (const line of headerLines) {
      const at = line.indexOf(":");
      headers.append(line.slice(0, at).trim(), line.slice(at + 1).trim());
    }
    const status = Number(statusLine.split(" ")[1]);
    let body = "";
    if (headers.get("transfer-encoding") === "chunked") {
      while (true) {
        const size = parseInt(await this.#until("\r\n"), 16);
        const chunk = await this.#bytes(size + 2);
        if (size === 0) break;
        const text = decoder.decode(chunk.subarray(0, size));
        onChunk?.(text);
        body += text;
      }
    } else if (headers.has("content-length")) {
      body = decoder.decode(
        await this.#bytes(Number(headers.get("content-length"))),
      );
    }
    return { status, headers, body };
  }

  /** Resolves true if the server closes the connection (EOF or reset). */
  async closedByPeer(): Promise<boolean> {
    try {
      const { done } = await this.#reader.read();
      return done;
    } catch {
      return true;
    }
  }

  close() {
    try {
      this.#conn.close();
    } catch {
      // closed already
    }
  }

  async #fill(): Promise<void> {
    const { value, done } = await this.#reader.read();
    if (done) throw new Error("connection closed by server");
    const next = new Uint8Array(this.#buffer.length + value.length);
    next.set(this.#buffer);
    next.set(value, this.#buffer.length);
    this.#buffer = next;
  }

  async #until(marker: string): Promise<string> {
    while (true) {
      const text = decoder.decode(this.#buffer);
      const at = text.indexOf(marker);
      if (at >= 0) {
        const bytes = encoder.encode(text.slice(0, at + marker.length)).length;
        this.#buffer = this.#buffer.subarray(bytes);
        return text.slice(0, at);
      }
      await this.#fill();
    }
  }

  async #bytes(n: number): Promise<Uint8Array> {
    while (this.#buffer.length < n) await this.#fill();
    const out = this.#buffer.subarray(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return out;
  }
}

/**
 * Bytes backed by a plain `ArrayBuffer`: what `new Uint8Array(n)` makes.
 * Spelled as the return type of a constructor call, not
 * `Uint8Array<ArrayBuffer>`, so that the tests type-check on every supported
 * Deno (its TypeScript made `Uint8Array` generic in 2.2).
 */
export type Bytes = ReturnType<typeof bytes>;
function bytes(n: number) {
  return new Uint8Array(n);
}

/** The chunks of a body, joined into one array. */
export function joined(parts: readonly Uint8Array[]): Bytes {
  const out = bytes(parts.reduce((n, part) => n + part.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

/** `n` bytes of varied content (so a shifted or dropped chunk changes the hash). */
export function payload(n: number): Bytes {
  const out = bytes(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + (i >> 8)) & 0xff;
  return out;
}

/** What the fixture's /upload answers for `bytes`: "<length> <sha-256 hex>". */
export async function digest(bytes: Uint8Array): Promise<string> {
  const hash = await crypto.subtle.digest(
    "SHA-256",
    bytes.slice(),
  );
  const hex = Array.from(
    new Uint8Array(hash),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return `${bytes.length} ${hex}\n`;
}

/** One request on a fresh connection that is closed afterwards. */
export async function get(port: number, path = "/"): Promise<RawResponse> {
  const conn = await Conn.open(port);
  try {
    return await conn.request(path, { connection: "close" });
  } finally {
    conn.close();
  }
}

/**
 * The response tells the client to close its connection. Deno 2.8 adds a
 * `Connection: close` of its own to some responses written after
 * `shutdown()`, beside the server's: `close, close` says the same thing
 * (a list of one token, twice), so every token must be `close`.
 */
export function assertCloses(headers: Headers): void {
  const value = headers.get("connection");
  const tokens = value?.split(",").map((t) => t.trim().toLowerCase()) ?? [];
  assert.ok(
    tokens.length > 0 && tokens.every((t) => t === "close"),
    `expected Connection: close, got ${JSON.stringify(value)}`,
  );
}

/**
 * Asserts that new TCP connections to `port` are refused within `ms`.
 * Deno closes the listener a moment after `shutdown()` returns and gives no
 * event for it, so this polls (bounded) and returns how long it took.
 */
export async function assertRefused(port: number, ms = 1000): Promise<number> {
  const start = performance.now();
  while (true) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
    } catch (error) {
      assert.ok(error instanceof Deno.errors.ConnectionRefused, String(error));
      return performance.now() - start;
    }
    const waited = performance.now() - start;
    assert.ok(waited < ms, `port ${port} still accepted after ${waited} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Waits until the fixture server has logged `n` in-flight requests to `path`. */
export function inFlight(proc: Proc, path: string, n = 1): Promise<unknown> {
  const line = `in flight: [A-Z]+ ${
    path.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")
  }\\n`;
  return proc.waitFor(new RegExp(`(${line}[\\s\\S]*){${n}}`));
}

/** Waits for exit; returns the status and ms since the given mark. */
export async function exited(proc: Proc, since: number) {
  const status = await proc.status;
  return {
    code: status.code,
    signal: status.signal,
    ms: performance.now() - since,
  };
}

/** A network namespace of the test's own, with `tcp_migrate_req` set. */
export interface Netns extends AsyncDisposable {
  /** Prepend to a command to run it inside the namespace. */
  prefix: string[];
}

let nsCount = 0;

async function run(cmd: string[]): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      stdout: "null",
      stderr: "piped",
    }).output();
    return out.success
      ? undefined
      : `\`${cmd.join(" ")}\` failed: ${
        new TextDecoder().decode(out.stderr).trim() || `exit ${out.code}`
      }`;
  } catch (error) {
    return `\`${cmd[0]}\` cannot run: ${(error as Error).message}`;
  }
}

/**
 * Creates a network namespace with loopback up and
 * `net.ipv4.tcp_migrate_req` set, so a test controls the setting without
 * touching the host's. Needs root and `ip` (iproute2); returns why not
 * (one line) where that fails.
 */
export async function netns(migrateReq = 1): Promise<Netns | string> {
  const name = `graceful-${Deno.pid}-${++nsCount}`;
  const failed = await run(["ip", "netns", "add", name]);
  if (failed) return `no network namespace: ${failed}`;
  const prefix = ["ip", "netns", "exec", name];
  // /proc/sys directly: `sysctl` lives in /usr/sbin, often not on PATH.
  const problem = await run([...prefix, "ip", "link", "set", "lo", "up"]) ??
    await run([
      ...prefix,
      "sh",
      "-c",
      `echo ${migrateReq} > /proc/sys/net/ipv4/tcp_migrate_req`,
    ]);
  const dispose = async () => void (await run(["ip", "netns", "del", name]));
  if (problem) {
    await dispose();
    return `network namespace unusable: ${problem}`;
  }
  return { prefix, [Symbol.asyncDispose]: dispose };
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** What the load client (tests/fixtures/load.ts) counted, as reports keep it. */
export interface LoadCounts {
  sent: number;
  ok: number;
  failures: Record<string, number>;
  /** All failures together. */
  failed: number;
  /** Up to 10 failures, described. */
  samples: string[];
}
