/**
 * Behind a balancer: failed requests per restart through real nginx,
 * HAProxy and Caddy (the recipes of examples/deploy/), 300 req/s from a client that
 * never retries, backends restarted one at a time (see tests/_balancers.ts).
 */
import { median, Proc } from "./_run.ts";
import {
  type BalancerRun,
  balancerRun,
  CADDY,
  HAPROXY,
  NGINX,
} from "../tests/_balancers.ts";

/** One configuration's outcome (what the report shows). */
export interface BalancerRow extends Omit<BalancerRun, "logs"> {
  /** The backends' drainDelay, as configured. */
  drainDelay: string;
  /** SIGTERM → exit of the old backends: median and max (ms). */
  exitMs?: { median: number; max: number };
}

interface Config {
  balancer: BalancerRun["balancer"];
  post: boolean;
  rounds: number;
  drainDelay?: number | { max: number; quiet: number };
}

const SELF_ENDING = { max: 5000, quiet: 200 };

function configs(rounds: number, smoke: boolean): Config[] {
  if (smoke) return [{ balancer: "nginx", post: false, rounds: 1 }];
  return [
    { balancer: "haproxy", post: false, rounds, drainDelay: 0 },
    { balancer: "haproxy", post: false, rounds, drainDelay: SELF_ENDING },
    { balancer: "haproxy", post: true, rounds, drainDelay: SELF_ENDING },
    { balancer: "haproxy", post: false, rounds: 2, drainDelay: 5000 },
    { balancer: "nginx", post: false, rounds, drainDelay: 0 },
    { balancer: "nginx", post: true, rounds, drainDelay: 0 },
    { balancer: "nginx", post: true, rounds, drainDelay: 1000 },
    { balancer: "nginx → supervisor", post: false, rounds: 2 * rounds },
    { balancer: "nginx → supervisor", post: true, rounds: 2 * rounds },
    { balancer: "caddy", post: false, rounds, drainDelay: 0 },
    { balancer: "caddy", post: true, rounds, drainDelay: 0 },
    { balancer: "caddy", post: false, rounds, drainDelay: SELF_ENDING },
    { balancer: "caddy", post: true, rounds, drainDelay: SELF_ENDING },
    { balancer: "caddy → supervisor", post: false, rounds: 2 * rounds },
    { balancer: "caddy → supervisor", post: true, rounds: 2 * rounds },
  ];
}

/**
 * Runs every configuration whose balancer is installed; `only`, if given,
 * keeps those whose balancer starts with one of its names.
 */
export async function balancers(
  rounds: number,
  smoke: boolean,
  log: (line: string) => void,
  only?: string[],
): Promise<BalancerRow[]> {
  Proc.limitMs = undefined;
  const rows: BalancerRow[] = [];
  for (const config of configs(rounds, smoke)) {
    if (only && !only.some((name) => config.balancer.startsWith(name))) {
      continue;
    }
    const needs = config.balancer === "haproxy"
      ? HAPROXY
      : config.balancer.startsWith("caddy")
      ? CADDY
      : NGINX;
    if (!needs) {
      log(`balancers: ${config.balancer} not installed, row skipped`);
      continue;
    }
    const backend = config.drainDelay === undefined ? {} : {
      healthPath: "/healthz",
      drainDelay: config.drainDelay,
    };
    const { logs: _, ...run } = await balancerRun({
      balancer: config.balancer,
      post: config.post,
      rounds: config.rounds,
      backend,
    });
    const row: BalancerRow = {
      ...run,
      drainDelay: config.balancer.endsWith("→ supervisor")
        ? "— (supervisor: 1 s pre-drain)"
        : JSON.stringify(config.drainDelay ?? 0),
      ...(run.exits.length
        ? { exitMs: { median: median(run.exits), max: Math.max(...run.exits) } }
        : {}),
    };
    rows.push(row);
    log(
      `balancers ${row.balancer} ${row.request} drainDelay ${row.drainDelay}: ${row.failed} failed of ${row.sent} in ${row.restarts} restarts ${
        JSON.stringify(row.failures)
      }${row.exitMs ? `, SIGTERM → exit median ${row.exitMs.median} ms` : ""}`,
    );
  }
  return rows;
}
