/**
 * One SIGTERM to one server process under load from real client pools
 * (Node's fetch and http.Agent, Python's requests, Go's net/http; GETs and
 * 4 KiB POSTs at 200/s each), `serve()` beside raw `Deno.serve` stopped by
 * hand, interleaved. What holds for both: every request is answered right,
 * refused at connect, or failed at the connection (a reset or an early
 * close: the clients' keep-alive race with the closing server), never
 * answered wrongly; the server exits 0 soon after the signal. The counts
 * side by side are printed here and measured at length by `deno task bench
 * --only=clients` (bench/README.md): serve() does not yet lose no more than
 * raw for every client (issue 28, item 3).
 */
import assert from "node:assert/strict";
import { CLIENT_KINDS, type Counts } from "./_clients.ts";
import { oneSigterm, type ServerKind, SERVERS } from "./_one_sigterm.ts";

const ROUNDS = 3;

function checkCounts(label: string, counts: Counts) {
  assert.ok(counts.sent > 20, `${label}: sent ${counts.sent}`);
  assert.equal(
    counts.ok + counts.refused + counts.failed,
    counts.sent,
    `${label}: ${JSON.stringify(counts)}`,
  );
  for (const sample of counts.samples) {
    // A status in a failure's cause is an answer that was wrong.
    assert.doesNotMatch(sample, /^\d{3} /, `${label}: answered wrongly`);
  }
}

for (const client of Object.keys(CLIENT_KINDS)) {
  Deno.test(`one SIGTERM under ${client}, serve() beside Deno.serve by hand (${ROUNDS} rounds each, interleaved): nothing answered wrongly, exit 0`, async () => {
    const lost: Record<ServerKind, { get: number; post: number }> = {
      "serve()": { get: 0, post: 0 },
      "Deno.serve by hand": { get: 0, post: 0 },
    };
    const kinds = Object.keys(SERVERS) as ServerKind[];
    for (let round = 0; round < ROUNDS; round++) {
      for (const server of round % 2 ? [...kinds].reverse() : kinds) {
        const r = await oneSigterm(server, client);
        const label = `${client}, ${server}, round ${round + 1}`;
        assert.equal(r.code, 0, `${label}: exit code`);
        assert.ok(r.exitMs < 5000, `${label}: exit ${r.exitMs} ms`);
        checkCounts(`${label} GET`, r.get);
        checkCounts(`${label} POST`, r.post);
        lost[server].get += r.get.failed;
        lost[server].post += r.post.failed;
      }
    }
    console.log(
      `failed after sending, ${ROUNDS} SIGTERMs: ${
        kinds.map((k) => `${k} GET ${lost[k].get} POST ${lost[k].post}`)
          .join("; ")
      }`,
    );
  });
}
