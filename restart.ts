/**
 * Zero-downtime restarts: a supervisor that runs your server as workers on
 * one port (`SO_REUSEPORT`) and replaces them on SIGHUP without losing a
 * request. The new generation must report ready before the old one drains;
 * the old one first answers with `Connection: close` (the pre-drain: at
 * most `preDrain` ms, less once it is quiet, never less than
 * `rollbackWindow`), then drains. A new generation that fails before the
 * pre-drain ends is rolled back.
 *
 * ```sh
 * deno run --allow-run --allow-read restart.ts \
 *   -- deno run --allow-net --allow-env --unstable-net server.ts --port 8080
 * kill -HUP <supervisor pid>   # restart, zero downtime
 * ```
 *
 * Workers must call `serve()` from this module (or run under the `./auto`
 * preload): it knows it is supervised from the `GRACEFUL_SUPERVISOR`
 * variable (so workers need `--allow-env`), binds with `reusePort` (so they
 * need `--unstable-net`), reports ready on its stderr and takes commands on
 * its stdin: a channel no other process can reach. The supervisor needs no
 * network permission.
 *
 * The supervisor exits 0 if every worker drained cleanly at the stop,
 * otherwise with the worst worker's exit code (see `Supervisor.exitCode`).
 *
 * It does not: restart without downtime outside Linux (elsewhere a restart
 * stops the old workers, then starts new ones, and says so); pass sockets
 * between processes; or make a client that reuses a connection the server
 * is closing retry its request.
 *
 * @module
 */
import {
  type Logger,
  resolveLogger,
  stderrLoggerWith,
} from "./lifecycle/_log.ts";
import {
  MAX_WORKERS,
  NotReadyError,
  PRE_DRAIN_DEFAULT,
  Supervisor,
  type SupervisorOptions,
} from "./supervisor/_supervisor.ts";
import { signalExitCode } from "./lifecycle/_signals.ts";
import { SAME_SIGNAL_MS, StopMachine } from "./lifecycle/_stop_machine.ts";
import { exitFlushed, FORCED_FLUSH_MS } from "./lifecycle/_stderr.ts";
import { sayLauncher } from "./lifecycle/_launcher.ts";
import { MAX_TIMER_MS, parseFlags, wholeNumber } from "./lifecycle/_cli.ts";

export { NotReadyError, Supervisor };
export type { Logger, SupervisorOptions };

/** Options for {@linkcode supervise}. */
export interface SuperviseOptions extends SupervisorOptions {
  /**
   * Install the signal listeners: SIGHUP and SIGUSR2 restart; SIGINT and
   * SIGTERM stop gracefully, a second one kills the workers and exits.
   * Default `true`.
   */
  signals?: boolean;
  /** Restart when files under these paths change (development). */
  watch?: string[];
}

/** A started supervisor, as returned by {@linkcode supervise}. */
export interface Supervised {
  /** The supervisor: `restart()`, `stop()`, `pids`, `generation`. */
  readonly supervisor: Supervisor;
  /** Resolves once the supervisor has stopped and every worker has exited. */
  readonly stopped: Promise<void>;
}

const RESTART_SIGNALS: Deno.Signal[] = ["SIGHUP", "SIGUSR2"];
const STOP_SIGNALS: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT", "SIGBREAK"]
  : ["SIGINT", "SIGTERM"];

/**
 * Starts a supervisor: the workers come up, then signals (and file changes
 * with `watch`) drive restarts and the stop. Rejects, with nothing left
 * running, if the first generation cannot start.
 *
 * @example Supervising a server from code
 * ```ts ignore
 * import { supervise } from "@graceful/http/restart";
 *
 * const { supervisor, stopped } = await supervise({
 *   command: ["deno", "run", "-A", "--unstable-net", "server.ts"],
 *   workers: 2,
 * });
 * await supervisor.restart(); // what SIGHUP does
 * await supervisor.stop(); // what SIGTERM does
 * await stopped;
 * ```
 */
