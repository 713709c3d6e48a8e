/**
 * The process-level half of graceful shutdown: one owner for the OS signal
 * listeners, the drain participants (servers, queue consumers), the cleanup
 * hooks and the exit code. Usable without any server.
 *
 * ```ts
 * import { Shutdown } from "@graceful/http/shutdown";
 *
 * // A worker that only consumes a queue: stop taking jobs on SIGINT/SIGTERM,
 * // finish the current one, close the connection, exit 0.
 * const shutdown = new Shutdown({ exit: false });
 * let current: Promise<void> = Promise.resolve();
 * shutdown.addDrainer(() => current);
 * shutdown.onShutdown(() => console.log("queue connection closed"));
 * shutdown.listen();
 * // while (!shutdown.signal.aborted) current = handle(await nextJob());
 * shutdown[Symbol.dispose]();
 * ```
 *
 * @module
 */
import {
  badOption,
  type Logger,
  resolveLogger,
  since,
} from "./lifecycle/_log.ts";
import { duration, timer, warmTimers } from "./lifecycle/_timer.ts";
import { type Hook, type HookEntry, runHooks } from "./lifecycle/_hooks.ts";
import {
  defaultSignals,
  signalExitCode,
  signalList,
} from "./lifecycle/_signals.ts";
import {
  SAME_SIGNAL_MS,
  type StopAction,
  StopMachine,
} from "./lifecycle/_stop_machine.ts";
import { exitFlushed, FORCED_FLUSH_MS } from "./lifecycle/_stderr.ts";
import { type Crash, watchCrashes } from "./lifecycle/_crash.ts";
import { recordShutdown } from "./lifecycle/_telemetry.ts";

import {
  type DrainContext,
  type Drainer,
  type DrainerOptions,
  ExitCode,
  type HookOptions,
  type ShutdownOptions,
  type ShutdownResult,
} from "./lifecycle/_shutdown_types.ts";

/** Longest wait for the drainers' `stopAccepting` before the stop goes on. */
const STOP_ACCEPTING_MS = 100;

export type { Logger } from "./lifecycle/_log.ts";
export type { Hook } from "./lifecycle/_hooks.ts";
export type {
  DrainContext,
  Drainer,
  DrainerOptions,
  HookOptions,
  ShutdownOptions,
  ShutdownResult,
};
export { defaultSignals, ExitCode };

/**
 * Coordinates a graceful stop of the whole process: on the first signal it
 * aborts {@linkcode Shutdown.signal}, waits for every drainer, runs the hooks
 * in reverse order of registration, then exits with an
 * {@linkcode ExitCode}. A signal for a stop already under way is that same
 * stop: a copy within 200 ms of the first (a terminal, systemd and
 * `deno task` deliver one stop to every process of the group), and the first
 * signal after a stop begun by {@linkcode Shutdown.start} or a supervisor's
 * command. Only a later, deliberate signal exits at once.
 *
 * It does not stop servers by itself: `serve()` registers each server as a
 * drainer. It installs nothing until {@linkcode Shutdown.listen} is called,
 * and removes its listeners when done or disposed.
 *
 * @example A shutdown with a hook, started by hand
 * ```ts
 * import { Shutdown } from "@graceful/http/shutdown";
 * import assert from "node:assert/strict";
 *
 * const shutdown = new Shutdown({ exit: false, logger: false });
 * const closed: string[] = [];
 * shutdown.onShutdown(() => void closed.push("db"));
 * shutdown.onShutdown(() => void closed.push("cache"));
 * const result = await shutdown.start("test");
 * assert.deepEqual(closed, ["cache", "db"]);
 * assert.equal(result.exitCode, 0);
 * ```
 */
export class Shutdown implements Disposable {
  #controller = new AbortController();
  #signals: Deno.Signal[];
  #hooksTimeout: number;
  #exit: boolean;
  #drainOnCrash: boolean;
  /** Uninstalls the crash listeners, once installed. */
  #unwatch: (() => void) | undefined;
  /** An uncaught error came: the exit code says so. */
  #crashed = false;
  #logger: Logger;
  #hooks: HookEntry[] = [];
  #drainers = new Map<Drainer, DrainerOptions>();
  #listening = new Map<Deno.Signal, () => void>();
  #result: Promise<ShutdownResult> | undefined;
  /** Why the shutdown started, for the line a joining signal prints. */
  #reason = "";
  #stops = new StopMachine();

