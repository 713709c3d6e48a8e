/** A server on a Unix socket drains as a TCP one does. */
import assert from "node:assert/strict";
import { inFlight, Proc } from "./_helpers.ts";

const APP = new URL("./fixtures/app.ts", import.meta.url).pathname;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** One HTTP/1.1 request over the socket at `path`; the whole raw response. */
async function request(path: string, target: string): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path });
  try {
    await conn.write(
      encoder.encode(`GET ${target} HTTP/1.1\r\nhost: localhost\r\n\r\n`),
    );
    let text = "";
    for await (const chunk of conn.readable) {
      text += decoder.decode(chunk, { stream: true });
      const head = text.indexOf("\r\n\r\n");
      const length = text.match(/content-length: (\d+)/i);
      if (head >= 0 && length && text.length >= head + 4 + Number(length[1])) {
        break;
      }
    }
    return text;
  } finally {
    try {
      conn.close();
    } catch {
      // closed by the reader's end
    }
  }
}

for (const preDrain of [false, true]) {
  Deno.test(`unix socket: a request in flight at SIGTERM gets its 200 with Connection: close, exit 0${preDrain ? " (with a drain delay, whose responses are told Connection: close too)" : ""}`, async () => {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/http.sock`;
    const proc = new Proc([
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      APP,
      JSON.stringify({ path, ...(preDrain ? { drainDelay: 300 } : {}) }),
    ]);
    await using _ = proc;
    try {
      await proc.waitFor(/listening on/);
      const first = request(path, "/slow?ms=800");
      await inFlight(proc, "/slow");
      proc.kill("SIGTERM");
      if (preDrain) {
        // Answered during the delay, while the first is still in flight.
        await proc.waitFor(/draining .* still accepting/);
        const during = await request(path, "/");
        assert.match(during, /^HTTP\/1\.1 200/);
        assert.match(during, /connection: close/i);
      }
      const res = await first;
      assert.match(res, /^HTTP\/1\.1 200/, proc.output());
      assert.match(res, /connection: close/i);
      assert.match(res, /slow done/);
      assert.equal((await proc.status).code, 0, proc.output());
      assert.match(
        proc.stderr,
        /drained .* [12] request\(s\) completed/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
