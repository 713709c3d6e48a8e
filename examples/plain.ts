/**
 * A plain web-standard handler with a drain deadline and a health check
 * that answers 503 for the first 500 ms of the drain (`drainDelay`), while
 * the server still serves, so a load balancer stops sending first.
 *   deno run --allow-net examples/plain.ts [port]
 */
import { serve } from "../mod.ts";

serve({
  hostname: "127.0.0.1",
  port: Number(Deno.args[0] ?? 8000),
  drainTimeout: 5000,
  drainDelay: 500,
  healthPath: "/healthz",
  onListen: ({ hostname, port }) =>
    console.log(`listening on http://${hostname}:${port}/`),
}, async (req) => {
  const url = new URL(req.url);
  const ms = Number(url.searchParams.get("ms") ?? 0);
  console.log(`${req.method} ${url.pathname}${url.search}`);
  await new Promise((resolve) => setTimeout(resolve, ms));
  return new Response(`hello after ${ms} ms\n`);
});
