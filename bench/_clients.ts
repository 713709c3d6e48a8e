/**
 * One SIGTERM under real client pools (tests/_one_sigterm.ts): `serve()`
 * beside raw `Deno.serve` stopped by hand with `shutdown()`, interleaved
 * round by round, each client library sending GETs and 4 KiB POSTs at
 * 200/s each. Per client, server and method: requests sent, refused at
 * connect (nothing lost: the server had gone), failed after sending (lost),
 * per signal.
 */
import { median } from "./_run.ts";
import { CLIENT_KINDS } from "../tests/_clients.ts";
import { oneSigterm, type ServerKind, SERVERS } from "../tests/_one_sigterm.ts";
import { Proc } from "../tests/_helpers.ts";

/** One row per client, server and method (what the report shows). */
export interface ClientRow {
  client: string;
  server: ServerKind;
  method: "GET" | "POST";
  signals: number;
  sent: number;
  refused: number;
  failed: number;
  /** SIGTERM → exit (ms): median and max. */
  exitMs: { median: number; max: number };
}

/** `rounds` SIGTERMs per client and server. */
export async function clientStops(
  rounds: number,
  log: (line: string) => void,
): Promise<ClientRow[]> {
  Proc.limitMs = undefined;
  const rows: ClientRow[] = [];
  const kinds = Object.keys(SERVERS) as ServerKind[];
  for (const client of Object.keys(CLIENT_KINDS)) {
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
      const ms = exits.get(row.server)!;
      row.exitMs = {
        median: Math.round(median(ms) * 10) / 10,
        max: Math.round(Math.max(...ms) * 10) / 10,
      };
      rows.push(row);
      log(
        `clients: ${client}, ${row.server} ${row.method}: ${row.failed} failed, ${row.refused} refused of ${row.sent} in ${row.signals} SIGTERMs`,
      );
    }
  }
  return rows;
}
