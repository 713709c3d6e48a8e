/**
 * Client libraries we did not write, with their own connection pools and no
 * retry: Node's fetch (undici), Node's `http.Agent({ keepAlive: true })`,
 * Python's `requests` (Debian's python3-requests) and Go's `net/http`
 * default client (Debian's golang-go). Each sends GETs and 4 KiB POSTs
 * (the body checked by its SHA-256) at a fixed rate through 20 supervisor
 * restarts: not one may fail or be refused.
 */
import assert from "node:assert/strict";
import { freePort, superviseScript } from "./_helpers.ts";
import { CLIENT_KINDS, runClient } from "./_clients.ts";

const APP = new URL("./fixtures/app.ts", import.meta.url).pathname;
const RESTARTS = 20;
/** Requests per second of each client process (GET and POST each). */
const RATE = 150;

for (const [name, argv] of Object.entries(CLIENT_KINDS)) {
  Deno.test(`real clients: ${name}, GETs and 4 KiB POSTs at ${RATE}/s each through ${RESTARTS} supervisor restarts: none failed or refused`, async () => {
    const port = freePort();
    const proc = await superviseScript([APP, JSON.stringify({ port })]);
    await using _ = proc;
    const url = `http://127.0.0.1:${port}`;
    // The clients send until this file exists (at most a minute).
    const stopFile = `${await Deno.makeTempDir()}/stop`;
    const ms = 60_000;
    // Command lines first (Go's is built then), so the clients all start now.
    const argvs = await Promise.all(
      [false, true].map((post) =>
        argv({ url, rate: RATE, ms, post, stopFile })
      ),
    );
    const clients = argvs.map(runClient);
    // Restarts begin once the clients' pools are warm.
    await new Promise((r) => setTimeout(r, 500));
    for (let g = 2; g <= RESTARTS + 1; g++) {
      proc.kill("SIGHUP");
      await proc.waitFor(new RegExp(`generation ${g} serving in`), 30_000);
    }
    await Deno.writeTextFile(stopFile, "");
    const [get, post] = await Promise.all(clients);
    for (const [method, counts] of [["GET", get], ["POST", post]] as const) {
      assert.ok(counts.sent > RATE * 5, `${method}: sent ${counts.sent}`);
      assert.deepEqual(
        { failed: counts.failed, refused: counts.refused },
        { failed: 0, refused: 0 },
        `${name} ${method}: ${JSON.stringify(counts)}`,
      );
      assert.equal(counts.ok, counts.sent);
    }
    proc.kill("SIGTERM");
    assert.equal((await proc.status).code, 0);
  });
}
