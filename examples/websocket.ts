/**
 * WebSockets that say goodbye and come back. On shutdown each socket gets a
 * last message and a close frame with code 1012 ("service restart"); the
 * page's client reconnects when it sees 1012 (after 100 ms, doubling up to
 * 5 s if the server stays away), and any other code is shown, not retried.
 * Close synchronously in the abort listener: the server waits one
 * event-loop turn before Deno closes the remaining sockets with 1001.
 *
 *   deno run --allow-net examples/websocket.ts [port]   then open http://127.0.0.1:8000/
 *   under restart.ts: see examples/sse.ts.
 */
import { serve } from "../mod.ts";

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>WebSocket across restarts</title>
<pre id="log"></pre>
<script>
  // What a test (or you) can read: each connection's greeting and its close.
  const state = { hellos: [], closes: [], echoes: 0 };
  window.state = state;
  const log = (line) =>
    document.getElementById("log").textContent += line + "\\n";
  let wait = 100;
  function connect() {
    const ws = new WebSocket("ws://" + location.host + "/ws");
    let last = "";
    ws.onopen = () => { wait = 100; ws.send("ping"); };
    ws.onmessage = (event) => {
      if (event.data.startsWith("hello ")) state.hellos.push(event.data);
      else if (event.data.startsWith("echo: ")) state.echoes++;
      last = event.data;
      log(event.data);
    };
    ws.onclose = (event) => {
      state.closes.push({ code: event.code, reason: event.reason, last, clean: event.wasClean });
      log("closed " + event.code + " " + event.reason);
      // 1012: the server restarts; 1006: it could not be reached (yet).
      if (event.code === 1012 || event.code === 1006) {
        setTimeout(connect, wait);
        wait = Math.min(wait * 2, 5000);
      }
    };
  }
  connect();
</script>
`;

serve({
  hostname: "127.0.0.1",
  port: Number(Deno.args[0] ?? 8000),
  onListen: ({ hostname, port }) =>
    console.log(`listening on http://${hostname}:${port}/`),
}, (req, info) => {
  if (req.headers.get("upgrade") !== "websocket") {
    return new Response(PAGE, {
      headers: { "content-type": "text/html; charset=utf-8" },
    });
  }
  const { socket, response } = Deno.upgradeWebSocket(req);
  socket.onopen = () => socket.send(`hello ${Deno.pid}`);
  socket.onmessage = (event) => socket.send(`echo: ${event.data}`);
  info.signal.addEventListener("abort", () => {
    socket.send("server restarting, reconnect shortly");
    socket.close(1012, "service restart");
  }, { once: true });
  return response;
});
