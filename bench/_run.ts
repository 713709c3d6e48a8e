/** Process helpers for the benchmarks: servers, wrk, pinning, memory. */
import { Proc } from "../tests/_helpers.ts";

export { Conn, netns, Proc, SUPERVISOR_FLAGS } from "../tests/_helpers.ts";

// Benchmark runs may be long; each ends its processes itself.
Proc.limitMs = undefined;

const here = (path: string) => new URL(path, import.meta.url).pathname;
/** The benchmark server script. */
export const SERVER = here("./fixtures/server.ts");
/** The load client (never retries). */
export const LOAD = here("../tests/fixtures/load.ts");
/** The supervisor. */
export const RESTART = here("../restart.ts");

/** Runs a command, returns stdout; throws with stderr on failure. */
export async function sh(cmd: string[]): Promise<string> {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `${cmd.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/** True if `taskset` can pin to cores 0 and 1 here. */
export async function canPin(): Promise<boolean> {
  try {
    await sh(["taskset", "-c", "1", "true"]);
    return Deno.build.os === "linux" && navigator.hardwareConcurrency >= 2;
  } catch {
    return false;
  }
}

/** Installs wrk from Debian's packages if it is missing. */
export async function ensureWrk(): Promise<void> {
  try {
    await sh(["sh", "-c", "command -v wrk"]);
  } catch {
    console.error("[bench] installing wrk (apt-get)");
    await sh(["apt-get", "update", "-qq"]);
    await sh(["apt-get", "install", "-y", "-qq", "wrk"]);
  }
}

/** Starts a server (pinned to core 0 if possible) and waits until it listens. */
export async function startServer(
  config: Record<string, unknown>,
  pin: boolean,
  extraFlags: string[] = [],
): Promise<{ proc: Proc; port: number }> {
  const args = [
    "run",
    "--allow-net",
    ...extraFlags,
    SERVER,
    JSON.stringify(config),
  ];
  const proc = pin
    ? new Proc(args, {}, ["taskset", "-c", "0"])
    : new Proc(args);
  const m = await proc.waitFor(/listening on http:\/\/[^:]+:(\d+)\//);
  return { proc, port: Number(m[1]) };
}

/** One wrk run's numbers. */
export interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  /** Requests completed in the run. */
  requests: number;
}

function ms(value: string): number {
  const m = value.match(/^([\d.]+)(us|ms|s)$/);
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === "us" ? n / 1000 : m[2] === "s" ? n * 1000 : n;
}

/** Runs wrk (pinned to core 1 if possible) and parses req/s and latency. */
export async function wrk(
  port: number,
  seconds: number,
  pin: boolean,
  connections = 50,
  postBytes = 0,
): Promise<WrkResult> {
  // A POST of `postBytes` bytes per request, through wrk's Lua hook.
  const script = postBytes > 0
    ? await Deno.makeTempFile({ suffix: ".lua" })
    : undefined;
  if (script) {
    await Deno.writeTextFile(
      script,
      `wrk.method = "POST"\nwrk.body = string.rep("x", ${postBytes})\n` +
        `wrk.headers["Content-Type"] = "application/octet-stream"\n`,
    );
  }
  const cmd = [
    ...(pin ? ["taskset", "-c", "1"] : []),
    "wrk",
    "-t1",
    `-c${connections}`,
    `-d${seconds}s`,
    "--latency",
    ...(script ? ["-s", script] : []),
    `http://127.0.0.1:${port}/`,
  ];
  const out = await sh(cmd).finally(() => script && Deno.remove(script));
  const rps = Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
  const requests = Number(out.match(/(\d+) requests in/)?.[1]);
  const p50 = ms(out.match(/\s50%\s+(\S+)/)?.[1] ?? "");
  const p99 = ms(out.match(/\s99%\s+(\S+)/)?.[1] ?? "");
  if (!(rps > 0)) throw new Error(`wrk gave no result:\n${out}`);
  return { rps, p50, p99, requests };
}

/** CPU time (user + system) a process has used so far, in ms. */
export async function cpuMs(pid: number): Promise<number> {
  // Through cat: Deno wants --allow-all to read /proc files itself.
  const fields = (await sh(["cat", `/proc/${pid}/stat`])).split(") ")[1]
    .split(" ");
  // utime and stime are fields 14 and 15 (1-based), in clock ticks (100/s).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Peak resident memory of a process, in MiB (VmHWM). */
export async function peakRssMiB(pid: number): Promise<number> {
  const status = await sh(["cat", `/proc/${pid}/status`]);
  const kb = Number(status.match(/VmHWM:\s+(\d+) kB/)?.[1]);
  return Math.round((kb / 1024) * 10) / 10;
}

/** Median of numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Rounds to `digits` decimals. */
export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