  /** Creates a shutdown coordinator; installs nothing yet. */
  constructor(options: ShutdownOptions = {}) {
    if (options === null || typeof options !== "object") {
      throw badOption("options", "an object", options);
    }
    this.#signals = signalList(options.signals);
    this.#hooksTimeout = duration("hooksTimeout", options.hooksTimeout, 5000);
    if (options.exit !== undefined && typeof options.exit !== "boolean") {
      throw badOption("exit", "true or false", options.exit);
    }
    this.#exit = options.exit ?? true;
    if (
      options.drainOnCrash !== undefined &&
      typeof options.drainOnCrash !== "boolean"
    ) {
      throw badOption("drainOnCrash", "true or false", options.drainOnCrash);
    }
    this.#drainOnCrash = (options.drainOnCrash ?? true) && this.#exit;
    this.#logger = resolveLogger(options.logger);
  }

  /** The budget (ms) all cleanup hooks share after the drain. */
  get hooksTimeout(): number {
    return this.#hooksTimeout;
  }

  /** Aborts when the shutdown starts; its `reason` says why. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /**
   * True once the shutdown has started: `start()` was called or a stop
   * signal came (also while its start waits for `stopAccepting`).
   */
  get started(): boolean {
    return this.#stops.started;
  }

  /** The logger this shutdown reports to. */
  get logger(): Logger {
    return this.#logger;
  }

  /**
   * Installs the OS signal listeners. Idempotent. A listener suppresses the
   * signal's default action until it is removed again.
   */
  listen(): this {
    if (this.#result) return this;
    if (this.#drainOnCrash) {
      this.#unwatch ??= watchCrashes((c) => this.#crash(c));
    }
    for (const name of this.#signals) {
      if (this.#listening.has(name)) continue;
      const listener = () => this.#onSignal(name, this.#stopAccepting());
      Deno.addSignalListener(name, listener);
      this.#listening.set(name, listener);
    }
    // Compiled now, not at the first signal (see `_drain.ts`, closeEarly):
    // the stop rule, and the first step on a Shutdown with no drainer.
    new StopMachine().next({ kind: "signal", at: 0 });
    new Shutdown({ signals: [], logger: false }).#stopAccepting();
    warmTimers();
    return this;
  }

  /**
   * Registers a cleanup hook, run after every drainer has finished, in
   * reverse order of registration: what was opened first closes last. A hook
   * that throws or runs out of time is reported; the others still run and
   * the exit code becomes {@linkcode ExitCode.HookFailed}.
   * Returns a function that unregisters the hook.
   */
  onShutdown(fn: Hook, options: HookOptions = {}): () => void {
    if (typeof fn !== "function") {
      throw badOption("onShutdown", "a function", fn);
    }
    const entry: HookEntry = {
      fn,
      name: options.name ?? (fn.name || `hook #${this.#hooks.length + 1}`),
      timeout: options.timeout === undefined
        ? undefined
        : duration("timeout", options.timeout, 0),
    };
    this.#hooks.push(entry);
    return () => {
      const at = this.#hooks.indexOf(entry);
      if (at >= 0) this.#hooks.splice(at, 1);
    };
  }

  /**
   * Registers something to wait for before the hooks run (a server, a
   * consumer). Drainers run together. `options.stopAccepting` runs first,
   * in the signal's own task ({@linkcode DrainerOptions}). Returns a
   * function that unregisters it.
   */
  addDrainer(drainer: Drainer, options: DrainerOptions = {}): () => void {
    this.#drainers.set(drainer, options);
    return () => this.#drainers.delete(drainer);
  }

  /**
   * Starts the shutdown (what a signal does): drain, hooks, then exit unless
   * `exit: false` (given here, or to the constructor). Idempotent: later
   * calls return the same promise.
   */
  start(
    reason = "shutdown requested",
    options: Omit<DrainContext, "reason"> & { exit?: boolean } = {},
  ): Promise<ShutdownResult> {
    this.#stops.next({ kind: "begin", at: performance.now() });
    if (!this.#result) {
      this.#reason = reason;
      const { exit = this.#exit, ...context } = options;
      this.#result = this.#run({ ...context, reason }, exit);
    }
    return this.#result;
  }

  /** Removes the signal listeners; the default signal actions come back. */
  [Symbol.dispose](): void {
    for (const [name, listener] of this.#listening) {
      Deno.removeSignalListener(name, listener);
    }
    this.#listening.clear();
    this.#unwatch?.();
    this.#unwatch = undefined;
  }

  /** An uncaught error or rejection: said, then the graceful shutdown. */
  #crash({ kind, error }: Crash) {
    this.#crashed = true;
    const what = error instanceof Error
      ? (error.stack ?? error.message)
      : String(error);
    this.#logger.error(
      `${kind} outside the handlers: ${what}\n${
        this.#result ? "the shutdown under way" : "shutting down gracefully"
      } ends with exit code ${ExitCode.Crashed}`,
    );
    this.start(kind);
  }

  /**
   * A first signal's first step, before the rest of the stop's code runs
   * (and is compiled: ~0.1 ms at the first signal): every drainer's
   * `stopAccepting` (a server alone calls Deno's `shutdown()` there). The
   * rest waits for what they return until Deno has closed the idle
   * connections (at most STOP_ACCEPTING_MS): with the stop run first, they
   * closed 3–10 ms after the signal, a window in which requests sent on them
   * were lost (bench/README.md, "One SIGTERM under real client pools").
   */
  #stopAccepting(): Promise<unknown>[] | undefined {
    if (this.#stops.started) return undefined;
    let stopping: Promise<unknown>[] | undefined;
    for (const { stopAccepting } of this.#drainers.values()) {
      const waiting = stopAccepting?.();
      if (waiting) (stopping ??= []).push(waiting);
    }
    return stopping;
  }

  /** A stop signal, once `#stopAccepting` has run. */
  #onSignal(name: Deno.Signal, stopping: Promise<unknown>[] | undefined) {
    const action = this.#stops.next({ kind: "signal", at: performance.now() });
    if (action !== "start") return this.#again(name, action);
    if (!stopping) return this.#begin(name);
    const bound = timer(STOP_ACCEPTING_MS, undefined);
    this.#opening = Promise.race([Promise.allSettled(stopping), bound.promise])
      .then(() => {
        bound.clear();
        this.#begin(name);
      });
  }

