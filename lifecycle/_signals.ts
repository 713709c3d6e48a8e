/**
 * Stop signals: which ones a platform allows, validation of the `signals`
 * option, the exit code of a second signal (128 + its number), and the
 * window in which a copy of the same Ctrl+C is taken as one signal.
 */
import { describe } from "./_log.ts";

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
    throw new TypeError(
      `signals: expected an array of signal names, got ${describe(value)}`,
    );
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
  SIGTERM: 15,
  SIGBREAK: 21,
  SIGWINCH: 28,
  SIGUSR2: os === "darwin" ? 31 : 12,
};

/**
 * Copies of one signal that arrive closer together than this are one event.
 * Ctrl+C in a terminal reaches every process of the foreground group, and
 * `deno task` (like other wrappers) forwards its own copy to the child too:
 * measured 0.15–0.3 ms apart under `deno task` on Deno 2.9.6, and sometimes
 * merged into one by the kernel. A person pressing again takes far longer.
 */
export const SAME_SIGNAL_MS = 200;

/** What one delivery of a stop signal means, see {@linkcode signalKind}. */
export type SignalKind = "first" | "echo" | "repeat";

/**
 * Classifies the deliveries of stop signals to one process: the first starts
 * the shutdown; any within {@linkcode SAME_SIGNAL_MS} of it is an echo of the
 * same key press (ignored); a later one is a deliberate repeat (forces).
 */
export function signalKind(): () => SignalKind {
  let first: number | undefined;
  return () => {
    const now = performance.now();
    if (first === undefined) {
      first = now;
      return "first";
    }
    return now - first < SAME_SIGNAL_MS ? "echo" : "repeat";
  };
}

/** The exit status a shell reports for death by `signal`: 128 + its number. */
export function signalExitCode(signal: Deno.Signal): number {
  return 128 + (NUMBERS[signal] ?? 0);
}
