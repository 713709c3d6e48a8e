/**
 * The `deno serve` counterpart: serves a module's `export default { fetch }`
 * with this module's `serve()`, so `deno serve main.ts` users switch by
 * changing one command:
 *
 * ```sh
 * # before
 * deno serve --allow-net --port 8080 main.ts
 * # after
 * deno run --allow-net --allow-env --allow-read jsr:@graceful/http/serve_default --port 8080 main.ts
 * ```
 *
 * Flags: `--port N` (default 8000, like `deno serve`), `--host NAME`
 * (default 0.0.0.0). `onListen` from the default export is used if present.
 * Settings come from the same `GRACEFUL_*` variables as `./auto`.
 *
 * It does not: support `deno serve`'s `--parallel`, `--watch` or its other
 * runtime flags (use the restart supervisor for several workers and for
 * watch mode), or serve Unix sockets.
 *
 * @module
 */
import { optionsFromEnv } from "./_env.ts";
import { type GracefulServer, serve } from "./server.ts";

/** What `deno serve` expects a module to export by default. */
export interface ServeDefaultExport {
  /** The request handler. */
  fetch: (
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ) => Response | Promise<Response>;
  /** Called once listening, like `Deno.serve`'s `onListen`. */
  onListen?: (addr: Deno.NetAddr) => void;
}

/**
 * Serves `module`'s default export gracefully on `port`/`hostname`.
 *
 * @example
 * ```ts
 * import { serveDefault } from "@graceful/http/serve_default";
 *
 * const server = serveDefault(
 *   { default: { fetch: () => new Response("hi"), onListen() {} } },
 *   { port: 0, hostname: "127.0.0.1" },
 * );
 * await server.shutdown();
 * ```
 */
export function serveDefault(
  module: { default?: unknown },
  { port = 8000, hostname = "0.0.0.0" }: { port?: number; hostname?: string } =
    {},
): GracefulServer {
  const exported = module.default as Partial<ServeDefaultExport> | undefined;
  if (typeof exported?.fetch !== "function") {
    throw new TypeError(
      "default export: expected an object with a fetch(request) method, like `deno serve` needs",
    );
  }
  return serve({
    ...optionsFromEnv(),
    port,
    hostname,
    ...(exported.onListen ? { onListen: exported.onListen } : {}),
  }, (request, info) => exported.fetch!(request, info));
}

const USAGE =
  "usage: serve_default.ts [--port N] [--host NAME] <module> (the module exports default { fetch })";

/**
 * Parses `[--port N] [--host NAME] <module>`; throws an Error with one line.
 *
 * @example
 * ```ts
 * import { parseServeArgs } from "@graceful/http/serve_default";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseServeArgs(["--port", "8080", "main.ts"]), {
 *   port: 8080,
 *   hostname: "0.0.0.0",
 *   module: "main.ts",
 * });
 * ```
 */
export function parseServeArgs(
  args: string[],
): { port: number; hostname: string; module: string } {
  let port = 8000;
  let hostname = "0.0.0.0";
  let module: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split(/=(.*)/s, 2);
    if (flag === "--port") {
      const value = inline ?? args[++i];
      const n = Number(value);
      if (!value || !Number.isInteger(n) || n < 0 || n > 65535) {
        throw new Error(
          `--port: expected a port number, got ${JSON.stringify(value ?? "")}`,
        );
      }
      port = n;
    } else if (flag === "--host") {
      hostname = inline ?? args[++i] ?? "";
      if (!hostname) throw new Error("--host needs a value");
    } else if (flag.startsWith("-")) {
      throw new Error(`unknown option ${JSON.stringify(args[i])}\n${USAGE}`);
    } else if (module === undefined) {
      module = args[i];
    } else {
      throw new Error(
        `one module only, got ${JSON.stringify(args[i])} too\n${USAGE}`,
      );
    }
  }
  if (!module) throw new Error(`no module given\n${USAGE}`);
  return { port, hostname, module };
}

if (import.meta.main) {
  try {
    const { port, hostname, module } = parseServeArgs(Deno.args);
    const url = new URL(module, `file://${Deno.cwd()}/`).href;
    serveDefault(await import(url), { port, hostname });
  } catch (error) {
    console.error(`serve_default.ts: ${(error as Error).message}`);
    Deno.exit(error instanceof Deno.errors.AddrInUse ? 1 : 2);
  }
}
