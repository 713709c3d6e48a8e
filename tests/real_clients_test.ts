/**
 * Client libraries we did not write, with their own connection pools and no
 * retry: Node's fetch (undici), Node's `http.Agent({ keepAlive: true })`,
 * Python's `requests` (Debian's python3-requests) and Go's `net/http`
 * default client (Debian's golang-go). Each sends GETs and 4 KiB POSTs
 * (the body checked by its SHA-256) at a fixed rate through 20 supervisor
 * restarts: not one may fail or be refused.
 */
import assert from "node:assert/strict";
import { CLIENT_KINDS, restartsUnder } from "./_clients.ts";

const RESTARTS = 20;
/** Requests per second of each client process (GET and POST each). */
const RATE = 150;

for (const name of Object.keys(CLIENT_KINDS)) {
  Deno.test(`real clients: ${name}, GETs and 4 KiB POSTs at ${RATE}/s each through ${RESTARTS} supervisor restarts: none failed or refused`, async () => {
    const { get, post, code } = await restartsUnder(name, {
      restarts: RESTARTS,
      rate: RATE,
    });
    for (const [method, counts] of [["GET", get], ["POST", post]] as const) {
      // The restarts run back to back (~150 ms each when idle, up to 5 s
      // more with clients that idle on kept-alive connections): at least
      // 2 s of load at the rate.
      assert.ok(counts.sent > RATE * 2, `${method}: sent ${counts.sent}`);
      assert.deepEqual(
        { failed: counts.failed, refused: counts.refused },
        { failed: 0, refused: 0 },
        `${name} ${method}: ${JSON.stringify(counts)}`,
      );
      assert.equal(counts.ok, counts.sent);
    }
    assert.equal(code, 0);
  });
}
