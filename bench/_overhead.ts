/**
 * Overhead: raw `Deno.serve` against `serve()`, same handler, measured at
 * the same time. Both servers are pinned to one core (0) and loaded at once,
 * each by its own client pinned to the other core (1): the kernel shares
 * core 0 between them, so whatever else the machine does in that second
 * slows both alike (run one after the other, rounds of the same pair ranged
 * 0.6–1.6 here). The cost of a request is the server's CPU time (user +
 * system, from /proc/PID/stat) divided by the requests it answered; the
 * ratio is raw's CPU per request over serve()'s: serve()'s requests per
 * CPU-second relative to raw, which is the throughput ratio of a server
 * that is CPU-bound. Rounds go round-robin over the bodies, so each body's
 * rounds are spread over the whole run. The body "control" pits two raw
 * servers against each other: how far from 1 the method itself strays;
 * "control-post-stream" does the same with the 4 KiB echo.
 */
import {
  cpuMs,
  median,
  peakRssMiB,
  Proc,
  round,
  startServer,
  wrk,
  type WrkResult,
} from "./_run.ts";

const SSE_CLIENT = new URL("./fixtures/sse_client.ts", import.meta.url)
  .pathname;

/** One server's numbers in one round. */
interface Side extends WrkResult {
  rssMiB: number;
  /** Server CPU time during the measured run (ms). */
  cpuMs: number;
}

/** What one body kind's load looks like. */
function load(body: string) {
  return {
    // POST bodies: "post-4k" / "post-1mib" (read with arrayBuffer()),
    // "post-stream" / "post-stream-1mib" (echoed through req.body).
    post: {
      "post-4k": 4096,
      "post-1mib": 1 << 20,
      "post-stream": 4096,
      "post-stream-1mib": 1 << 20,
    }[body] ?? 0,
    // 100 MiB per response: a few connections, or nothing completes.
    connections: body === "file-100mib" ? 4 : 50,
    warmup: body === "file-100mib" ? 3 : 1,
  };
}

/** Server-sent events: `seconds` of reading small events on 10 connections. */
async function sseClient(port: number, seconds: number, pin: boolean) {
  const client = new Proc(
    ["run", "--allow-net", SSE_CLIENT, JSON.stringify({ port, seconds })],
    {},
    pin ? ["taskset", "-c", "1"] : [],
  );
  await client.status;
  const events = JSON.parse(client.stdout.trim()).events as number;
  return { rps: events / seconds, p50: 0, p99: 0, requests: events };
}

/** One round: both servers up, loaded at once, CPU per request of each. */
async function pair(
  body: string,
  seconds: number,
  pin: boolean,
): Promise<{ raw: Side; graceful: Side }> {
  const files = body.startsWith("file")
    ? ["--allow-read", "--allow-write"]
    : [];
  // "control" and "control-<body>": two raw servers (hello, or that
  // body), the method's own noise floor.
  const control = body.startsWith("control");
  const impls = control
    ? ["raw", "raw"] as const
    : ["raw", "graceful"] as const;
  const served = body === "control" ? "hello" : body.replace(/^control-/, "");
  const servers = await Promise.all(
    impls.map((impl) =>
      startServer(
        { impl, body: served },
        pin,
        files,
      )
    ),
  );
  try {
    const { post, connections, warmup } = load(served);
    const run = (s: number) =>
      Promise.all(
        servers.map(({ port }) =>
          body === "sse"
            ? sseClient(port, s, pin)
            : wrk(port, s, pin, connections, post)
        ),
      );
    await run(warmup); // let V8 optimise both hot paths
    const before = await Promise.all(servers.map((s) => cpuMs(s.proc.pid)));
    const results = await run(seconds);
    const after = await Promise.all(servers.map((s) => cpuMs(s.proc.pid)));
    const side = async (i: number): Promise<Side> => ({
      ...results[i],
      cpuMs: after[i] - before[i],
      rssMiB: await peakRssMiB(servers[i].proc.pid),
    });
    return { raw: await side(0), graceful: await side(1) };
  } finally {
    for (const { proc } of servers) proc.kill("SIGKILL");
    await Promise.all(servers.map(({ proc }) => proc.status));
  }
}

/** Server CPU time per request (µs). */
const cpuPerRequest = (side: Side) => (side.cpuMs * 1000) / side.requests;

/** One body kind's comparison. */
export interface OverheadRow {
  body: string;
  rounds: number;
  /** Medians over the rounds (req/s while sharing core 0 with the other). */
  raw: { rps: number; p99: number; rssMiB: number; cpuUs: number };
  graceful: { rps: number; p99: number; rssMiB: number; cpuUs: number };
  /** Median of per-round ratios (raw CPU per request / serve()'s), min, max. */
  ratio: { median: number; min: number; max: number };
  /** Every round's ratio, in order. */
  ratios: number[];
}

/** Runs `rounds` rounds, round-robin over `bodies`. */
export async function overhead(
  bodies: string[],
  rounds: number,
  seconds: number,
  pin: boolean,
  log: (line: string) => void,
): Promise<OverheadRow[]> {
  const runs = new Map<string, { raw: Side; graceful: Side }[]>(
    bodies.map((body) => [body, []]),
  );
  for (let i = 0; i < rounds; i++) {
    for (const body of bodies) {
      try {
        const got = await pair(body, seconds, pin);
        runs.get(body)!.push(got);
        log(
          `overhead ${body} round ${i + 1}/${rounds}: CPU per request raw ${
            round(cpuPerRequest(got.raw), 2)
          } µs, serve() ${round(cpuPerRequest(got.graceful), 2)} µs, ratio ${
            round(cpuPerRequest(got.raw) / cpuPerRequest(got.graceful), 3)
          }`,
        );
      } catch (error) {
        // One body that fails must not lose the others' rows.
        log(
          `overhead ${body} round ${i + 1} failed: ${(error as Error).message}`,
        );
      }
    }
  }
  const rows: OverheadRow[] = [];
  for (const [body, got] of runs) {
    if (got.length === 0) continue;
    const ratios = got.map((g) =>
      cpuPerRequest(g.raw) / cpuPerRequest(g.graceful)
    );
    const summary = (sides: Side[]) => ({
      rps: Math.round(median(sides.map((s) => s.rps))),
      p99: round(median(sides.map((s) => s.p99)), 3),
      rssMiB: round(Math.max(...sides.map((s) => s.rssMiB))),
      cpuUs: round(median(sides.map(cpuPerRequest)), 2),
    });
    rows.push({
      body,
      rounds: got.length,
      raw: summary(got.map((g) => g.raw)),
      graceful: summary(got.map((g) => g.graceful)),
      ratios: ratios.map((r) => round(r, 3)),
      ratio: {
        median: round(median(ratios), 3),
        min: round(Math.min(...ratios), 3),
        max: round(Math.max(...ratios), 3),
      },
    });
  }
  return rows;
}
