/**
 * Shutdown latency: signal → process exit, for idle servers (by hand,
 * serve(), serve() with --allow-ffi, the auto preload: side by side, in
 * turn each round), a server with one in-flight request of known remaining
 * time, a never-ending stream against the drain deadline, and the signal's
 * path: its first listener → Deno's `shutdown()` call, by hand and serve().
 */
import { Conn, median, round, startServer } from "./_run.ts";

/** Median and max of one scenario, in ms. */
export interface LatencyRow {
  scenario: string;
  runs: number;
  /** What is measured, e.g. "exit − signal". */
  measure: string;
  median: number;
  max: number;
}

const IN_FLIGHT_MS = 500;
const SIGNAL_AT_MS = 100;
const DEADLINE_MS = 500;

const AUTO = new URL("../auto.ts", import.meta.url).pathname;

/**
 * Idle servers side by side, run in turn each round: SIGTERM → exit (ms).
 * With their progress lines on, as users run them.
 */
const IDLE: [string, Record<string, unknown>, string[]][] = [
  ["idle, Deno.serve + shutdown() by hand", { impl: "byhand" }, []],
  ["idle, serve()", { impl: "graceful", log: true }, []],
  ["idle, serve() --allow-ffi", { impl: "graceful", log: true }, [
    "--allow-ffi",
  ]],
  ["idle, the auto preload over Deno.serve", { impl: "raw" }, [
    "--allow-env",
    "--preload",
    AUTO,
  ]],
];

async function idle(
  config: Record<string, unknown>,
  flags: string[],
): Promise<number> {
  const { proc } = await startServer(config, false, flags);
  // Idle: 100 ms after it said it listens (what runs at start is done).
  await new Promise((r) => setTimeout(r, 100));
  const signalled = performance.now();
  proc.kill("SIGTERM");
  await proc.status;
  return performance.now() - signalled;
}

const SIGNAL_PATH = new URL("./fixtures/signal_path.ts", import.meta.url)
  .pathname;

/** The signal's first listener → Deno's `shutdown()` call (ms), idle. */
async function signalPath(how: "byhand" | "serve"): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", SIGNAL_PATH, how],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream());
  let out = "";
  for await (const chunk of lines) {
    out += chunk;
    if (out.includes("ready\n") && !out.includes("signalled")) {
      out += "signalled";
      await new Promise((r) => setTimeout(r, 100)); // idle, as above
      child.kill("SIGTERM");
    }
  }
  await child.status;
  const path = out.match(/path ([\d.]+)/);
  if (!path) throw new Error(`signal_path.ts ${how}: no path in ${out}`);
  return Number(path[1]);
}

async function inFlight(): Promise<number> {
  const { proc, port } = await startServer({ impl: "graceful" }, false);
  const conn = await Conn.open(port);
  const pending = conn.request(`/slow?ms=${IN_FLIGHT_MS}`);
  await new Promise((r) => setTimeout(r, SIGNAL_AT_MS));
  proc.kill("SIGTERM");
  await pending;
  const answered = performance.now();
  conn.close();
  await proc.status;
  return performance.now() - answered;
}

async function deadline(): Promise<number> {
  const { proc, port } = await startServer(
    { impl: "graceful", drainTimeout: DEADLINE_MS },
    false,
  );
  const conn = await Conn.open(port);
  await conn.send("/sse");
  const stream = conn.read().catch(() => undefined);
  await new Promise((r) => setTimeout(r, 100));
  const signalled = performance.now();
  proc.kill("SIGTERM");
  await proc.status;
  const elapsed = performance.now() - signalled;
  await stream;
  conn.close();
  return elapsed - DEADLINE_MS;
}

/** Runs each scenario `runs` times. */
export async function shutdownLatency(
  runs: number,
  log: (line: string) => void,
): Promise<LatencyRow[]> {
  const rows: LatencyRow[] = [];
  const idles: number[][] = IDLE.map(() => []);
  for (let i = 0; i < runs; i++) {
    for (const [at, [, config, flags]] of IDLE.entries()) {
      idles[at].push(await idle(config, flags));
    }
  }
  for (const [at, [scenario]] of IDLE.entries()) {
    rows.push(row(scenario, runs, "exit − signal", idles[at], log));
  }
  const paths = { byhand: [] as number[], serve: [] as number[] };
  for (let i = 0; i < runs; i++) {
    for (
      const how of i % 2
        ? ["serve", "byhand"] as const
        : ["byhand", "serve"] as const
    ) {
      paths[how].push(await signalPath(how));
    }
  }
  const measure = "shutdown() call − first signal listener";
  rows.push(
    row(
      "signal path, Deno.serve + shutdown() by hand",
      runs,
      measure,
      paths.byhand,
      log,
      2,
    ),
  );
  rows.push(row("signal path, serve()", runs, measure, paths.serve, log, 2));
  const scenarios: [string, string, () => Promise<number>][] = [
    [
      `one request in flight (${IN_FLIGHT_MS} ms handler, signal at ${SIGNAL_AT_MS} ms)`,
      "exit − response received",
      inFlight,
    ],
    [
      `never-ending SSE stream, drainTimeout ${DEADLINE_MS} ms`,
      "exit − signal − drainTimeout",
      deadline,
    ],
  ];
  for (const [scenario, measure, fn] of scenarios) {
    const values: number[] = [];
    for (let i = 0; i < runs; i++) values.push(await fn());
    rows.push(row(scenario, runs, measure, values, log));
  }
  return rows;
}

function row(
  scenario: string,
  runs: number,
  measure: string,
  values: number[],
  log: (line: string) => void,
  digits = 1,
): LatencyRow {
  const r = {
    scenario,
    runs,
    measure,
    median: round(median(values), digits),
    max: round(Math.max(...values), digits),
  };
  log(`shutdown ${scenario}: median ${r.median} ms, max ${r.max} ms`);
  return r;
}
