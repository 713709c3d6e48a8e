/**
 * Shutdown latency: signal → process exit, for an idle server, a server with
 * one in-flight request of known remaining time, and a never-ending stream
 * against the drain deadline.
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

async function idle(): Promise<number> {
  const { proc } = await startServer({ impl: "graceful" }, false);
  const signalled = performance.now();
  proc.kill("SIGTERM");
  await proc.status;
  return performance.now() - signalled;
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
  const scenarios: [string, string, () => Promise<number>][] = [
    ["idle server", "exit − signal", idle],
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
  const rows: LatencyRow[] = [];
  for (const [scenario, measure, fn] of scenarios) {
    const values: number[] = [];
    for (let i = 0; i < runs; i++) values.push(await fn());
    rows.push({
      scenario,
      runs,
      measure,
      median: round(median(values)),
      max: round(Math.max(...values)),
    });
    log(
      `shutdown ${scenario}: median ${rows.at(-1)!.median} ms, max ${
        rows.at(-1)!.max
      } ms`,
    );
  }
  return rows;
}
