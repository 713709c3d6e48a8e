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
import { type Parsed, parseFlags, wholeNumber } from "./lifecycle/_cli.ts";
import { optionsFromEnv } from "./server/_env.ts";
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
  let parsed: Parsed;
  try {
    parsed = parseFlags(args, {
      port: { type: "string" },
      host: { type: "string" },
    });
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  const port = values.port === undefined
    ? 8000
    : wholeNumber("--port", values.port as string, 0, 65535);
  const hostname = (values.host as string | undefined) ?? "0.0.0.0";
  if (hostname === "") throw new Error("--host needs a value");
  if (positionals.length === 0) throw new Error(`no module given\n${USAGE}`);
  if (positionals.length > 1) {
    throw new Error(
      `one module only, got ${JSON.stringify(positionals[1])} too\n${USAGE}`,
    );
  }
  return { port, hostname, module: positionals[0] };
}

/**
 * The module's URL: a URL as given, else a path (relative to the working
 * directory) turned into a file URL, `#`, `?` and `%` included.
 */
function moduleUrl(module: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(module) && !/^[a-z]:[\\/]/i.test(module)) {
    return module;
  }
  const absolute = module.startsWith("/")
    ? module
    : `${Deno.cwd().replace(/\/$/, "")}/${module}`;
  // Each segment encoded: `#`, `?` and `%` are part of the file name here.
  return `file://${absolute.split("/").map(encodeURIComponent).join("/")}`;
}

if (import.meta.main) {
  try {
    const { port, hostname, module } = parseServeArgs(Deno.args);
    serveDefault(await import(moduleUrl(module)), { port, hostname });
  } catch (error) {
    console.error(`serve_default.ts: ${(error as Error).message}`);
    Deno.exit(error instanceof Deno.errors.AddrInUse ? 1 : 2);
  }
}
