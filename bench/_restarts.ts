/**
 * Restarts under load: a client that never retries sends 1000 req/s while
 * the server is restarted at a fixed cadence by one of three methods:
 *   naive       stop the old server (graceful drain), then start the new one
 *   handoff     reusePort handoff without pre-drain or detach (supervisor
 *               with --pre-drain 0, workers without --allow-ffi)
 *   unsteered   the supervisor as documented but with --no-steer (workers
 *               with --allow-ffi: the listener is still detached where
 *               tcp_migrate_req=1)
 *   fixed       the supervisor with a pre-drain of a fixed 1000 ms
 *               (--rollback-window 1000: as before it ended early)
 *   supervisor  this module's supervisor as documented (--pre-drain 1000,
 *               ending once the old worker is quiet, after the 100 ms
 *               rollback window; workers with --allow-ffi: steering, and
 *               detach where tcp_migrate_req=1)
 * Each run happens in a network namespace of its own with the chosen
 * net.ipv4.tcp_migrate_req (the host's setting is never touched); where
 * namespaces are unavailable it runs on the host with the host's value.
 */
import { readMigrateReq } from "../supervisor/_reports.ts";
import {
  LOAD,
  netns,
  Proc,
  RESTART,
  SERVER,
  SUPERVISOR_FLAGS,
} from "./_run.ts";
import type { LoadCounts } from "../tests/_helpers.ts";

/** A restart method. */
export type Method =
  | "naive"
  | "handoff"
  | "unsteered"
  | "fixed"
  | "supervisor";

/** One run's outcome. */
export interface RestartRun extends LoadCounts {
  method: Method;
  mode: "keepalive" | "new";
  /** "get", or "post": 4 KiB bodies read after 0–40 ms, checked by digest. */
  request?: "get" | "post";
  migrateReq: string;
  restarts: number;
  /** Workers sharing the port (supervisor methods; absent means 1). */
  workers?: number;
  /** [bucket start ms, ok, failed] per 100 ms. */
  timeline: [number, number, number][];
  /** When each restart was triggered, ms after the load started. */
  marks: number[];
  /**
   * Per restart: ms from the signal until the new generation serves and the
   * old one has exited (the supervisor's rolling restart is then complete).
   */
  restartMs?: number[];
}

const PORT = 18080;
/** The POST runs' worker: the test fixture with its /upload route. */
const APP = new URL("../tests/fixtures/app.ts", import.meta.url).pathname;
const WORKER_FLAGS = ["--allow-net", "--allow-env", "--unstable-net"];

interface Target {
  /** Triggers one restart; resolves with its ms when it is complete. */
  restart(generation: number): Promise<number>;
  stop(): Promise<void>;
}

async function naive(prefix: string[]): Promise<Target> {
  const spawn = async () => {
    const proc = new Proc(
      [
        "run",
        "--allow-net",
        SERVER,
        JSON.stringify({ impl: "graceful", port: PORT }),
      ],
      {},
      prefix,
    );
    await proc.waitFor(/listening on/);
    return proc;
  };
  let current = await spawn();
  return {
    async restart() {
      const start = performance.now();
      current.kill("SIGTERM");
      await current.status;
      current = await spawn();
      return performance.now() - start;
    },
    async stop() {
      current.kill("SIGTERM");
      await current.status;
    },
  };
}

async function supervised(
  prefix: string[],
  method: Method,
  post: boolean,
  workers: number,
): Promise<Target> {
  const worker = [
    Deno.execPath(),
    "run",
    ...WORKER_FLAGS,
    ...(method === "handoff" ? [] : ["--allow-ffi"]),
    ...(post
      ? [APP, JSON.stringify({ port: PORT, logger: false })]
      : [SERVER, JSON.stringify({ impl: "graceful", port: PORT })]),
  ];
  const proc = new Proc(
    [
      ...SUPERVISOR_FLAGS,
      RESTART,
      "--pre-drain",
      method === "handoff" ? "0" : "1000",
      ...(method === "unsteered" ? ["--no-steer"] : []),
      ...(method === "fixed" ? ["--rollback-window", "1000"] : []),
      ...(workers > 1 ? ["--workers", String(workers)] : []),
      "--",
      ...worker,
    ],
    {},
    prefix,
  );
  await proc.waitFor(
    new RegExp(`(generation 1\\) ready[\\s\\S]*){${workers}}`),
  );
  return {
    async restart(generation) {
      const start = performance.now();
      proc.kill("SIGHUP");
      await proc.waitFor(
        new RegExp(`generation ${generation} serving`),
        60_000,
      );
      await proc.waitFor(
        new RegExp(`\\(generation ${generation - 1}\\) (exited|was killed)`),
        60_000,
      );
      return performance.now() - start;
    },
    async stop() {
      proc.kill("SIGTERM");
      await proc.status;
    },
  };
}

/** Runs one configuration. */
export async function restartRun(
  method: Method,
  mode: "keepalive" | "new",
  migrateReq: 0 | 1,
  restarts: number,
  interval: number,
  request: "get" | "post" = "get",
  workers = 1,
): Promise<RestartRun> {
  const made = await netns(migrateReq);
  const ns = typeof made === "string" ? undefined : made;
  const prefix = ns?.prefix ?? [];
  const actual = ns
    ? String(migrateReq)
    : `${readMigrateReq() ?? "unknown"} (host)`;
  try {
    const target = method === "naive"
      ? await naive(prefix)
      : await supervised(prefix, method, request === "post", workers);
    const load = new Proc(
      [
        "run",
        "--allow-net",
        LOAD,
        JSON.stringify({
          port: PORT,
          rate: 1000,
          duration: restarts * interval + 1500,
          mode,
          // POSTs wait up to 40 ms before reading: more connections keep
          // 1000/s on keep-alive.
          connections: request === "post" ? 40 : 10,
          ...(request === "post"
            ? { path: "/upload?wait=random", body: 4096 }
            : {}),
        }),
      ],
      {},
      prefix,
    );
    await load.waitFor(/load running/);
    const started = performance.now();
    const marks: number[] = [];
    const restartMs: number[] = [];
    for (let i = 0; i < restarts; i++) {
      const due = started + 500 + i * interval;
      await new Promise((r) =>
        setTimeout(r, Math.max(0, due - performance.now()))
      );
      marks.push(Math.round(performance.now() - started));
      restartMs.push(Math.round(await target.restart(i + 2)));
    }
    load.kill("SIGTERM");
    await load.status;
    await target.stop();
    const result = JSON.parse(load.stdout.trim().split("\n").pop()!);
    const failed = Object.values(result.failures as Record<string, number>)
      .reduce((a, b) => a + b, 0);
    return {
      method,
      mode,
      request,
      migrateReq: actual,
      restarts,
      workers,
      sent: result.sent,
      ok: result.ok,
      failures: result.failures,
      failed,
      samples: result.samples,
      timeline: result.timeline,
      marks,
      restartMs,
    };
  } finally {
    await ns?.[Symbol.asyncDispose]();
  }
}
