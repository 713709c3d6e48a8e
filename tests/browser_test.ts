/**
 * A real browser on the other end: headless Chromium (tests/_browser.ts)
 * runs the pages of examples/sse.ts and examples/websocket.ts while the
 * restart supervisor replaces the server five times (SIGHUP).
 */
import assert from "node:assert/strict";
import { freePort, type Proc, superviseScript } from "./_helpers.ts";
import { Browser, CHROMIUM } from "./_browser.ts";

const here = (path: string) => new URL(path, import.meta.url).pathname;
const RESTARTS = 5;

if (!CHROMIUM) {
  console.error(
    "skipped: the browser tests need Chromium (apt install chromium)",
  );
}

async function supervise(example: string) {
  const port = freePort();
  const script = [here(`../examples/${example}`), String(port)];
  return { proc: await superviseScript(script), port };
}

/** SIGHUP; resolves when generation `n` serves and n - 1 has exited. */
async function restart(proc: Proc, n: number) {
  proc.kill("SIGHUP");
  await proc.waitFor(new RegExp(`generation ${n} serving`), 30_000);
  await proc.waitFor(
    new RegExp(`\\(generation ${n - 1}\\) exited with code 0`),
  );
}

function workerPids(proc: Proc): number[] {
  return [...proc.stderr.matchAll(/worker pid (\d+) \(generation \d+\) ready/g)]
    .map((m) => Number(m[1]));
}

interface SseState {
  ids: number[];
  pids: number[];
  opens: number;
  byes: number;
}

Deno.test({
  name:
    `browser, SSE: across ${RESTARTS} supervisor restarts EventSource reconnects to each new generation and resumes from Last-Event-ID, no event lost or repeated`,
  ignore: !CHROMIUM,
  async fn() {
    const { proc, port } = await supervise("sse.ts");
    await using _ = proc;
    await using browser = await Browser.open(`http://127.0.0.1:${port}/`);
    await browser.until("window.state?.ids.length >= 5");
    for (let n = 2; n <= RESTARTS + 1; n++) {
      await restart(proc, n);
      // Events from the new generation have arrived.
      await browser.until(`window.state.pids.length >= ${n}`);
    }
    const before = await browser.evaluate<number>("window.state.ids.length");
    await browser.until(`window.state.ids.length >= ${before + 5}`);
    const state = await browser.evaluate<SseState>("window.state");
    const [first] = state.ids;
    assert.deepEqual(
      state.ids,
      state.ids.map((_, i) => first + i),
      "ids are consecutive: none lost, none repeated",
    );
    assert.deepEqual(state.pids, workerPids(proc));
    // Chrome may reconnect on a kept-alive connection to the old worker,
    // which the old worker keeps open after its pre-drain: that stream
    // gets the app's bye at once and Connection: close, and the next
    // reconnect reaches the new worker. Every stream but the last ended
    // with the app's bye.
    assert.ok(state.opens >= RESTARTS + 1, JSON.stringify(state));
    assert.equal(state.byes, state.opens - 1, JSON.stringify(state));
    proc.kill("SIGTERM");
    assert.equal((await proc.status).code, 0);
  },
});

interface WsState {
  hellos: string[];
  closes: { code: number; reason: string; last: string; clean: boolean }[];
  echoes: number;
}

Deno.test({
  name:
    `browser, WebSocket: across ${RESTARTS} supervisor restarts each socket gets the app's goodbye and 1012, and reconnects to the new generation`,
  ignore: !CHROMIUM,
  async fn() {
    const { proc, port } = await supervise("websocket.ts");
    await using _ = proc;
    await using browser = await Browser.open(`http://127.0.0.1:${port}/`);
    await browser.until("window.state?.echoes >= 1");
    for (let n = 2; n <= RESTARTS + 1; n++) {
      await restart(proc, n);
      await browser.until(`window.state.echoes >= ${n}`);
    }
    const state = await browser.evaluate<WsState>("window.state");
    assert.deepEqual(
      state.hellos,
      workerPids(proc).map((pid) => `hello ${pid}`),
    );
    assert.equal(state.closes.length, RESTARTS);
    for (const close of state.closes) {
      assert.deepEqual(close, {
        code: 1012,
        reason: "service restart",
        last: "server restarting, reconnect shortly",
        clean: true,
      });
    }
    proc.kill("SIGTERM");
    assert.equal((await proc.status).code, 0);
  },
});
