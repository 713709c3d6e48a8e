/** The probe paths and the app's readiness (server/_health.ts), no server. */
import assert from "node:assert/strict";
import { Health } from "../../server/_health.ts";

const refuse = (_: Request, text: string) =>
  new Response(text, { status: 503 });

async function probe(health: Health, path: string, stopping = false) {
  const res = health.answer(
    new Request(`http://x${path}`),
    stopping,
    stopping,
    refuse,
  );
  return res && `${res.status} ${(await res.text()).trim()}`;
}

Deno.test("health: readyWhen and setReady both count; either one not ready is 503 not ready", async () => {
  const health = new Health("/healthz", "/livez");
  assert.equal(await probe(health, "/healthz"), "200 ok");
  const work = Promise.withResolvers<void>();
  const started = health.startUp(work.promise);
  assert.equal(health.ready, false);
  assert.equal(await probe(health, "/healthz"), "503 not ready");
  // The app says not ready while it starts: still not ready once started.
  health.setReady(false);
  work.resolve();
  await started;
  assert.equal(health.ready, false);
  health.setReady(true);
  assert.equal(await probe(health, "/healthz"), "200 ok");
  assert.equal(await probe(health, "/livez"), "200 alive");
  assert.equal(await probe(health, "/other"), undefined);
});

Deno.test("health: a readyWhen that rejects leaves it not ready, whatever setReady says", async () => {
  const health = new Health("/healthz");
  const started = health.startUp(Promise.reject(new Error("no db")));
  await assert.rejects(started, /no db/);
  health.setReady(true);
  assert.equal(health.ready, false);
  assert.equal(await probe(health, "/healthz"), "503 not ready");
});

Deno.test("health: while stopping the health path is refused (once noted) and liveness stays 200", async () => {
  const health = new Health("/healthz", "/livez");
  assert.equal(await probe(health, "/healthz", true), "503 draining");
  assert.equal(typeof await health.refused, "number");
  assert.equal(await probe(health, "/livez", true), "200 alive");
});
