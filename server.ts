/**
 * `serve()`: `Deno.serve` with a graceful stop. On SIGINT/SIGTERM it stops
 * accepting, lets in-flight requests finish (marking their responses
 * `Connection: close`), cuts what is left at a deadline, runs cleanup hooks
 * and exits.
 *
 * Run as a program (`deno run --allow-net server.ts [--port N] [--host H]`)
 * it is the seed demo: `GET /` answers `hello world` after 3 s. Importing
 * it starts nothing.
 *
 * @example
 * ```ts
 * import { serve } from "@graceful/http/server";
 *
 * const server = serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   () => new Response("hello"),
 * );
 * await server.shutdown();
 * ```
 *
 * @module
 */
export * from "./server/_serve.ts";

if (import.meta.main) {
  const { main } = await import("./server/_demo.ts");
  main(Deno.args);
}
