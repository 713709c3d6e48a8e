/**
 * Behind real load balancers (see tests/_balancers.ts): the recipes of
 * examples/deploy/ as they are, a client that never retries at 300 req/s,
 * backends restarted under it. Every failed request counts.
 */
import assert from "node:assert/strict";
import {
  type BalancerRun,
  balancerRun,
  CADDY,
  HAPROXY,
  NGINX,
} from "./_balancers.ts";

for (
  const [name, path] of [["nginx", NGINX], ["haproxy", HAPROXY], [
    "caddy",
    CADDY,
  ]]
) {
  if (!path) {
    console.error(
      `skipped: the ${name} tests need ${name} (apt-get install ${name})`,
    );
  }
}

function assertNoFailure(run: BalancerRun) {
  assert.deepEqual(run.failures, {}, run.samples.join("\n"));
  assert.equal(run.ok, run.sent);
  assert.ok(run.ok >= 1000, `only ${run.ok} requests answered`);
}

/** Balancers that probe the health path, with the recipe each runs as it is. */
const PROBING = [
  {
    balancer: "haproxy",
    label: "HAProxy",
    recipe: "haproxy.cfg",
    path: HAPROXY,
  },
  { balancer: "caddy", label: "Caddy", recipe: "Caddyfile", path: CADDY },
] as const;

for (const { balancer, label, recipe, path } of PROBING) {
  for (const post of [false, true]) {
    Deno.test({
      name:
        `${label} (examples/deploy/${recipe}) + 2 backends with drainDelay { max: 5000, quiet: 200 }: 6 rolling restarts under 300 ${
          post ? "POST/s" : "GET/s"
        } lose nothing; each old backend exits well before the delay's max`,
      ignore: !path,
      async fn() {
        const run = await balancerRun({
          balancer,
          post,
          rounds: 3,
          backend: {
            healthPath: "/healthz",
            drainDelay: { max: 5000, quiet: 200 },
          },
        });
        assertNoFailure(run);
        for (const log of run.logs) {
          assert.match(
            log,
            /balancer stopped sending after \d+ ms \(health path first answered 503 at \+\d+ ms/,
          );
        }
        // Both check every 500 ms (one failure takes a backend out), then
        // 200 ms of quiet.
        assert.ok(
          Math.max(...run.exits) < 2500,
          `SIGTERM → exit: ${run.exits.join(", ")} ms`,
        );
      },
    });
  }
}

Deno.test({
  name:
    "nginx (examples/deploy/nginx.conf) + 2 backends: 10 rolling restarts under 300 GET/s lose nothing (nginx passes refused connections to the other backend)",
  ignore: !NGINX,
  async fn() {
    assertNoFailure(
      await balancerRun({ balancer: "nginx", post: false, rounds: 5 }),
    );
  },
});

for (const post of [false, true]) {
  Deno.test({
    name:
      `nginx (examples/deploy/nginx.conf, one upstream) → the restart.ts supervisor: 5 restarts under 300 ${
        post ? "POST/s" : "GET/s"
      } lose nothing`,
    ignore: !NGINX,
    async fn() {
      assertNoFailure(
        await balancerRun({ balancer: "nginx → supervisor", post, rounds: 5 }),
      );
    },
  });
}

for (const post of [false, true]) {
  Deno.test({
    name:
      `Caddy (examples/deploy/Caddyfile, one upstream) → the restart.ts supervisor: 5 restarts under 300 ${
        post ? "POST/s" : "GET/s"
      } lose nothing`,
    ignore: !CADDY,
    async fn() {
      assertNoFailure(
        await balancerRun({ balancer: "caddy → supervisor", post, rounds: 5 }),
      );
    },
  });
}
