/**
 * Graceful shutdown and zero-downtime restarts for servers you cannot (or do
 * not want to) edit. Loaded with Deno's `--preload` flag, it replaces
 * `Deno.serve` so that every server the app starts behaves like this
 * module's `serve()`: drain on SIGINT/SIGTERM with a deadline,
 * `Connection: close` while draining, progress lines, and under the restart
 * supervisor `reusePort` and the ready handshake.
 *
 * ```sh
 * deno run --preload jsr:@graceful/http/auto --allow-net --allow-env app.ts
 * ```
 *
 * Settings come from environment variables (each validated; the process
 * exits with one line naming a bad one): `GRACEFUL_DRAIN_TIMEOUT`,
 * `GRACEFUL_DRAIN_DELAY`, `GRACEFUL_DRAIN_QUIET`, `GRACEFUL_HOOKS_TIMEOUT`
 * (ms), `GRACEFUL_RETRY_AFTER` (seconds, or `off`),
 * `GRACEFUL_GRACE_PERIOD_SECONDS`, `GRACEFUL_HEALTH_PATH`,
 * `GRACEFUL_LIVENESS_PATH`, `GRACEFUL_SIGNALS` (comma-separated),
 * `GRACEFUL_QUIET=1`. Without `--allow-env` the defaults apply. The app's
 * own `Deno.serve` options go to `serve()` over these, so `readyWhen` or
 * `livenessPath` given there work (plain Deno ignores them).
 *
 * It does not: change anything if the app never calls `Deno.serve`; affect
 * `deno serve` (which uses an internal server; use `./serve_default`); wrap
 * Unix-socket or vsock servers (they are passed through, with a warning);
 * or run cleanup hooks (the app has none to give).
 *
 * @module
 */
import { optionsFromEnv } from "./server/_env.ts";
import { stderrLogger } from "./lifecycle/_log.ts";
import { serve, type ServeOptions } from "./server.ts";
import { Shutdown } from "./shutdown.ts";

const original = Deno.serve;
let settings: ServeOptions;
try {
  settings = optionsFromEnv();
} catch (error) {
  console.error(`[graceful] auto: ${(error as Error).message}`);
  Deno.exit(2);
}
let shared: Shutdown | undefined;

type Handler = Deno.ServeHandler<Deno.NetAddr>;
type AnyOptions = Record<string, unknown> & { handler?: Handler };

function gracefulServe(...args: unknown[]): Deno.HttpServer {
  const [first, second] = args;
  const options: AnyOptions = typeof first === "function"
    ? {}
    : { ...(first as AnyOptions) };
  const handler =
    (typeof first === "function" ? first : second ?? options.handler) as
      | Handler
      | undefined;
  if ("path" in options || "cid" in options || options.transport === "unix") {
    console.error(
      "[graceful] auto: not wrapping a Unix-socket or vsock server",
    );
    return (original as (...a: unknown[]) => Deno.HttpServer).apply(Deno, args);
  }
  delete options.handler;
  // The lifecycle's settings go to the one Shutdown all servers share.
  const { signals, hooksTimeout, logger, exit: _, drainOnCrash: __, ...drain } =
    settings;
  shared ??= new Shutdown({ signals, hooksTimeout, logger });
  return serve(
    { ...drain, ...options, shutdown: shared } as ServeOptions,
    handler as Handler,
  ) as unknown as Deno.HttpServer;
}

try {
  Object.defineProperty(Deno, "serve", {
    value: gracefulServe,
    writable: true,
    configurable: true,
    enumerable: true,
  });
} catch {
  // reported below
}
if (Deno.serve !== (gracefulServe as unknown)) {
  stderrLogger.error(
    `auto: cannot replace Deno.serve in Deno ${Deno.version.deno}: servers will stop without draining`,
  );
}
