/**
 * `serve()`, in its three forms (as `Deno.serve`'s), and the public types
 * of a graceful server: exported by `server.ts`.
 */
import { badOption, type Logger } from "../lifecycle/_log.ts";
import { Server } from "./_server.ts";
import type { GracefulServer, ServeOptions } from "./_server_types.ts";
import type { GracefulHandler, GracefulHandlerInfo } from "./_server_types.ts";
export type { SelfEndingDelay } from "./_drain_delay.ts";
export type {
  DrainResult,
  GracefulServer,
  ServeOptions,
} from "./_server_types.ts";

export type { GracefulHandler, GracefulHandlerInfo, Logger };

type Args =
  | [GracefulHandler]
  | [ServeOptions, GracefulHandler]
  | [ServeOptions & { handler: GracefulHandler }];

function parseArgs(args: Args): [ServeOptions, GracefulHandler] {
  const [first, second] = args;
  if (typeof first === "function") return [{}, first];
  if (first === null || typeof first !== "object") {
    throw badOption("serve", "options or a handler", first);
  }
  const handler = second ?? (first as { handler?: GracefulHandler }).handler;
  if (typeof handler !== "function") {
    throw badOption("handler", "a function", handler);
  }
  return [first, handler];
}

/**
 * Serves HTTP like `Deno.serve`, with a graceful stop on SIGINT/SIGTERM.
 *
 * While draining: the listener closes (new connections are refused), idle
 * keep-alive connections are closed, in-flight requests finish and their
 * responses carry `Connection: close`, WebSockets get Deno's 1001 close.
 * At `drainTimeout`: pending handlers get 503, open event streams are ended.
 * Then the hooks run and the process exits: 0, or 124 if the deadline cut
 * requests, or 1 if a hook failed (`ExitCode`). A second signal exits at
 * once with 128 + its number.
 *
 * It does not: end streams or WebSockets before the deadline by itself (use
 * `info.signal`), retry anything for clients, or cover servers started with
 * `Deno.serve` directly or by `deno serve`.
 *
 * @example A graceful hello server
 * ```ts
 * import { serve } from "@graceful/http";
 *
 * const server = serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   () => new Response("hello"),
 * );
 * const res = await fetch(`http://127.0.0.1:${server.addr.port}/`);
 * console.log(await res.text()); // "hello"
 * await server.shutdown();
 * ```
 */
export function serve(handler: GracefulHandler): GracefulServer;
/**
 * Serves with options, like `Deno.serve(options, handler)`.
 *
 * @example
 * ```ts
 * import { serve } from "@graceful/http";
 *
 * const server = serve(
 *   { hostname: "127.0.0.1", port: 0, drainTimeout: 5000, onListen() {} },
 *   () => new Response("hello"),
 * );
 * await server.shutdown();
 * ```
 */
export function serve(
  options: ServeOptions,
  handler: GracefulHandler,
): GracefulServer;
/**
 * Serves with the handler inside the options, like `Deno.serve({ handler })`.
 *
 * @example
 * ```ts
 * import { serve } from "@graceful/http";
 *
 * const server = serve({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   onListen() {},
 *   handler: () => new Response("hello"),
 * });
 * await server.shutdown();
 * ```
 */
export function serve(
  options: ServeOptions & { handler: GracefulHandler },
): GracefulServer;
export function serve(...args: Args): GracefulServer {
  const [options, handler] = parseArgs(args);
  return new Server(options, handler);
}
