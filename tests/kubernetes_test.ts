/**
 * examples/deploy/kubernetes.yaml behind a Service emulated with real
 * netfilter (tests/_kubernetes.ts): rolling updates under load from clients
 * that never retry, with kube-proxy's rule update late by 0, 1 or 3 s.
 */
import assert from "node:assert/strict";
import { type KubeRun, kubeRun, recipe, unavailable } from "./_kubernetes.ts";

const missing = Deno.build.os === "linux" ? await unavailable() : "not Linux";
if (missing) {
  console.error(
    `skipped: the Kubernetes emulation needs netfilter: ${missing}`,
  );
}

function summary(run: KubeRun): string {
  return run.clients.map((c) =>
    `${c.mode} ${c.post ? "POST" : "GET"}: ${c.failed} failed of ${c.sent} ${
      JSON.stringify(c.failures)
    } ${c.samples.slice(0, 3).join(" | ")}`
  ).join("\n");
}

for (const propagationMs of [0, 1000, 3000]) {
  Deno.test({
    name:
      `Kubernetes rolling update, the endpoint removed ${propagationMs} ms after SIGTERM: 0 failed requests (keep-alive and new connection, GET and POST), every pod exits 0 within its grace period, its liveness probe 200 while it drains`,
    ignore: missing !== undefined,
    async fn() {
      const r = await recipe();
      const run = await kubeRun({ propagationMs });
      for (const client of run.clients) {
        assert.equal(client.failed, 0, summary(run));
        assert.ok(client.ok > 100, summary(run));
      }
      assert.equal(run.deleted, r.replicas);
      // The GETs went through the Service: a new connection per request
      // reached all four pods, old and new; keep-alive ones moved over.
      for (const client of run.clients.filter((c) => !c.post)) {
        const least = client.mode === "new" ? 2 * r.replicas : 2;
        assert.ok(client.pods >= least, summary(run));
      }
      assert.deepEqual(run.codes, run.codes.map(() => 0), run.logs.join("\n"));
      assert.equal(run.killed, 0);
      const drainDelay = Number(r.env.GRACEFUL_DRAIN_DELAY);
      for (const ms of run.exits) {
        // The fixed delay first, then a drain of a few ms: well within the grace period.
        assert.ok(ms >= drainDelay, `a pod exited ${ms} ms after SIGTERM`);
        assert.ok(ms < r.terminationGracePeriodSeconds * 1000);
      }
      for (const log of run.logs) assert.match(log, /draining .* deadline/);
      // The recipe's liveness probe answered 200 all through each drain
      // delay, never 503: the kubelet never restarts a draining pod. (Once
      // the listener closes it is refused, for the last few ms.)
      for (const answers of run.liveness) {
        assert.equal(answers["503"], undefined, JSON.stringify(run.liveness));
        assert.ok((answers["200"] ?? 0) >= 10, JSON.stringify(run.liveness));
      }
    },
  });
}

Deno.test({
  name:
    "Kubernetes without the recipe's drain delay (GRACEFUL_DRAIN_DELAY=0), the endpoint removed 1 s late: new connections reach a pod that stopped accepting and fail",
  ignore: missing !== undefined,
  async fn() {
    const run = await kubeRun({
      propagationMs: 1000,
      env: { GRACEFUL_DRAIN_DELAY: "0" },
    });
    const fresh = run.clients.filter((c) => c.mode === "new");
    const failed = fresh.reduce((n, c) => n + c.failed, 0);
    assert.ok(failed > 0, summary(run));
    assert.deepEqual(run.codes, run.codes.map(() => 0));
  },
});

Deno.test({
  name:
    "Kubernetes rolling update with a slow start (readyWhen 1.5 s after listening): the startup probe answers 503 until the app is ready, the pod takes traffic only then, 0 failed requests",
  ignore: missing !== undefined,
  async fn() {
    const r = await recipe();
    const startMs = 1500;
    const run = await kubeRun({
      propagationMs: 1000,
      env: { POD_START_MS: String(startMs) },
    });
    for (const client of run.clients) {
      assert.equal(client.failed, 0, summary(run));
    }
    assert.equal(run.startups.length, r.replicas);
    for (const { answers, ms } of run.startups) {
      // Listening but not ready: 503 on the startup probe's path, for about
      // 1.5 s (probed every 100 ms), then 200.
      assert.ok((answers["503"] ?? 0) >= 5, JSON.stringify(run.startups));
      assert.ok(ms >= startMs, JSON.stringify(run.startups));
    }
    assert.deepEqual(run.codes, run.codes.map(() => 0), run.logs.join("\n"));
  },
});
