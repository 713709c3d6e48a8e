/**
 * WebSockets across the drain, with a client driven by hand over TCP so the
 * closing handshake's timing is the test's: the app's close (1012 in
 * examples/websocket.ts) must complete before Deno's `shutdown()`, which
 * would close the socket again with 1001 (a browser then reports
 * `wasClean: false`).
 */
import assert from "node:assert/strict";
import { start } from "./_helpers.ts";

const EXAMPLE = new URL("../examples/websocket.ts", import.meta.url).pathname;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Frame {
  opcode: number;
  payload: Uint8Array;
}

/** A WebSocket client frame by frame: unmasked frames in, masked frames out. */
class RawSocket {
  #conn: Deno.TcpConn;
  #buffer = new Uint8Array(0);

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async open(port: number): Promise<RawSocket> {
    const socket = new RawSocket(
      await Deno.connect({ hostname: "127.0.0.1", port }),
    );
    await socket.#write(encoder.encode(
      "GET /ws HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\n" +
        "connection: Upgrade\r\nsec-websocket-version: 13\r\n" +
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ));
    const head = decoder.decode(await socket.#until("\r\n\r\n"));
    assert.match(head, /^HTTP\/1\.1 101 /);
    return socket;
  }

  async #write(bytes: Uint8Array) {
    for (let at = 0; at < bytes.length;) {
      at += await this.#conn.write(bytes.subarray(at));
    }
  }

  /** More bytes, or false at the end of the stream (a reset throws). */
  async #fill(): Promise<boolean> {
    const buf = new Uint8Array(4096);
    const n = await this.#conn.read(buf);
    if (n === null) return false;
    const next = new Uint8Array(this.#buffer.length + n);
    next.set(this.#buffer);
    next.set(buf.subarray(0, n), this.#buffer.length);
    this.#buffer = next;
    return true;
  }

  #take(n: number): Uint8Array {
    const out = this.#buffer.slice(0, n);
    this.#buffer = this.#buffer.slice(n);
    return out;
  }

  async #until(end: string): Promise<Uint8Array> {
    for (;;) {
      const at = decoder.decode(this.#buffer).indexOf(end);
      if (at >= 0) return this.#take(at + end.length);
      if (!(await this.#fill())) throw new Error(`ended before ${end}`);
    }
  }

  /** The next frame, or null at a clean end of the stream. */
  async frame(): Promise<Frame | null> {
    while (this.#buffer.length < 2) {
      if (!(await this.#fill())) {
        if (this.#buffer.length === 0) return null;
        throw new Error("ended inside a frame");
      }
    }
    const length = this.#buffer[1] & 0x7f;
    assert.ok(length < 126, "short frames only");
    while (this.#buffer.length < 2 + length) {
      if (!(await this.#fill())) throw new Error("ended inside a frame");
    }
    const head = this.#take(2);
    return { opcode: head[0] & 0x0f, payload: this.#take(length) };
  }

  /** Sends a close frame with `code` (masked, as a client must). */
  async close(code: number) {
    const mask = [1, 2, 3, 4];
    const payload = [code >> 8, code & 0xff].map((b, i) => b ^ mask[i]);
    await this.#write(new Uint8Array([0x88, 0x80 | 2, ...mask, ...payload]));
  }

  end() {
    try {
      this.#conn.close();
    } catch {
      // closed
    }
  }
}

const closeCode = (frame: Frame) => (frame.payload[0] << 8) | frame.payload[1];

Deno.test("websocket: the server waits for the client's reply to the app's 1012 close, 200 ms later, then ends the connection cleanly and exits 0", async () => {
  const { proc, port } = await start({}, EXAMPLE, ["0"]);
  await using _ = proc;
  const socket = await RawSocket.open(port);
  let exited = false;
  proc.status.then(() => exited = true);
  try {
    const hello = await socket.frame();
    assert.equal(decoder.decode(hello!.payload), `hello ${proc.pid}`);
    proc.kill("SIGTERM");
    const goodbye = await socket.frame();
    assert.equal(
      decoder.decode(goodbye!.payload),
      "server restarting, reconnect shortly",
    );
    const close = await socket.frame();
    assert.equal(close!.opcode, 8);
    assert.equal(closeCode(close!), 1012);
    // A slow client: its close reply comes a while after the server's.
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The server waits for it (an exit would reset the reply).
    assert.equal(exited, false, proc.output());
    await socket.close(1012);
    // Then the server ends the connection: no 1001 close of Deno's after
    // the app's, and no reset.
    assert.equal(await socket.frame(), null, proc.output());
  } finally {
    socket.end();
  }
  assert.equal((await proc.status).code, 0, proc.output());
  assert.doesNotMatch(proc.stderr, /closing handshake/);
});
