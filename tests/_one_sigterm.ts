/**
 * One SIGTERM to one server process under load from a real client pool
 * (tests/_clients.ts), GETs and 4 KiB POSTs side by side: one handler
 * behind `serve()` or behind raw `Deno.serve` stopped by hand with
 * `shutdown()` (tests/fixtures/pool_app.ts). What each client counted says what the stop
 * cost it: requests refused at connect (the server had gone: nothing lost)
 * and requests that failed after being sent (lost).
 */
import { freePort, Proc } from "./_helpers.ts";
import { type Counts, startClients } from "./_clients.ts";

const here = (path: string) => new URL(path, import.meta.url).pathname;

/**
 * The servers compared: one handler (tests/fixtures/pool_app.ts) behind
 * serve() as the quick start runs it, behind serve() with `--allow-ffi`
 * (the listener can close at the signal even while bodies arrive), and
 * behind Deno.serve stopped by hand.
 */
export const SERVERS = {
  "serve()": { kind: "serve", flags: [] },
  "serve() --allow-ffi": { kind: "serve", flags: ["--allow-ffi"] },
  "Deno.serve by hand": { kind: "raw", flags: [] },
} as const;
export type ServerKind = keyof typeof SERVERS;

const APP = here("./fixtures/pool_app.ts");

/** One round's outcome. */
export interface StopRound {
  server: ServerKind;
  client: string;
  get: Counts;
  post: Counts;
  /** The server's exit code. */
  code: number;
  /** SIGTERM → exit (ms). */
  exitMs: number;
}

/**
 * Starts `server`, loads it with `client` (GET and POST, `rate`/s each) for
 * `warmMs`, sends one SIGTERM, and stops the clients once it has exited.
 */
export async function oneSigterm(
  server: ServerKind,
  client: string,
  { rate = 200, warmMs = 500 }: { rate?: number; warmMs?: number } = {},
): Promise<StopRound> {
  const port = freePort();
  const proc = new Proc([
    "run",
    "--allow-net",
    ...SERVERS[server].flags,
    APP,
    JSON.stringify({ port, server: SERVERS[server].kind }),
  ]);
  await using _ = proc;
  await proc.waitFor(/listening on/);
  await using clients = await startClients(client, `http://127.0.0.1:${port}`, {
    rate,
    ms: 30_000,
  });
  // A load period, not a wait for an event: the pools fill and stay busy.
  await new Promise((r) => setTimeout(r, warmMs));
  const signalled = performance.now();
  proc.kill("SIGTERM");
  const status = await proc.status;
  const exitMs = performance.now() - signalled;
  const [get, post] = await clients.stop();
  return { server, client, get, post, code: status.code, exitMs };
}
