/**
 * One SIGTERM to one server process under load from real client pools
 * (Node's fetch and http.Agent, Python's requests, Go's net/http; GETs and
 * 4 KiB POSTs at 200/s each): serve() with `--allow-ffi` beside raw
 * `Deno.serve` stopped by hand, one handler, interleaved. serve() loses no
 * more than by hand for any client (it shuts the listener at the signal and
 * closes each kept-alive connection once told `Connection: close`), and
 * nothing is ever answered wrongly; both exit 0. The counts are printed;
 * `deno task bench --only=clients` measures them at length, with serve()
 * without `--allow-ffi` too.
 */
import assert from "node:assert/strict";
import { CLIENT_KINDS, type Counts } from "./_clients.ts";
import { oneSigterm, type ServerKind } from "./_one_sigterm.ts";

const ROUNDS = 3;

function checkCounts(label: string, counts: Counts, strict: boolean) {
  assert.ok(counts.sent > 20, `${label}: sent ${counts.sent}`);
  assert.equal(
    counts.ok + counts.refused + counts.failed,
    counts.sent,
    `${label}: ${JSON.stringify(counts)}`,
  );
  // A status in a failure's cause is an answer that was wrong (counted as
  // failed). By hand, Deno 2.9.6's shutdown() takes a POST body being read
  // away (denoland/deno#36809): its 500 is the baseline's, not ours.
  for (const sample of strict ? counts.samples : []) {
    assert.doesNotMatch(sample, /^\d{3} /, `${label}: answered wrongly`);
  }
}

for (const client of Object.keys(CLIENT_KINDS)) {
  Deno.test(`one SIGTERM under ${client}, serve() --allow-ffi beside Deno.serve by hand (${ROUNDS} rounds each, interleaved): no more lost than by hand, nothing answered wrongly, exit 0`, async () => {
    const kinds: ServerKind[] = ["serve() --allow-ffi", "Deno.serve by hand"];
    const lost = Object.fromEntries(
      kinds.map((k) => [k, { get: 0, post: 0 }]),
    ) as Record<ServerKind, { get: number; post: number }>;
    for (let round = 0; round < ROUNDS; round++) {
      for (const server of round % 2 ? [...kinds].reverse() : kinds) {
        const r = await oneSigterm(server, client);
        const label = `${client}, ${server}, round ${round + 1}`;
        assert.equal(r.code, 0, `${label}: exit code`);
        assert.ok(r.exitMs < 5000, `${label}: exit ${r.exitMs} ms`);
        const strict = server !== "Deno.serve by hand";
        checkCounts(`${label} GET`, r.get, strict);
        checkCounts(`${label} POST`, r.post, strict);
        lost[server].get += r.get.failed;
        lost[server].post += r.post.failed;
      }
    }
    const said = `failed after sending, ${ROUNDS} SIGTERMs: ${
      kinds.map((k) => `${k} GET ${lost[k].get} POST ${lost[k].post}`)
        .join("; ")
    }`;
    console.log(said);
    const [mine, raw] = kinds.map((k) => lost[k].get + lost[k].post);
    assert.ok(mine <= raw, `serve() lost more than by hand: ${said}`);
  });
}
