/**
 * A Hono app from npm, served gracefully: pass `app.fetch` as the handler.
 *   deno run --allow-net examples/hono.ts [port]
 */
// Inline on purpose: in deno.json's import map it would be downloaded by every
// `deno task`, the demo and the tests included.
// deno-lint-ignore no-import-prefix
import { Hono } from "npm:hono@^4";
// deno-lint-ignore no-import-prefix
import { logger } from "npm:hono@^4/logger";
import { serve } from "../mod.ts";

const app = new Hono();
app.use(logger());
app.get("/", (c) => c.text("hello from hono\n"));
app.get("/slow", async (c) => {
  await new Promise((resolve) => setTimeout(resolve, 500));
  return c.text("slow hono\n");
});

serve({
  hostname: "127.0.0.1",
  port: Number(Deno.args[0] ?? 8000),
  onListen: ({ hostname, port }) =>
    console.log(`listening on http://${hostname}:${port}/`),
}, app.fetch);
