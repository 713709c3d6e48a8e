/**
 * Cleanup hooks: each run within its own timeout and what is left of the
 * shared budget (`hooksTimeout`), one line for each that fails. The
 * lifecycle (`shutdown.ts`) owns the list and calls {@linkcode runHooks}
 * after the drain.
 */
import type { Logger } from "./_log.ts";
import { timer } from "./_timer.ts";

/**
 * A cleanup hook. It receives a signal that aborts when its time is up, so
 * it can give up cleanly.
 */
export type Hook = (signal: AbortSignal) => unknown;

/** A registered hook, as the lifecycle keeps it. */
export interface HookEntry {
  fn: Hook;
  name: string;
  timeout: number | undefined;
}

/**
 * Runs `hooks` in the order given, all within `budget` ms; returns the names
 * of those that failed, timed out or were skipped because the budget was
 * used up. It does not run them in parallel: a hook may need the one before
 * it (close the server's pool, then its database).
 */
export async function runHooks(
  hooks: readonly HookEntry[],
  budget: number,
  logger: Logger,
): Promise<string[]> {
  const failed: string[] = [];
  const budgetEnd = performance.now() + budget;
  let budgetUsed = false;
  for (const hook of hooks) {
    const left = Math.max(0, budgetEnd - performance.now());
    if (budgetUsed || left <= 0) {
      logger.error(`hook "${hook.name}" skipped: hooksTimeout used up`);
      failed.push(hook.name);
      continue;
    }
    const own = hook.timeout ?? Infinity;
    const problem = await runHook(hook, Math.min(own, left));
    if (problem) {
      logger.error(`hook "${hook.name}" ${problem.message}`);
      failed.push(hook.name);
      // Timed out on what was left of the budget, not on its own timeout:
      // the budget is gone (timers may fire a hair before the clock agrees).
      if (problem.timedOut && own > left) budgetUsed = true;
    }
  }
  return failed;
}

/** Runs one hook within `limit` ms; returns what went wrong, if anything. */
async function runHook(
  hook: HookEntry,
  limit: number,
): Promise<{ message: string; timedOut: boolean } | undefined> {
  const controller = new AbortController();
  const limitTimer = timer(limit, {
    message: `timed out after ${Math.round(limit)} ms`,
    timedOut: true,
  });
  limitTimer.promise.then(() =>
    controller.abort(new DOMException("hook timed out", "TimeoutError"))
  );
  try {
    return await Promise.race([
      (async () => {
        await hook.fn(controller.signal);
        return undefined;
      })(),
      limitTimer.promise,
    ]);
  } catch (error) {
    return {
      message: `failed: ${
        error instanceof Error ? error.message : String(error)
      }`,
      timedOut: false,
    };
  } finally {
    limitTimer.clear();
  }
}
