/**
 * Server-sent events that survive restarts. Each event carries an `id:`; on
 * shutdown the stream sends a last `bye` event (no id) and closes, so the
 * browser's `EventSource` sees a normal end and reconnects on its own,
 * sending the last id it saw as `Last-Event-ID`. This server, whichever
 * generation answers, resumes after that id: no event is lost or repeated.
 *
 * The events are a log every generation can rebuild: event `n` is the tick
 * of the 100 ms clock numbered `n` (wall-clock time / 100 ms). A real app
 * would read its own log (a database, a queue) from the id on.
 *
 *   deno run --allow-net examples/sse.ts [port]     then open http://127.0.0.1:8000/
 *   under restart.ts (zero-downtime restarts):
 *   deno run --allow-run --allow-read restart.ts -- \
 *     deno run --allow-net --allow-env --unstable-net examples/sse.ts
 */
import { serve } from "../mod.ts";

const TICK_MS = 100;
/** Most events replayed to a client that comes back: bounds a stale id. */
const MAX_REPLAY = 6000;
const encoder = new TextEncoder();

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>SSE across restarts</title>
<pre id="log"></pre>
<script>
  // What a test (or you) can read: every id received, in order.
  const state = { ids: [], pids: [], opens: 0, byes: 0 };
  window.state = state;
  const log = document.getElementById("log");
  const source = new EventSource("/events");
  source.onopen = () => state.opens++;
  source.addEventListener("bye", () => state.byes++);
  source.onmessage = (event) => {
    const { tick, pid } = JSON.parse(event.data);
    state.ids.push(tick);
    if (state.pids.at(-1) !== pid) state.pids.push(pid);
    log.textContent = "event " + event.lastEventId + " from pid " + pid + "\\n" +
      log.textContent.slice(0, 2000);
  };
</script>
`;

serve({
  hostname: "127.0.0.1",
  port: Number(Deno.args[0] ?? 8000),
  onListen: ({ hostname, port }) =>
    console.log(`listening on http://${hostname}:${port}/`),
}, (req, info) => {
  if (new URL(req.url).pathname !== "/events") {
    return new Response(PAGE, {
      headers: { "content-type": "text/html; charset=utf-8" },
    });
  }
  const now = () => Math.floor(Date.now() / TICK_MS);
  // Resume after the client's last id (bounded), or start at the current tick.
  const last = Number(req.headers.get("last-event-id"));
  let next = Number.isSafeInteger(last) && last > 0
    ? Math.max(last + 1, now() - MAX_REPLAY)
    : now();
  let timer: ReturnType<typeof setInterval>;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      // Reconnect 100 ms after the stream ends (the browser's default is ~3 s).
      controller.enqueue(encoder.encode("retry: 100\n\n"));
      const send = () => {
        for (; next <= now(); next++) {
          const data = JSON.stringify({ tick: next, pid: Deno.pid });
          controller.enqueue(encoder.encode(`id: ${next}\ndata: ${data}\n\n`));
        }
      };
      send();
      timer = setInterval(send, TICK_MS);
      const bye = () => {
        clearInterval(timer);
        controller.enqueue(
          encoder.encode("event: bye\ndata: server restarting\n\n"),
        );
        controller.close();
      };
      // A client can come back while the server drains (on a kept-alive
      // connection): the signal has aborted already, and a listener added
      // now would never run.
      if (info.signal.aborted) bye();
      else info.signal.addEventListener("abort", bye, { once: true });
    },
    cancel() {
      clearInterval(timer);
    },
  });
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream",
      "cache-control": "no-store",
    },
  });
});
