/**
 * The one rule for stop signals, as a pure state machine: what a delivery of
 * SIGINT/SIGTERM means given what already happened in this process. Used by
 * `Shutdown` (every server process) and by the restart supervisor.
 *
 * Production delivers a stop more than once and in any order: a terminal's
 * Ctrl+C and systemd's `KillMode=control-group` signal every process of the
 * group, `deno task` forwards its own copy, and a supervised worker may get
 * its supervisor's `stop` command before or after its own signal. The rule:
 *
 * - the first stop event, whatever it is, starts the graceful stop;
 * - a signal for a stop already under way is that same stop: the first one
 *   after a stop that began without a signal (`start()`, the supervisor's
 *   command, stdin's end, a restart's drain) joins it, and copies within
 *   {@linkcode SAME_SIGNAL_MS} of the stop's first signal are echoes;
 * - only a later, deliberate signal forces.
 *
 * It does not look at the clock or at signal names: the caller passes the
 * time, and any stop signal counts as any other.
 */

/**
 * Copies of one signal that arrive closer together than this are one event.
 * Ctrl+C in a terminal reaches every process of the foreground group, and
 * `deno task` (like other wrappers) forwards its own copy to the child too:
 * measured 0.15–0.3 ms apart under `deno task` on Deno 2.9.6, and sometimes
 * merged into one by the kernel. A person pressing again takes far longer.
 */
export const SAME_SIGNAL_MS = 200;

/** Something that stops the process, as told to {@linkcode StopMachine}. */
export type StopEvent =
  /** A stop signal (SIGINT, SIGTERM, ...) was delivered at `at` (ms). */
  | { kind: "signal"; at: number }
  /** A stop began without a signal: `start()`, a command, stdin's end. */
  | { kind: "begin"; at: number };

/**
 * What to do about a {@linkcode StopEvent}:
 * - `start`: begin the graceful stop (the first event);
 * - `already`: a `begin` while a stop is under way: nothing to do;
 * - `joined`: the first signal for a stop that began without one: the same
 *   stop, nothing to do but say so;
 * - `echo`: a copy of the stop's first signal: nothing to do;
 * - `force`: a deliberate second signal: exit now.
 */
export type StopAction = "start" | "already" | "joined" | "echo" | "force";

/** The stop state of one process; see the module doc for the rule. */
export class StopMachine {
  #started = false;
  /** When the stop's first signal arrived (the echo window's start). */
  #firstSignal: number | undefined;

  /** `echoMs`: the window in which a signal is a copy of the first. */
  constructor(readonly echoMs: number = SAME_SIGNAL_MS) {}

  /** True once a stop has started. */
  get started(): boolean {
    return this.#started;
  }

  /** Takes one event; returns what it means. */
  next(event: StopEvent): StopAction {
    if (!this.#started) {
      this.#started = true;
      if (event.kind === "signal") this.#firstSignal = event.at;
      return "start";
    }
    if (event.kind === "begin") return "already";
    if (this.#firstSignal === undefined) {
      this.#firstSignal = event.at;
      return "joined";
    }
    return event.at - this.#firstSignal < this.echoMs ? "echo" : "force";
  }
}
