/** Crashes seen before Deno exits for them (lifecycle/_crash.ts), dispatched by hand. */
import assert from "node:assert/strict";
import { type Crash, watchCrashes } from "../../lifecycle/_crash.ts";

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("crash watch: an error nobody handles is reported after every listener ran, its default prevented", async () => {
  const seen: Crash[] = [];
  const unwatch = watchCrashes((crash) => seen.push(crash));
  try {
    const error = new Error("boom");
    const event = new ErrorEvent("error", { error, cancelable: true });
    globalThis.dispatchEvent(event);
    assert.equal(seen.length, 0, "not before the dispatch has ended");
    await tick();
    assert.deepEqual(seen, [{ kind: "uncaught error", error }]);
    assert.equal(event.defaultPrevented, true);
  } finally {
    unwatch();
  }
});

Deno.test("crash watch: a rejection is reported with its reason", async () => {
  const seen: Crash[] = [];
  const unwatch = watchCrashes((crash) => seen.push(crash));
  try {
    const promise = Promise.reject("nope");
    promise.catch(() => {});
    globalThis.dispatchEvent(
      new PromiseRejectionEvent("unhandledrejection", {
        promise,
        reason: "nope",
        cancelable: true,
      }),
    );
    await tick();
    assert.deepEqual(seen, [{ kind: "unhandled rejection", error: "nope" }]);
  } finally {
    unwatch();
  }
});

Deno.test("crash watch: an app listener's preventDefault(), before or after ours, means handled; uninstalled, nothing", async () => {
  const seen: Crash[] = [];
  const prevent = (event: Event) => event.preventDefault();
  const dispatch = () =>
    globalThis.dispatchEvent(
      new ErrorEvent("error", { error: new Error("x"), cancelable: true }),
    );
  globalThis.addEventListener("error", prevent);
  let unwatch = watchCrashes((crash) => seen.push(crash));
  dispatch();
  await tick();
  globalThis.removeEventListener("error", prevent);
  unwatch();
  unwatch = watchCrashes((crash) => seen.push(crash));
  globalThis.addEventListener("error", prevent);
  dispatch();
  await tick();
  globalThis.removeEventListener("error", prevent);
  unwatch();
  assert.deepEqual(seen, []);
  // Uninstalled: nothing reported (the event is ours to cancel here).
  globalThis.addEventListener("error", prevent);
  dispatch();
  await tick();
  globalThis.removeEventListener("error", prevent);
  assert.deepEqual(seen, []);
});
