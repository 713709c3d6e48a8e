/**
 * What a restart of an idle server is made of: SIGHUP → old worker gone,
 * with the default `--rollback-window` (50 ms) and with 100 ms, and its
 * parts from the supervisor's own lines (the new worker's start to ready;
 * the old worker's pre-drain, drain and exit). Beside it, how long Deno
 * itself takes to start a server: spawn → "listening" for raw `Deno.serve`
 * and for `serve()`, in turn each round. `deno task bench --only=restart-idle`.
 */
import { median, type Proc, SERVER, startServer } from "./_run.ts";
import { freePort, superviseScript } from "../tests/_helpers.ts";

const APP = new URL("../tests/fixtures/app.ts", import.meta.url).pathname;

/** One row: medians in ms. */
export interface RestartIdleRow {
  what: string;
  /** SIGHUP → the old worker's exit seen (or spawn → listening). */
  totalMs: number;
  /** The new worker's "ready in" (restarts only). */
  readyMs?: number;
  /** The old worker's "after N ms of draining" (restarts only). */
  drainingMs?: number;
  runs: number;
}

async function startTimes(runs: number) {
  const kinds = [["raw Deno.serve", { impl: "raw" }], ["serve()", {}]] as const;
  const seen: number[][] = kinds.map(() => []);
  for (let i = 0; i < runs; i++) {
    for (const [at, [, config]] of kinds.entries()) {
      const start = performance.now();
      const { proc } = await startServer(config, false);
      seen[at].push(performance.now() - start);
      proc.kill("SIGKILL");
      await proc.status;
    }
  }
  return kinds.map(([what], at): RestartIdleRow => ({
    what: `start of a server: spawn → listening, ${what} (${
      SERVER.split("/").at(-1)
    })`,
    totalMs: Math.round(median(seen[at])),
    runs,
  }));
}

async function restarts(
  rollback: number,
  runs: number,
): Promise<RestartIdleRow> {
  const port = freePort();
  const proc: Proc = await superviseScript([APP, JSON.stringify({ port })], {
    flags: ["--rollback-window", String(rollback)],
  });
  const totals: number[] = [];
  try {
    for (let g = 2; g <= runs + 1; g++) {
      // Idle: nothing runs in either process when the signal comes.
      await new Promise((r) => setTimeout(r, 200));
      const start = performance.now();
      proc.kill("SIGHUP");
      await proc.waitFor(new RegExp(`\\(generation ${g - 1}\\) exited`));
      totals.push(performance.now() - start);
    }
  } finally {
    proc.kill("SIGTERM");
    await proc.status;
  }
  const numbers = (pattern: RegExp) =>
    [...proc.stderr.matchAll(pattern)].map((m) => Number(m[1]));
  return {
    what: `SIGHUP → old worker gone, idle, --rollback-window ${rollback}`,
    totalMs: Math.round(median(totals)),
    readyMs: median(numbers(/ready in (\d+) ms/g).slice(1)),
    drainingMs: median(numbers(/after (\d+) ms of draining/g)),
    runs,
  };
}

/** Runs both parts. */
export async function restartIdle(
  runs: number,
  log: (line: string) => void,
): Promise<RestartIdleRow[]> {
  const rows = [
    ...await startTimes(runs),
    await restarts(50, runs),
    await restarts(100, runs),
  ];
  for (const r of rows) {
    log(
      `restart-idle: ${r.what}: ${r.totalMs} ms${
        r.readyMs === undefined
          ? ""
          : ` (new worker ready in ${r.readyMs}, old worker draining ${r.drainingMs})`
      }`,
    );
  }
  return rows;
}