export async function supervise(
  options: SuperviseOptions,
): Promise<Supervised> {
  const logger = options.logger === undefined
    ? stderrLoggerWith("supervisor")
    : resolveLogger(options.logger);
  const supervisor = new Supervisor({ ...options, logger });
  sayLauncher(logger, supervisor.stopTimeout);
  if (!supervisor.overlap) {
    logger.warn(
      `reusePort is not available on ${Deno.build.os}: restarts stop the old workers before starting new ones (downtime)`,
    );
  } else {
    const migrate = supervisor.tcpMigrateReq;
    if (migrate !== "1") {
      logger.warn(
        `net.ipv4.tcp_migrate_req is ${
          migrate ?? "unknown"
        }: connections queued on a closing worker's listener are reset; set it to 1 for none (see the README)`,
      );
    }
  }
  const listeners: [Deno.Signal, () => void][] = [];
  const uninstall = () => {
    for (const [name, fn] of listeners) Deno.removeSignalListener(name, fn);
    listeners.length = 0;
  };
  const on = (name: Deno.Signal, fn: () => void) => {
    Deno.addSignalListener(name, fn);
    listeners.push([name, fn]);
  };
  const stops = new StopMachine();
  if (options.signals !== false) {
    for (const name of STOP_SIGNALS) {
      on(name, () => {
        const at = performance.now();
        // A stop begun from code (`supervisor.stop()`) is the stop this
        // signal asks for.
        if (supervisor.stopping) stops.next({ kind: "begin", at });
        const action = stops.next({ kind: "signal", at });
        if (action === "start") {
          supervisor.stop(`${name} received`);
        } else if (action === "joined") {
          logger.info(`${name} received: already stopping, the same stop`);
        } else if (action === "echo") {
          logger.info(
            `${name} again within ${SAME_SIGNAL_MS} ms: taken as the same one`,
          );
        } else {
          const code = signalExitCode(name);
          logger.error(
            `second ${name}: killing the workers, exiting with ${code}`,
          );
          supervisor.kill();
          exitFlushed(code, FORCED_FLUSH_MS);
        }
      });
    }
    if (Deno.build.os !== "windows") {
      for (const name of RESTART_SIGNALS) {
        on(name, () => supervisor.restart(`${name} received`));
      }
    }
  }
  try {
    await supervisor.start();
  } catch (error) {
    uninstall();
    throw error;
  }
  const watcher = options.watch?.length
    ? watch(options.watch, supervisor, logger)
    : undefined;
  const stopped = supervisor.stopped.then(() => {
    watcher?.close();
    uninstall();
  });
  return { supervisor, stopped };
}

/** Restarts on file changes under `paths`, debounced. */
function watch(
  paths: string[],
  supervisor: Supervisor,
  logger: Logger,
): Deno.FsWatcher {
  const watcher = Deno.watchFs(paths, { recursive: true });
  let pending: ReturnType<typeof setTimeout> | undefined;
  (async () => {
    for await (const event of watcher) {
      const changed = event.paths.filter((p) =>
        !/[\\/](\.git|node_modules)[\\/]/.test(p)
      );
      if (changed.length === 0 || event.kind === "access") continue;
      clearTimeout(pending);
      pending = setTimeout(
        () => supervisor.restart(`changed: ${changed[0]}`),
        200,
      );
    }
  })().catch((error) => logger.error(`watch stopped: ${error}`));
  logger.info(`watching ${paths.join(", ")} for changes`);
  return watcher;
}

const USAGE = `usage: restart.ts [options] -- <command...>
options:
  --workers N          workers sharing the port (default 1, at most 64)
  --pre-drain MS       longest Connection: close window before an old worker
                       drains; it ends once the old worker is quiet (Linux,
                       workers with --allow-ffi) (default 1000)
  --rollback-window MS the pre-drain lasts at least this long after the new
                       worker is ready; a new worker that dies within it is
                       rolled back (default 100, at most --pre-drain)
  --ready-timeout MS   time a new worker has to report ready (default 30000)
  --stop-timeout MS    time a draining worker has to exit before SIGKILL (default 60000)
  --watch[=PATHS]      restart on changes under PATHS (comma-separated, default .)
  --no-steer           do not steer new connections away from a retiring worker
                       (steering needs --allow-ffi in the worker command)
signals: SIGHUP or SIGUSR2 restart; SIGINT or SIGTERM stop (twice: kill)`;

