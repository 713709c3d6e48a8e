/**
 * Uncaught errors and unhandled rejections outside the handlers (a timer
 * that throws, a background task whose promise nobody awaits), seen before
 * Deno ends the process for them, so that the lifecycle can drain first.
 *
 * An app's own `error` or `unhandledrejection` listener keeps its meaning:
 * one that calls `preventDefault()`, before this one or after, has handled
 * the error, and nothing happens here. It does not catch errors thrown by
 * handlers (those become 500s), nor a crash of the runtime itself.
 */

/** What went uncaught. */
export interface Crash {
  kind: "uncaught error" | "unhandled rejection";
  error: unknown;
}

/**
 * Calls `onCrash` for each error or rejection no other listener handled,
 * after keeping Deno from exiting for it. Returns the uninstaller.
 */
export function watchCrashes(onCrash: (crash: Crash) => void): () => void {
  const listener = (event: Event) => {
    if (event.defaultPrevented) return; // an earlier listener handled it
    event.preventDefault();
    // A later listener's preventDefault() says it handled it too.
    let handled = false;
    Object.defineProperty(event, "preventDefault", {
      value: () => void (handled = true),
      configurable: true,
    });
    const crash: Crash = event.type === "error"
      ? { kind: "uncaught error", error: (event as ErrorEvent).error }
      : {
        kind: "unhandled rejection",
        error: (event as PromiseRejectionEvent).reason,
      };
    // After every listener has run (they run in one dispatch).
    queueMicrotask(() => handled || onCrash(crash));
  };
  globalThis.addEventListener("error", listener);
  globalThis.addEventListener("unhandledrejection", listener);
  return () => {
    globalThis.removeEventListener("error", listener);
    globalThis.removeEventListener("unhandledrejection", listener);
  };
}
