/**
 * The census's cost (supervisor/_census.ts): CPU per look with 20 and 200
 * open connections on the port, the median of a few runs. The pre-drain
 * looks every 10 ms. `deno task bench --only=census`.
 */
import { median } from "./_run.ts";

const FIXTURE = new URL("./fixtures/census_cost.ts", import.meta.url).pathname;

/** One connection count's cost. */
export interface CensusRow {
  connections: number;
  /** CPU per look (user + system), µs: the median of the runs. */
  cpuUsPerLook: number;
  /** Every run's, in order. */
  runs: number[];
}

/** Measures `runs` times for each count of connections. */
export async function censusCost(
  counts: number[],
  runs: number,
  log: (line: string) => void,
): Promise<CensusRow[]> {
  if (Deno.build.os !== "linux") {
    log("census: skipped (Linux only)");
    return [];
  }
  const rows: CensusRow[] = [];
  for (const connections of counts) {
    const seen: number[] = [];
    for (let run = 0; run < runs; run++) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", FIXTURE, String(connections)],
        stderr: "inherit",
      }).output();
      const line = new TextDecoder().decode(out.stdout).trim();
      if (out.code !== 0) throw new Error(`census fixture failed: ${line}`);
      const { open, cpuUsPerLook } = JSON.parse(line);
      if (open !== connections) {
        throw new Error(`census saw ${open} of ${connections} connections`);
      }
      seen.push(Math.round(cpuUsPerLook));
    }
    rows.push({ connections, cpuUsPerLook: median(seen), runs: seen });
    log(
      `census: ${connections} connections, ${
        median(seen)
      } µs of CPU per look (runs ${seen.join(", ")})`,
    );
  }
  return rows;
}
