/**
 * The public types of the process lifecycle (`shutdown.ts` exports them):
 * its exit codes, its options, and what drainers and hooks are given.
 */
import type { Logger } from "./_log.ts";

/**
 * Exit codes of a process ended by {@linkcode Shutdown}, one per cause.
 * When several causes meet, the first of this order wins: a second signal
 * (128 + the signal's number: 130 for SIGINT, 143 for SIGTERM, as a shell
 * reports death by that signal), `DeadlineExceeded` (124), `Crashed` (70),
 * `DrainFailed` (69), `HookFailed` (1), `Ok` (0).
 *
 * @example Reading the exit code
 * ```ts
 * import { ExitCode } from "@graceful/http/shutdown";
 * console.log(ExitCode.DeadlineExceeded); // 124, like timeout(1)
 * ```
 */
export const ExitCode = {
  /** Everything drained and every hook succeeded. */
  Ok: 0,
  /** A cleanup hook threw, rejected or timed out. */
  HookFailed: 1,
  /**
   * A drainer threw or rejected, or a request failed because the drain took
   * something it still needed (a bug to report).
   */
  DrainFailed: 69,
  /**
   * An uncaught error or unhandled rejection outside the handlers started
   * the shutdown (or came during it): `EX_SOFTWARE` of sysexits.h.
   */
  Crashed: 70,
  /** The drain deadline expired: some requests were answered 503 or cut. */
  DeadlineExceeded: 124,
} as const;

/** Options for {@linkcode Shutdown}. */
export interface ShutdownOptions {
  /**
   * Signals that start the shutdown. Default: SIGINT and SIGTERM (SIGINT,
   * SIGBREAK and SIGTERM on Windows). SIGUSR1 is refused: Deno opens its
   * inspector on it. `[]` installs no listener.
   * @default ["SIGINT", "SIGTERM"] (and "SIGBREAK" on Windows)
   */
  signals?: Deno.Signal[];
  /**
   * Time for all cleanup hooks together, in ms, counted from the end of the
   * drain. Default 5000. Each hook is also bounded by its own `timeout`.
   * @default 5000
   */
  hooksTimeout?: number;
  /**
   * Call `Deno.exit()` with the exit code when done. Default `true`. A second
   * signal always exits at once, whatever this says.
   * @default true
   */
  exit?: boolean;
  /**
   * Where progress lines go; `false` silences them. Default: stderr.
   * @default a logger writing `[graceful] …` lines to stderr
   */
  logger?: Logger | false;
  /**
   * Once listening, an uncaught error or unhandled rejection outside the
   * handlers is logged and starts the same graceful shutdown (in-flight
   * requests finish, hooks run), which exits with
   * {@linkcode ExitCode.Crashed}, instead of Deno ending the process at
   * once. Default `true` (only with `exit` true: nothing else would end the
   * process). An app's own `error`/`unhandledrejection` listener that calls
   * `preventDefault()` keeps handling what it handles. `false`: Deno's
   * default, the process dies at once.
   * @default true
   */
  drainOnCrash?: boolean;
}

/** Options for one cleanup hook. */
export interface HookOptions {
  /**
   * Longest time the hook may take, in ms. Default: `hooksTimeout`.
   * @default `hooksTimeout`
   */
  timeout?: number;
  /**
   * Name used in log lines. Default: the function's name, or `hook #n`.
   * @default the function's name, or `hook #n`
   */
  name?: string;
}

/** What a drain participant is told when the shutdown starts. */
export interface DrainContext {
  /** Why the shutdown started: a signal name, or the caller's reason. */
  reason: string;
  /**
   * Overrides the participant's own pre-drain delay (ms), e.g. for a restart
   * handoff. `undefined` keeps the participant's setting.
   * @default undefined
   */
  drainDelay?: number;
  /**
   * Take the listener out of its `SO_REUSEPORT` group before draining, so a
   * sibling takes its queued connections (the supervisor asks for this when
   * `net.ipv4.tcp_migrate_req` is 1). Needs `--allow-ffi`; ignored without.
   * @default false
   */
  detachListener?: boolean;
}

/**
 * Something to wait for before the hooks run: a server draining, a consumer
 * finishing its job. Resolve `{ forced: true }` if it hit its deadline, and
 * with a non-empty `broken` if it failed requests it should have kept; a
 * rejection is a failed drain ({@linkcode ExitCode.DrainFailed}).
 */
export type Drainer = (
  context: DrainContext,
) => Promise<void | { forced: boolean; broken?: readonly string[] }>;

/** How a drainer takes part, beyond being waited for. */
export interface DrainerOptions {
  /**
   * Called in a stop signal's own task, before anything else of the stop
   * (its log line, every drainer): stop taking new work there if nothing
   * must come first, and return a promise; the rest of the stop waits for
   * it (at most 100 ms). `serve()` closes a listener here when nothing holds
   * it open, as a handler that calls `server.shutdown()` on the signal
   * does, and resolves once Deno has closed the idle kept-alive connections:
   * none is left open for a request to race. Return `undefined` if nothing
   * was stopped. Not called for a stop begun by `start()` or a supervisor's
   * command, nor for a signal that joins a stop under way.
   * @default undefined
   */
  stopAccepting?: () => Promise<unknown> | undefined;
}

/** How a shutdown ended. */
export interface ShutdownResult {
  /** Why it started. */
  reason: string;
  /** The process exit code it chose (see {@linkcode ExitCode}). */
  exitCode: number;
  /** Milliseconds from start to the end of the hooks. */
  durationMs: number;
  /** True if a drainer hit its deadline. */
  forced: boolean;
  /** Names of the hooks that threw, rejected or timed out. */
  failedHooks: string[];
}
