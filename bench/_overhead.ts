/**
 * Overhead: raw `Deno.serve` against `serve()`, same handler, interleaved
 * A/B rounds, server and wrk pinned to different cores where possible.
 */
import {
  median,
  peakRssMiB,
  Proc,
  round,
  sh,
  startServer,
  wrk,
  type WrkResult,
} from "./_run.ts";

const SSE_CLIENT = new URL("./fixtures/sse_client.ts", import.meta.url)
  .pathname;

/** CPU time (user + system) a process has used, in ms. */
async function cpuMs(pid: number): Promise<number> {
  const fields = (await sh(["cat", `/proc/${pid}/stat`])).split(") ")[1]
    .split(" ");
  // utime and stime are fields 14 and 15 (1-based), in clock ticks (100/s).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * Server-sent events: a stream of small events as fast as 10 clients read
 * them. "rps" is events per second; cpuUsPerEvent is the server's CPU time
 * per event.
 */
async function sseOnce(
  impl: "raw" | "graceful",
  seconds: number,
  pin: boolean,
): Promise<WrkResult & { rssMiB: number; cpuUsPerEvent: number }> {
  const { proc } = await startServer({ impl, body: "sse" }, pin);
  try {
    const port = Number(proc.stdout.match(/:(\d+)\//)![1]);
    const read = async (s: number) => {
      const client = new Proc(
        [
          "run",
          "--allow-net",
          SSE_CLIENT,
          JSON.stringify({ port, seconds: s }),
        ],
        {},
        pin ? ["taskset", "-c", "1"] : [],
      );
      await client.status;
      return JSON.parse(client.stdout.trim()).events as number;
    };
    await read(1); // warm-up
    const cpuBefore = await cpuMs(proc.pid);
    const events = await read(seconds);
    const cpu = (await cpuMs(proc.pid)) - cpuBefore;
    return {
      rps: events / seconds,
      p50: 0,
      p99: 0,
      rssMiB: await peakRssMiB(proc.pid),
      cpuUsPerEvent: round((cpu * 1000) / events, 3),
    };
  } finally {
    proc.kill("SIGKILL");
    await proc.status;
  }
}

/** One body kind's comparison. */
export interface OverheadRow {
  body: string;
  rounds: number;
  raw: { rps: number; p50: number; p99: number; rssMiB: number };
  graceful: { rps: number; p50: number; p99: number; rssMiB: number };
  /** Median of per-round graceful/raw req/s ratios, and their min and max. */
  ratio: { median: number; min: number; max: number };
  /** Every round's graceful/raw ratio, in order. */
  ratios: number[];
  /** sse: the server's CPU time per event (µs), medians over the rounds. */
  cpuUsPerEvent?: { raw: number; graceful: number };
}

async function once(
  impl: "raw" | "graceful",
  body: string,
  seconds: number,
  pin: boolean,
): Promise<WrkResult & { rssMiB: number }> {
  const files = body.startsWith("file")
    ? ["--allow-read", "--allow-write"]
    : [];
  const { proc } = await startServer({ impl, body }, pin, files);
  try {
    const port = Number(proc.stdout.match(/:(\d+)\//)![1]);
    // POST bodies: "post-4k" / "post-1mib" (read with arrayBuffer()),
    // "post-stream" (4 KiB echoed through req.body).
    const post = { "post-4k": 4096, "post-1mib": 1 << 20, "post-stream": 4096 }[
      body
    ] ?? 0;
    // 100 MiB per response: a few connections, or nothing completes.
    const connections = body === "file-100mib" ? 4 : 50;
    // Warm-up: let V8 optimise the hot path.
    await wrk(port, body === "file-100mib" ? 3 : 1, pin, connections, post);
    const result = await wrk(port, seconds, pin, connections, post);
    return { ...result, rssMiB: await peakRssMiB(proc.pid) };
  } finally {
    proc.kill("SIGKILL");
    await proc.status;
  }
}

/** Runs `rounds` interleaved A/B rounds for each body kind. */
export async function overhead(
  bodies: string[],
  rounds: number,
  seconds: number,
  pin: boolean,
  log: (line: string) => void,
): Promise<OverheadRow[]> {
  const rows: OverheadRow[] = [];
  for (const body of bodies) {
    try {
      rows.push(await compare(body, rounds, seconds, pin, log));
    } catch (error) {
      // One body that fails must not lose the others' rows.
      log(`overhead ${body} failed, row left out: ${(error as Error).message}`);
    }
  }
  return rows;
}

async function compare(
  body: string,
  rounds: number,
  seconds: number,
  pin: boolean,
  log: (line: string) => void,
): Promise<OverheadRow> {
  type Run = WrkResult & { rssMiB: number; cpuUsPerEvent?: number };
  const raw: Run[] = [];
  const graceful: Run[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < rounds; i++) {
    // Alternate which goes first, so drift over time hits both alike.
    const order = i % 2 === 0
      ? ["raw", "graceful"] as const
      : ["graceful", "raw"] as const;
    const got: Record<string, Run> = {};
    for (const impl of order) {
      got[impl] = body === "sse"
        ? await sseOnce(impl, seconds, pin)
        : await once(impl, body, seconds, pin);
    }
    raw.push(got.raw);
    graceful.push(got.graceful);
    ratios.push(got.graceful.rps / got.raw.rps);
    log(
      `overhead ${body} round ${i + 1}/${rounds}: raw ${
        Math.round(got.raw.rps)
      } req/s, graceful ${Math.round(got.graceful.rps)} req/s, ratio ${
        round(ratios.at(-1)!, 3)
      }`,
    );
  }
  const summary = (runs: Run[]) => ({
    rps: Math.round(median(runs.map((r) => r.rps))),
    p50: round(median(runs.map((r) => r.p50)), 3),
    p99: round(median(runs.map((r) => r.p99)), 3),
    rssMiB: round(Math.max(...runs.map((r) => r.rssMiB))),
  });
  return {
    body,
    rounds,
    raw: summary(raw),
    graceful: summary(graceful),
    ratios: ratios.map((r) => round(r, 3)),
    ratio: {
      median: round(median(ratios), 3),
      min: round(Math.min(...ratios), 3),
      max: round(Math.max(...ratios), 3),
    },
    ...(body === "sse"
      ? {
        cpuUsPerEvent: {
          raw: round(median(raw.map((r) => r.cpuUsPerEvent!)), 3),
          graceful: round(median(graceful.map((r) => r.cpuUsPerEvent!)), 3),
        },
      }
      : {}),
  };
}
