/**
 * Stop signals: which ones a platform allows, validation of the `signals`
 * option, and the exit code of a second signal (128 + its number). What a
 * delivery means is `_stop_machine.ts`'s job.
 */
import { badOption, describe } from "./_log.ts";

const os = Deno.build.os;

/**
 * Signals a shutdown may listen to, per OS, as measured on Deno 2.9.6.
 * SIGUSR1 is left out on purpose: Deno opens the V8 inspector on it (or
 * dies, early in start-up) whatever listeners are installed.
 */
const LISTENABLE: ReadonlySet<string> = new Set(
  os === "windows"
    ? ["SIGINT", "SIGBREAK", "SIGTERM", "SIGQUIT", "SIGHUP", "SIGWINCH"]
    : ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR2", "SIGWINCH"],
);

/**
 * The signals a shutdown listens to when none are given: SIGINT and SIGTERM,
 * or SIGINT, SIGBREAK and SIGTERM on Windows.
 *
 * @example
 * ```ts
 * import { defaultSignals } from "@graceful/http/shutdown";
 * console.log(defaultSignals()); // ["SIGINT", "SIGTERM"] on Linux
 * ```
 */
export function defaultSignals(): Deno.Signal[] {
  return os === "windows"
    ? ["SIGINT", "SIGBREAK", "SIGTERM"]
    : ["SIGINT", "SIGTERM"];
}

/** Validates the `signals` option; throws a `TypeError` naming the value. */
export function signalList(value: unknown): Deno.Signal[] {
  if (value === undefined) return defaultSignals();
  if (!Array.isArray(value)) {
    throw badOption("signals", "an array of signal names", value);
  }
  for (const name of value) {
    if (name === "SIGUSR1") {
      throw new TypeError(
        `signals: "SIGUSR1" cannot be used: Deno opens its inspector on SIGUSR1`,
      );
    }
    if (typeof name !== "string" || !LISTENABLE.has(name)) {
      throw new TypeError(
        `signals: ${
          describe(name)
        } is not a signal Deno can listen to on ${os}; use one of ${
          [...LISTENABLE].join(", ")
        }`,
      );
    }
  }
  return [...new Set(value as Deno.Signal[])];
}

const NUMBERS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGABRT: 6,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGTERM: 15,
  SIGBREAK: 21,
  SIGWINCH: 28,
  SIGUSR2: os === "darwin" ? 31 : 12,
};

/** The exit status a shell reports for death by `signal`: 128 + its number. */
export function signalExitCode(signal: string): number {
  return 128 + (NUMBERS[signal] ?? 0);
}