  /** The held start of a stop (see #onSignal): later lines wait for its. */
  #opening: Promise<void> | undefined;

  /** A signal for a stop under way: said, or the forced exit. */
  #again(name: Deno.Signal, action: StopAction) {
    if (action === "joined") {
      this.#logger.info(
        `${name} received: already shutting down (${this.#reason}), taken as the same stop (send ${name} again to exit at once)`,
      );
    } else if (action === "echo") {
      const say = () =>
        this.#logger.info(
          `${name} again within ${SAME_SIGNAL_MS} ms: taken as the same one (a terminal, systemd or a wrapper such as \`deno task\` delivers one stop to every process of the group)`,
        );
      if (this.#opening) this.#opening.then(say);
      else say();
    } else {
      const code = signalExitCode(name);
      this.#logger.error(`second ${name}: exiting now with code ${code}`);
      exitFlushed(code, FORCED_FLUSH_MS);
    }
  }

  /** The stop a first signal begins: its line, then `start()`. */
  #begin(name: Deno.Signal) {
    this.#logger.info(
      `${name} received: shutting down gracefully (send ${name} again to exit at once)`,
    );
    this.start(name);
  }

  async #run(context: DrainContext, exit: boolean): Promise<ShutdownResult> {
    const { reason } = context;
    const start = performance.now();
    // Drainers start before the signal is aborted: a server closes its
    // listener first, and the app's abort listeners run after that.
    const draining = [...this.#drainers.keys()].map(async (drain) =>
      await drain(context)
    );
    this.#controller.abort(reason);
    const outcomes = await Promise.allSettled(draining);
    let forced = false;
    let failed = false;
    for (const outcome of outcomes) {
      if (outcome.status === "rejected") {
        failed = true;
        this.#logger.error(`drain failed: ${outcome.reason}`);
      } else {
        forced ||= outcome.value?.forced ?? false;
        failed ||= (outcome.value?.broken?.length ?? 0) > 0;
      }
    }
    const failedHooks = await runHooks(
      [...this.#hooks].reverse(),
      this.#hooksTimeout,
      this.#logger,
    );
    const exitCode = forced
      ? ExitCode.DeadlineExceeded
      : this.#crashed
      ? ExitCode.Crashed
      : failed
      ? ExitCode.DrainFailed
      : failedHooks.length > 0
      ? ExitCode.HookFailed
      : ExitCode.Ok;
    const durationMs = since(start);
    this.#logger.info(
      `shutdown complete in ${durationMs} ms (${reason}), exit code ${exitCode}`,
    );
    recordShutdown(start, { reason, exitCode, failedHooks });
    // Exiting, the listeners stay until `Deno.exit`: a signal still on its
    // way (a group's copy, after a stop the supervisor began) must find
    // them, not the default action that would kill the process with it.
    if (exit) await exitFlushed(exitCode);
    this[Symbol.dispose]();
    return { reason, exitCode, durationMs, forced, failedHooks };
  }
}
