/**
 * One SIGTERM under real client pools (tests/_one_sigterm.ts): `serve()`
 * beside raw `Deno.serve` stopped by hand with `shutdown()`, interleaved
 * round by round, each client library sending GETs and 4 KiB POSTs at
 * 200/s each. Per client, server and method: requests sent, refused at
 * connect (nothing lost: the server had gone), failed after sending (lost),
 * per signal.
 */
import { median } from "./_run.ts";
import { CLIENT_KINDS, restartsUnder } from "../tests/_clients.ts";
import { oneSigterm, type ServerKind, SERVERS } from "../tests/_one_sigterm.ts";
import { Proc } from "../tests/_helpers.ts";

/** One row per client, server and method (what the report shows). */
export interface ClientRow {
  client: string;
  /** What stopped or restarted the server (absent: one SIGTERM). */
  scenario?: "one SIGTERM" | "supervisor restarts";
  server: ServerKind | "restart.ts";
  method: "GET" | "POST";
  signals: number;
  sent: number;
  refused: number;
  failed: number;
  /** SIGTERM → exit (ms): median and max. */
  exitMs: { median: number; max: number };
}

/**
 * `rounds` SIGTERMs per client and server, then `restarts` supervisor
 * restarts per client (GET and POST at 150/s each). `only`: the clients
 * whose name contains one of these (any case); all by default.
 */
export async function clientStops(
  rounds: number,
  restarts: number,
  log: (line: string) => void,
  only?: string[],
): Promise<ClientRow[]> {
  Proc.limitMs = undefined;
  const rows: ClientRow[] = [];
  const kinds = Object.keys(SERVERS) as ServerKind[];
  const clients = Object.keys(CLIENT_KINDS).filter((name) =>
    !only ||
    only.some((part) => name.toLowerCase().includes(part.toLowerCase()))
  );
  if (clients.length === 0) {
    throw new Error(
      `--clients: no client's name contains ${
        JSON.stringify(only!.join(","))
      } (${Object.keys(CLIENT_KINDS).join(", ")})`,
    );
  }
  for (const client of clients) {
    const sums = new Map<string, ClientRow>();
    const exits = new Map<ServerKind, number[]>();
    for (let round = 0; round < rounds; round++) {
      for (const server of round % 2 ? [...kinds].reverse() : kinds) {
        const r = await oneSigterm(server, client);
        exits.set(server, [...(exits.get(server) ?? []), r.exitMs]);
        for (
          const [method, counts] of [["GET", r.get], ["POST", r.post]] as const
        ) {
          const key = `${server} ${method}`;
          const row = sums.get(key) ?? {
            client,
            server,
            method,
            signals: 0,
            sent: 0,
            refused: 0,
            failed: 0,
            exitMs: { median: 0, max: 0 },
          };
          row.signals++;
          row.sent += counts.sent;
          row.refused += counts.refused;
          row.failed += counts.failed;
          sums.set(key, row);
        }
      }
    }
    for (const row of sums.values()) {
      const ms = exits.get(row.server as ServerKind)!;
      row.exitMs = {
        median: Math.round(median(ms) * 10) / 10,
        max: Math.round(Math.max(...ms) * 10) / 10,
      };
      rows.push({ ...row, scenario: "one SIGTERM" });
      log(
        `clients: ${client}, ${row.server} ${row.method}: ${row.failed} failed, ${row.refused} refused of ${row.sent} in ${row.signals} SIGTERMs`,
      );
    }
    if (restarts === 0) continue;
    const start = performance.now();
    const r = await restartsUnder(client, { restarts });
    const per = Math.round((performance.now() - start) / restarts);
    for (
      const [method, counts] of [["GET", r.get], ["POST", r.post]] as const
    ) {
      rows.push({
        client,
        scenario: "supervisor restarts",
        server: "restart.ts",
        method,
        signals: restarts,
        sent: counts.sent,
        refused: counts.refused,
        failed: counts.failed,
        exitMs: { median: per, max: per },
      });
      log(
        `clients: ${client}, restart.ts ${method}: ${counts.failed} failed, ${counts.refused} refused of ${counts.sent} in ${restarts} restarts`,
      );
    }
  }
  return rows;
}
