/**
 * Kubernetes, emulated with real netfilter (tests/_kubernetes.ts): failed
 * requests per pod deletion in rolling updates of the recipe's Deployment,
 * four clients that never retry (keep-alive and new connection, GET and
 * POST), kube-proxy's rule update late by 0, 1 or 3 s; with the recipe's
 * fixed drain delay, without one, and with the self-ending one.
 */
import { median, Proc } from "./_run.ts";
import { kubeRun, unavailable } from "../tests/_kubernetes.ts";

/** One row per client and configuration (what the report shows). */
export interface KubeRow {
  propagationMs: number;
  drainDelay: string;
  client: string;
  deleted: number;
  sent: number;
  failed: number;
  failures: Record<string, number>;
  /** SIGTERM → exit of the deleted pods: median and max (ms). */
  exitMs: { median: number; max: number };
}

/** Runs every configuration; rolling updates of the 2 pods per row. */
export async function kubernetes(
  updates: number,
  smoke: boolean,
  log: (line: string) => void,
): Promise<KubeRow[]> {
  const missing = await unavailable();
  if (missing) {
    log(`kubernetes: skipped (${missing})`);
    return [];
  }
  Proc.limitMs = undefined;
  const configs: { propagationMs: number; env?: Record<string, string> }[] =
    smoke ? [{ propagationMs: 0 }] : [
      { propagationMs: 0 },
      { propagationMs: 1000 },
      { propagationMs: 3000 },
      { propagationMs: 0, env: { GRACEFUL_DRAIN_DELAY: "0" } },
      { propagationMs: 1000, env: { GRACEFUL_DRAIN_DELAY: "0" } },
      { propagationMs: 3000, env: { GRACEFUL_DRAIN_DELAY: "0" } },
      {
        propagationMs: 1000,
        env: { GRACEFUL_DRAIN_DELAY: "5000", GRACEFUL_DRAIN_QUIET: "200" },
      },
    ];
  const rows: KubeRow[] = [];
  for (const config of configs) {
    const run = await kubeRun({ ...config, updates });
    const drainDelay = config.env?.GRACEFUL_DRAIN_QUIET
      ? `{ max: ${run.drainDelay}, quiet: ${config.env.GRACEFUL_DRAIN_QUIET} }`
      : run.drainDelay;
    for (const c of run.clients) {
      const row: KubeRow = {
        propagationMs: config.propagationMs,
        drainDelay,
        client: `${c.mode === "new" ? "new connection" : "keep-alive"} ${
          c.post ? "POST" : "GET"
        }`,
        deleted: run.deleted,
        sent: c.sent,
        failed: c.failed,
        failures: c.failures,
        exitMs: { median: median(run.exits), max: Math.max(...run.exits) },
      };
      rows.push(row);
      log(
        `kubernetes: rules ${row.propagationMs} ms late, drainDelay ${drainDelay}, ${row.client}: ${row.failed} failed of ${row.sent} in ${row.deleted} pod deletions ${
          JSON.stringify(row.failures)
        }`,
      );
    }
  }
  return rows;
}
