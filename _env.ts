/**
 * Settings from environment variables, for code that cannot be edited (the
 * `auto` preload, the `serve_default` runner). Each variable is validated;
 * a variable that cannot be read (no `--allow-env`) counts as unset.
 */
import { MAX_TIMER_MS, wholeNumber } from "./_cli.ts";
import { path } from "./_options.ts";
import { signalList } from "./_signals.ts";
import type { ServeOptions } from "./server.ts";

/** The variables read, with what each sets. */
export const ENV_VARS: Record<string, string> = {
  GRACEFUL_DRAIN_TIMEOUT: "drainTimeout (ms)",
  GRACEFUL_DRAIN_DELAY: "drainDelay (ms)",
  GRACEFUL_HOOKS_TIMEOUT: "hooksTimeout (ms)",
  GRACEFUL_HEALTH_PATH: "healthPath",
  GRACEFUL_SIGNALS: "signals (comma-separated)",
  GRACEFUL_QUIET: "1 silences the progress lines",
};

function read(name: string): string | undefined {
  try {
    const state = Deno.permissions.querySync({ name: "env", variable: name })
      .state;
    return state === "granted" ? Deno.env.get(name) : undefined;
  } catch {
    return undefined;
  }
}

function milliseconds(name: string): number | undefined {
  const raw = read(name);
  if (raw === undefined) return undefined;
  try {
    return wholeNumber(name, raw.trim(), 0, MAX_TIMER_MS);
  } catch (error) {
    throw new TypeError((error as Error).message.replace(
      "a whole number",
      "a whole number of milliseconds",
    ));
  }
}

/** Reads and validates the GRACEFUL_* variables; throws a TypeError naming the bad one. */
export function optionsFromEnv(): ServeOptions {
  const options: ServeOptions = {};
  const drainTimeout = milliseconds("GRACEFUL_DRAIN_TIMEOUT");
  if (drainTimeout !== undefined) options.drainTimeout = drainTimeout;
  const drainDelay = milliseconds("GRACEFUL_DRAIN_DELAY");
  if (drainDelay !== undefined) options.drainDelay = drainDelay;
  const hooksTimeout = milliseconds("GRACEFUL_HOOKS_TIMEOUT");
  if (hooksTimeout !== undefined) options.hooksTimeout = hooksTimeout;
  const health = read("GRACEFUL_HEALTH_PATH");
  if (health !== undefined) {
    options.healthPath = path("GRACEFUL_HEALTH_PATH", health);
  }
  const signals = read("GRACEFUL_SIGNALS");
  if (signals !== undefined) {
    const names = signals.split(",").map((s) => s.trim()).filter(Boolean);
    // An empty list would silently turn graceful shutdown off.
    if (names.length === 0) {
      throw new TypeError(
        `GRACEFUL_SIGNALS: expected signal names such as SIGINT,SIGTERM, got ${
          JSON.stringify(signals)
        }`,
      );
    }
    try {
      options.signals = signalList(names);
    } catch (error) {
      throw new TypeError(
        `GRACEFUL_SIGNALS: ${
          (error as Error).message.replace(/^signals: /, "")
        }`,
      );
    }
  }
  const quiet = read("GRACEFUL_QUIET");
  if (quiet !== undefined) {
    if (quiet !== "0" && quiet !== "1") {
      throw new TypeError(
        `GRACEFUL_QUIET: expected 0 or 1, got ${JSON.stringify(quiet)}`,
      );
    }
    if (quiet === "1") options.logger = false;
  }
  return options;
}
