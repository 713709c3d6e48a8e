/**
 * The telemetry's cost with OpenTelemetry off (no `OTEL_DENO`): CPU per
 * drain for the two calls the drain makes (lifecycle/_telemetry.ts), the
 * median of a few runs. The request path has no telemetry code, so this is
 * all it costs. `deno task bench --only=telemetry`.
 */
import { median } from "./_run.ts";

const FIXTURE = new URL("./fixtures/telemetry_cost.ts", import.meta.url)
  .pathname;

/** What the runs measured. */
export interface TelemetryRow {
  /** CPU per drain (user + system), µs: the median of the runs. */
  cpuUsPerDrain: number;
  /** Every run's, in order. */
  runs: number[];
}

/** Measures `runs` times, each in a fresh process without `OTEL_DENO`. */
export async function telemetryCost(
  runs: number,
  log: (line: string) => void,
): Promise<TelemetryRow> {
  const env = Deno.env.toObject();
  delete env.OTEL_DENO;
  const seen: number[] = [];
  for (let run = 0; run < runs; run++) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-env", FIXTURE],
      env,
      clearEnv: true,
      stderr: "inherit",
    }).output();
    const line = new TextDecoder().decode(out.stdout).trim();
    if (out.code !== 0) throw new Error(`telemetry fixture failed: ${line}`);
    const { otel, usPerDrain } = JSON.parse(line);
    if (otel !== null) throw new Error(`OTEL_DENO was set: ${otel}`);
    seen.push(Math.round(usPerDrain * 100) / 100);
  }
  const row = { cpuUsPerDrain: median(seen), runs: seen };
  log(
    `telemetry off: ${row.cpuUsPerDrain} µs of CPU per drain (runs ${
      seen.join(", ")
    })`,
  );
  return row;
}
