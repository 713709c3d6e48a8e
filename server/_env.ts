/**
 * Settings from environment variables, for code that cannot be edited (the
 * `auto` preload, the `serve_default` runner). Each variable is validated;
 * a variable that cannot be read (no `--allow-env`) counts as unset.
 */
import { grantedEnv } from "../lifecycle/_env_var.ts";
import { badOption } from "../lifecycle/_log.ts";
import { MAX_TIMER_MS, wholeNumber } from "../lifecycle/_cli.ts";
import { MAX_RETRY_AFTER, path } from "./_options.ts";
import { signalList } from "../lifecycle/_signals.ts";
import type { ServeOptions } from "../server.ts";

/** The variables read, with what each sets. */
export const ENV_VARS: Record<string, string> = {
  GRACEFUL_DRAIN_TIMEOUT: "drainTimeout (ms)",
  GRACEFUL_DRAIN_DELAY: "drainDelay (ms; with GRACEFUL_DRAIN_QUIET, its max)",
  GRACEFUL_DRAIN_QUIET:
    "ends drainDelay after this many ms without a request (drainDelay.quiet)",
  GRACEFUL_RETRY_AFTER: "retryAfter (seconds, as the header)",
  GRACEFUL_GRACE_PERIOD_SECONDS:
    "gracePeriod, in seconds like terminationGracePeriodSeconds",
  GRACEFUL_HOOKS_TIMEOUT: "hooksTimeout (ms)",
  GRACEFUL_HEALTH_PATH: "healthPath",
  GRACEFUL_LIVENESS_PATH: "livenessPath",
  GRACEFUL_SIGNALS: "signals (comma-separated)",
  GRACEFUL_QUIET: "1 silences the progress lines",
};

function milliseconds(name: string): number | undefined {
  const raw = grantedEnv(name);
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
  const quiet = milliseconds("GRACEFUL_DRAIN_QUIET");
  if (quiet !== undefined) {
    if (drainDelay === undefined) {
      throw new TypeError(
        "GRACEFUL_DRAIN_QUIET: needs GRACEFUL_DRAIN_DELAY (the delay's max)",
      );
    }
    options.drainDelay = { max: drainDelay, quiet };
  } else if (drainDelay !== undefined) options.drainDelay = drainDelay;
  const retryAfter = grantedEnv("GRACEFUL_RETRY_AFTER");
  if (retryAfter !== undefined) {
    options.retryAfter = retryAfter.trim() === "off" ? false : wholeNumber(
      "GRACEFUL_RETRY_AFTER",
      retryAfter.trim(),
      0,
      MAX_RETRY_AFTER,
    );
  }
  if (grantedEnv("GRACEFUL_GRACE_PERIOD") !== undefined) {
    throw new TypeError(
      "GRACEFUL_GRACE_PERIOD: renamed GRACEFUL_GRACE_PERIOD_SECONDS (the unit in the name; gracePeriod itself is in ms)",
    );
  }
  const grace = grantedEnv("GRACEFUL_GRACE_PERIOD_SECONDS");
  if (grace !== undefined) {
    options.gracePeriod = wholeNumber(
      "GRACEFUL_GRACE_PERIOD_SECONDS",
      grace.trim(),
      0,
      Math.floor(MAX_TIMER_MS / 1000),
    ) * 1000;
  }
  const hooksTimeout = milliseconds("GRACEFUL_HOOKS_TIMEOUT");
  if (hooksTimeout !== undefined) options.hooksTimeout = hooksTimeout;
  const health = grantedEnv("GRACEFUL_HEALTH_PATH");
  if (health !== undefined) {
    options.healthPath = path("GRACEFUL_HEALTH_PATH", health);
  }
  const liveness = grantedEnv("GRACEFUL_LIVENESS_PATH");
  if (liveness !== undefined) {
    options.livenessPath = path("GRACEFUL_LIVENESS_PATH", liveness);
  }
  const signals = grantedEnv("GRACEFUL_SIGNALS");
  if (signals !== undefined) {
    const names = signals.split(",").map((s) => s.trim()).filter(Boolean);
    // An empty list would silently turn graceful shutdown off.
    if (names.length === 0) {
      throw badOption(
        "GRACEFUL_SIGNALS",
        "signal names such as SIGINT,SIGTERM",
        signals,
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
  const silent = grantedEnv("GRACEFUL_QUIET");
  if (silent !== undefined) {
    if (silent !== "0" && silent !== "1") {
      throw badOption("GRACEFUL_QUIET", "0 or 1", silent);
    }
    if (silent === "1") options.logger = false;
  }
  return options;
}
