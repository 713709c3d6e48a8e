/**
 * The supervisor's options: their types, defaults and validation (each bad
 * value a `TypeError` naming the option and the value), before anything
 * starts.
 */
import { badOption, type Logger } from "../lifecycle/_log.ts";
import { EnvFile } from "./_env_file.ts";
import { duration } from "../lifecycle/_timer.ts";

/** The pre-drain's longest time (ms) when `preDrain` is not given. */
export const PRE_DRAIN_DEFAULT = 1000;
/** `rollbackWindow`'s default (ms), bounded by `preDrain`. */
export const ROLLBACK_WINDOW_DEFAULT = 50;

/** Most workers one supervisor runs (each is a whole Deno process). */
export const MAX_WORKERS = 64;

/** Options for {@linkcode Supervisor}. */
export interface SupervisorOptions {
  /** The worker command, e.g. `["deno", "run", "-A", "--unstable-net", "server.ts"]`. */
  command: string[];
  /**
   * How many workers share the port. Default 1.
   * @default 1
   */
  workers?: number;
  /**
   * The longest (ms) a retiring worker answers with `Connection: close`
   * before closing its listener. It ends sooner once the worker is quiet
   * (no connection left that could send a request it was not told to take
   * elsewhere; Linux, workers with `--allow-ffi`), but never before
   * `rollbackWindow`. Default 1000.
   * @default 1000
   */
  preDrain?: number;
  /**
   * How long (ms) after a new worker reports ready the old one stays able
   * to take its place again: a new worker that dies within this time is
   * rolled back even when the old one is quiet sooner. It also covers
   * handshakes under way at the steer (clients with a round trip below it;
   * see docs/restarts.md). At most `preDrain` (which bounds it anyway).
   * Default 50.
   * @default 50
   */
  rollbackWindow?: number;
  /**
   * How long (ms) a new worker may take to report ready. Default 30 000.
   * @default 30000
   */
  readyTimeout?: number;
  /**
   * How long (ms) a retiring or stopping worker may take to exit before SIGKILL. Default 60 000.
   * @default 60000
   */
  stopTimeout?: number;
  /**
   * First delay (ms) before replacing a crashed worker; doubles up to 30 s. Default 100.
   * @default 100
   */
  crashBackoff?: number;
  /**
   * Once a worker has run this long (ms), a crash of its slot starts the
   * backoff over at `crashBackoff`. Default 60 000.
   * @default 60000
   */
  stableAfter?: number;
  /**
   * Replace a worker that has not answered the supervisor's ping for this
   * many ms (a blocked event loop, SIGSTOP): a new worker takes its slot
   * once ready, then the wedged one is killed. Default 0: off.
   * @default 0
   */
  heartbeat?: number;
  /**
   * An env file read once per generation: each restart's workers get its
   * variables (a bad file rolls the restart back). Default none.
   * @default undefined
   */
  envFile?: string;
  /**
   * Steer new connections away from a retiring worker before it closes its
   * listener (Linux; the workers need `--allow-ffi`): with
   * `tcp_migrate_req=0` the kernel would reset what is queued on it. Each
   * old worker then exits before the next slot restarts. Default true.
   * @default true
   */
  steer?: boolean;
  /**
   * Where the supervisor's lines go; `false` silences them. Default: stderr.
   * @default a logger writing `[supervisor] …` lines to stderr
   */
  logger?: Logger | false;
}

/** The options with their defaults, validated. */
export interface SupervisorSettings {
  command: string[];
  workers: number;
  preDrain: number;
  rollbackWindow: number;
  steer: boolean;
  readyTimeout: number;
  stopTimeout: number;
  crashBackoff: number;
  stableAfter: number;
  heartbeat: number;
  envFile: EnvFile | undefined;
}

/** Validates `options`; throws a `TypeError` naming a bad one. */
export function supervisorSettings(
  options: SupervisorOptions,
): SupervisorSettings {
  if (
    !Array.isArray(options.command) || options.command.length === 0 ||
    !options.command.every((part) => typeof part === "string")
  ) {
    throw new TypeError(
      `command: expected a non-empty array of strings, got ${
        JSON.stringify(options.command)
      }`,
    );
  }
  const workers = options.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
    throw new TypeError(
      `workers: expected a whole number from 1 to ${MAX_WORKERS}, got ${workers}`,
    );
  }
  const preDrain = duration("preDrain", options.preDrain, PRE_DRAIN_DEFAULT);
  const rollbackWindow = duration(
    "rollbackWindow",
    options.rollbackWindow,
    Math.min(ROLLBACK_WINDOW_DEFAULT, preDrain),
  );
  if (rollbackWindow > preDrain) {
    throw badOption(
      "rollbackWindow",
      `at most preDrain (${preDrain} ms)`,
      rollbackWindow,
    );
  }
  if (options.steer !== undefined && typeof options.steer !== "boolean") {
    throw badOption("steer", "true or false", options.steer);
  }
  return {
    command: options.command,
    workers,
    preDrain,
    rollbackWindow,
    steer: options.steer ?? true,
    readyTimeout: duration("readyTimeout", options.readyTimeout, 30_000),
    stopTimeout: duration("stopTimeout", options.stopTimeout, 60_000),
    crashBackoff: duration("crashBackoff", options.crashBackoff, 100),
    stableAfter: duration("stableAfter", options.stableAfter, 60_000),
    heartbeat: duration("heartbeat", options.heartbeat, 0),
    envFile: envFile(options.envFile),
  };
}

function envFile(path: unknown): EnvFile | undefined {
  if (path === undefined) return undefined;
  if (typeof path === "string" && path !== "") return new EnvFile(path);
  throw badOption("envFile", "a file path", path);
}
