/**
 * WebSockets that say goodbye: on shutdown each socket gets a last message
 * and a close frame with code 1012 ("service restart"), so clients know to
 * reconnect. Close synchronously in the abort listener: the server waits one
 * event-loop turn before Deno closes the remaining sockets with 1001.
 *   deno run --allow-net examples/websocket.ts [port]
 */
import { serve } from "../mod.ts";

serve({
  hostname: "127.0.0.1",
  port: Number(Deno.args[0] ?? 8000),
  onListen: ({ hostname, port }) =>
    console.log(`listening on http://${hostname}:${port}/`),
}, (req, info) => {
  if (req.headers.get("upgrade") !== "websocket") {
    return new Response("connect with a WebSocket\n", { status: 426 });
  }
  const { socket, response } = Deno.upgradeWebSocket(req);
  socket.onmessage = (event) => socket.send(`echo: ${event.data}`);
  info.signal.addEventListener("abort", () => {
    socket.send("server restarting, reconnect shortly");
    socket.close(1012, "service restart");
  }, { once: true });
  return response;
});
