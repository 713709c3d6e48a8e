/**
 * Zero-downtime restarts: a supervisor that runs your server as workers on
 * one port (`SO_REUSEPORT`) and replaces them on SIGHUP without losing a
 * request. The new generation must report ready before the old one drains;
 * the old one first answers with `Connection: close` for `preDrain` ms, then
 * drains. A new generation that fails is rolled back.
 *
 * ```sh
 * deno run --allow-run --allow-net=127.0.0.1 --allow-read --allow-env restart.ts \
 *   -- deno run --allow-net --allow-env --unstable-net server.ts --port 8080
 * kill -HUP <supervisor pid>   # restart, zero downtime
 * ```
 *
 * Workers must call `serve()` from this module (or run under the `./auto`
 * preload): it finds the supervisor through the `GRACEFUL_SUPERVISOR`
 * variable (so workers need `--allow-env`), binds with `reusePort` (so they
 * need `--unstable-net`), and reports ready over a private loopback channel.
 *
 * It does not: restart without downtime outside Linux (elsewhere a restart
 * stops the old workers, then starts new ones, and says so); pass sockets
 * between processes; or make a client that reuses a connection the server
 * is closing retry its request.
 *
 * @module
 */
import { type Logger, resolveLogger, stderrLoggerWith } from "./_log.ts";
import {
  NotReadyError,
  Supervisor,
  type SupervisorOptions,
} from "./_supervisor.ts";
import { SAME_SIGNAL_MS, signalExitCode, signalKind } from "./_signals.ts";

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
  const kind = signalKind();
  if (options.signals !== false) {
    for (const name of STOP_SIGNALS) {
      on(name, () => {
        const what = kind();
        if (what === "first") {
          supervisor.stop(`${name} received`);
          return;
        }
        if (what === "echo") {
          logger.info(
            `${name} again within ${SAME_SIGNAL_MS} ms: taken as the same one`,
          );
          return;
        }
        const code = signalExitCode(name);
        logger.error(
          `second ${name}: killing the workers, exiting with ${code}`,
        );
        supervisor.kill();
        Deno.exit(code);
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
  --workers N          workers sharing the port (default 1)
  --pre-drain MS       Connection: close window before an old worker drains (default 1000)
  --ready-timeout MS   time a new worker has to report ready (default 30000)
  --stop-timeout MS    time a draining worker has to exit before SIGKILL (default 60000)
  --watch[=PATHS]      restart on changes under PATHS (comma-separated, default .)
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
  const own = split < 0 ? args : args.slice(0, split);
  const command = split < 0 ? [] : args.slice(split + 1);
  const options: SuperviseOptions = { command };
  const number = (flag: string, value: string | undefined, min: number) => {
    const n = Number(value);
    if (
      value === undefined || value.trim() === "" || !Number.isInteger(n) ||
      n < min
    ) {
      throw new Error(
        `${flag}: expected a whole number ≥ ${min}, got ${
          JSON.stringify(value ?? "")
        }`,
      );
    }
    return n;
  };
  for (let i = 0; i < own.length; i++) {
    const [flag, inline] = own[i].split(/=(.*)/s, 2);
    const value = () => inline ?? own[++i];
    switch (flag) {
      case "--workers":
        options.workers = number(flag, value(), 1);
        break;
      case "--pre-drain":
        options.preDrain = number(flag, value(), 0);
        break;
      case "--ready-timeout":
        options.readyTimeout = number(flag, value(), 1);
        break;
      case "--stop-timeout":
        options.stopTimeout = number(flag, value(), 1);
        break;
      case "--watch":
        options.watch = (inline ?? ".").split(",").filter(Boolean);
        break;
      case "--help":
      case "-h":
        throw new Error(USAGE);
      default:
        throw new Error(`unknown option ${JSON.stringify(own[i])}\n${USAGE}`);
    }
  }
  if (command.length === 0) {
    throw new Error(`no command to run: put it after --\n${USAGE}`);
  }
  return options;
}

async function main(args: string[]): Promise<never> {
  let options: SuperviseOptions;
  try {
    options = parseArgs(args);
  } catch (error) {
    console.error(`restart.ts: ${(error as Error).message}`);
    Deno.exit(2);
  }
  const logger = stderrLoggerWith("supervisor");
  try {
    const { stopped } = await supervise({ ...options, logger });
    await stopped;
    Deno.exit(0);
  } catch (error) {
    logger.error(`supervisor: ${(error as Error).message}`);
    Deno.exit(1);
  }
}

if (import.meta.main) main(Deno.args);
