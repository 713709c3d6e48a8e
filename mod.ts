/**
 * Graceful shutdown for `Deno.serve` servers: stop accepting on
 * SIGINT/SIGTERM, let in-flight requests finish, cut what is left at a
 * deadline, run cleanup hooks, exit.
 *
 * ```ts
 * import { serve } from "@graceful/http";
 *
 * const server = serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
 *   await new Promise((resolve) => setTimeout(resolve, 10));
 *   return new Response("hello world");
 * });
 * server.onShutdown(() => console.log("closing the database"));
 * await server.shutdown(); // what SIGINT does, minus the exit
 * ```
 *
 * @module
 */
export * from "./server.ts";
export * from "./shutdown.ts";
