/**
 * A database-style resource opened at start and closed by a cleanup hook
 * after the last request has drained.
 *   deno run --allow-net examples/database.ts [port]
 */
import { serve } from "../mod.ts";

/** Stands in for a connection pool: queries fail once it is closed. */
class Pool {
  #open = true;
  async query(sql: string): Promise<string> {
    if (!this.#open) throw new Error("pool is closed");
    console.log(`query: ${sql}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    console.log(`query done: ${sql}`);
    return `result of ${sql}`;
  }
  async close(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 50));
    this.#open = false;
    console.log("database pool closed");
  }
}

const pool = new Pool();
const server = serve({
  hostname: "127.0.0.1",
  port: Number(Deno.args[0] ?? 8000),
  onListen: ({ hostname, port }) =>
    console.log(`listening on http://${hostname}:${port}/`),
}, async () => new Response(`${await pool.query("select 1")}\n`));

// Runs after the drain: no request can still be using the pool.
server.onShutdown(() => pool.close(), { name: "database", timeout: 2000 });