/**
 * Parses the CLI arguments; throws an Error with a one-line message.
 *
 * @example
 * ```ts
 * import { parseArgs } from "@graceful/http/restart";
 * import assert from "node:assert/strict";
 *
 * const options = parseArgs(["--workers", "2", "--", "deno", "run", "server.ts"]);
 * assert.equal(options.workers, 2);
 * assert.deepEqual(options.command, ["deno", "run", "server.ts"]);
 * assert.throws(() => parseArgs(["--workers", "0", "--", "deno"]), /--workers/);
 * ```
 */
export function parseArgs(args: string[]): SuperviseOptions {
  const split = args.indexOf("--");
  // `--watch` alone means `--watch=.` (node's parseArgs has no optional values).
  const own = (split < 0 ? args : args.slice(0, split)).map((arg) =>
    arg === "--watch" ? "--watch=." : arg
  );
  const command = split < 0 ? [] : args.slice(split + 1);
  let parsed;
  try {
    parsed = parseFlags(own, {
      workers: { type: "string" },
      "pre-drain": { type: "string" },
      "rollback-window": { type: "string" },
      "ready-timeout": { type: "string" },
      "stop-timeout": { type: "string" },
      watch: { type: "string" },
      "no-steer": { type: "boolean" },
      help: { type: "boolean" },
    });
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) throw new Error(USAGE);
  if (positionals.length > 0) {
    throw new Error(
      `unexpected argument ${
        JSON.stringify(positionals[0])
      }: put the command after --\n${USAGE}`,
    );
  }
  const options: SuperviseOptions = { command };
  const get = (flag: string) => values[flag] as string | undefined;
  const ms = (flag: string, min: number) =>
    wholeNumber(`--${flag}`, get(flag)!, min, MAX_TIMER_MS);
  if (get("workers") !== undefined) {
    options.workers = wholeNumber("--workers", get("workers")!, 1, MAX_WORKERS);
  }
  if (get("pre-drain") !== undefined) options.preDrain = ms("pre-drain", 0);
  if (get("rollback-window") !== undefined) {
    options.rollbackWindow = ms("rollback-window", 0);
    const most = options.preDrain ?? PRE_DRAIN_DEFAULT;
    if (options.rollbackWindow > most) {
      throw new Error(
        `--rollback-window: expected at most --pre-drain (${most} ms), got ${options.rollbackWindow}`,
      );
    }
  }
  if (get("ready-timeout") !== undefined) {
    options.readyTimeout = ms("ready-timeout", 1);
  }
  if (get("stop-timeout") !== undefined) {
    options.stopTimeout = ms("stop-timeout", 1);
  }
  if (values["no-steer"]) options.steer = false;
  if (get("watch") !== undefined) {
    options.watch = get("watch")!.split(",").filter(Boolean);
    if (options.watch.length === 0) options.watch = ["."];
  }
  if (command.length === 0) {
    throw new Error(`no command to run: put it after --\n${USAGE}`);
  }
  return options;
}

async function main(args: string[]): Promise<void> {
  let options: SuperviseOptions;
  try {
    options = parseArgs(args);
  } catch (error) {
    console.error(`restart.ts: ${(error as Error).message}`);
    Deno.exit(2);
  }
  const logger = stderrLoggerWith("supervisor");
  try {
    const { supervisor, stopped } = await supervise({ ...options, logger });
    await stopped;
    await exitFlushed(supervisor.exitCode);
  } catch (error) {
    logger.error(`supervisor: ${(error as Error).message}`);
    await exitFlushed(1);
  }
}

if (import.meta.main) main(Deno.args);
