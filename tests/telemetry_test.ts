/**
 * The drain in OpenTelemetry (lifecycle/_telemetry.ts) through Deno's
 * built-in support, received by a small OTLP/HTTP (JSON) receiver: a
 * `graceful.drain` span with its counts, a `graceful.shutdown` span with the
 * exit code, the drain metrics, all exported before the process exits.
 */
import assert from "node:assert/strict";
import { exited, get, inFlight, start } from "./_helpers.ts";

interface Received {
  path: string;
  body: string;
}

/** The attributes of the first span named `name`, as key → value. */
function spanAttributes(
  traces: Received[],
  name: string,
): Record<string, unknown> | undefined {
  for (const { body } of traces) {
    // deno-lint-ignore no-explicit-any
    const json = JSON.parse(body) as any;
    for (const rs of json.resourceSpans ?? []) {
      for (const ss of rs.scopeSpans ?? []) {
        for (const span of ss.spans ?? []) {
          if (span.name !== name) continue;
          return Object.fromEntries(
            // deno-lint-ignore no-explicit-any
            span.attributes.map((a: any) => [
              a.key,
              Object.values(a.value)[0],
            ]),
          );
        }
      }
    }
  }
  return undefined;
}

Deno.test("telemetry: with OTEL_DENO, a drain exports a graceful.drain span (reason, drained, cut), a graceful.shutdown span (exit code) and the drain metrics before the exit", async () => {
  const received: Received[] = [];
  await using receiver = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      received.push({
        path: new URL(req.url).pathname,
        body: await req.text(),
      });
      return Response.json({});
    },
  );
  const { proc, port } = await start({}, undefined, [], {
    OTEL_DENO: "true",
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.addr.port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_SERVICE_NAME: "graceful-test",
  });
  await using _ = proc;
  const response = get(port, "/slow?ms=800");
  await inFlight(proc, "/slow");
  proc.kill("SIGTERM");
  assert.equal((await response).status, 200);
  assert.equal((await exited(proc, 0)).code, 0, proc.output());
  const traces = received.filter((r) => r.path === "/v1/traces");
  const drain = spanAttributes(traces, "graceful.drain");
  assert.ok(drain, `no graceful.drain span in ${traces.length} export(s)`);
  assert.equal(drain["graceful.reason"], "SIGTERM");
  assert.equal(Number(drain["graceful.drained"]), 1);
  assert.equal(Number(drain["graceful.cut"]), 0);
  assert.equal(drain["graceful.forced"], false);
  const shutdown = spanAttributes(traces, "graceful.shutdown");
  assert.equal(Number(shutdown?.["graceful.exit_code"]), 0);
  const metrics = received.filter((r) => r.path === "/v1/metrics")
    .map((r) => r.body).join("");
  assert.match(metrics, /"graceful\.drain\.duration"/);
  assert.match(metrics, /"graceful\.drain\.requests"/);
});
