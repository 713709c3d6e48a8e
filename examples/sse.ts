/**
 * Server-sent events that end cleanly on shutdown: the stream sends a last
 * `bye` event and closes when `info.signal` aborts, so clients see a normal
 * end of stream instead of a cut connection.
 *   deno run --allow-net examples/sse.ts [port]
 */
import { serve } from "../mod.ts";

const encoder = new TextEncoder();

serve({
  hostname: "127.0.0.1",
  port: Number(Deno.args[0] ?? 8000),
  onListen: ({ hostname, port }) =>
    console.log(`listening on http://${hostname}:${port}/`),
}, (_req, info) => {
  let timer: ReturnType<typeof setInterval>;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      timer = setInterval(() => {
        controller.enqueue(
          encoder.encode(`data: ${new Date().toISOString()}\n\n`),
        );
      }, 100);
      info.signal.addEventListener("abort", () => {
        clearInterval(timer);
        controller.enqueue(
          encoder.encode("event: bye\ndata: server restarting\n\n"),
        );
        controller.close();
      }, { once: true });
    },
    cancel() {
      clearInterval(timer);
    },
  });
  return new Response(body, {
    headers: { "content-type": "text/event-stream" },
  });
});
