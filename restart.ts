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
 *   -- deno run --allow-net --allow-env --allow-ffi --unstable-net server.ts --port 8080
 * kill -HUP <supervisor pid>   # restart, zero downtime
 * ```
 *
 * Workers must call `serve()` from this module (or run under the `./auto`
 * preload): it knows it is supervised from the `GRACEFUL_SUPERVISOR`
 * variable (so workers need `--allow-env`), binds with `reusePort` (so they
 * need `--unstable-net`), reports ready on its stderr and takes commands on
 * its stdin: a channel no other process can reach. With `--allow-ffi` they
 * also steer new connections away and end the pre-drain once quiet (without
 * it a restart still works, with a fixed pre-drain and more resets for
 * clients that open a connection per request). The supervisor needs no
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
import { Supervisor } from "./supervisor/_supervisor.ts";
import { NotReadyError } from "./supervisor/_reports.ts";
import type { SupervisorOptions } from "./supervisor/_supervisor_options.ts";
import { parseArgs, USAGE } from "./supervisor/_args.ts";
import { signalExitCode } from "./lifecycle/_signals.ts";
import { SAME_SIGNAL_MS, StopMachine } from "./lifecycle/_stop_machine.ts";
import { exitFlushed, FORCED_FLUSH_MS } from "./lifecycle/_stderr.ts";
import { sayLauncher } from "./lifecycle/_launcher.ts";
import { Notifier } from "./lifecycle/_notify.ts";

export { NotReadyError, Supervisor };
export type { Logger, SupervisorOptions };

/** Options for {@linkcode supervise}. */
export interface SuperviseOptions extends SupervisorOptions {
  /**
   * Install the signal listeners: SIGHUP and SIGUSR2 restart; SIGINT and
   * SIGTERM stop gracefully, a second one kills the workers and exits.
   * Default `true`.
   * @default true
   */
  signals?: boolean;
  /**
   * Restart when files under these paths change (development).
   * @default undefined
   */
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
    // With steering (the default) nothing is queued on a closing worker's
    // listener; a worker that cannot steer says so itself.
    const migrate = supervisor.tcpMigrateReq;
    if (migrate !== "1" && options.steer === false) {
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
  // systemd's notify protocol, where the unit gives NOTIFY_SOCKET.
  const notifier = Notifier.fromEnv(logger);
  /** STOPPING=1 sent (or given up on: each message is bounded). */
  let told: Promise<void> | undefined;
  const serving = () =>
    notifier?.ready(
      `serving generation ${supervisor.generation} (pids ${
        supervisor.pids.join(", ")
      })`,
    );
  const restart = (reason: string) => {
    notifier?.reloading();
    return supervisor.restart(reason).finally(serving);
  };
  if (options.signals !== false) {
    for (const name of STOP_SIGNALS) {
      on(name, () => {
        const at = performance.now();
        // A stop begun from code (`supervisor.stop()`) is the stop this
        // signal asks for.
        if (supervisor.stopping) stops.next({ kind: "begin", at });
        const action = stops.next({ kind: "signal", at });
        if (action === "start") {
          told ??= notifier?.stopping();
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
        on(name, () => restart(`${name} received`));
      }
    }
  }
  try {
    await supervisor.start();
  } catch (error) {
    uninstall();
    throw error;
  }
  serving();
  const watcher = options.watch?.length
    ? watch(options.watch, restart, logger)
    : undefined;
  // Stopped once systemd has heard STOPPING=1 too (a stop from code tells
  // it here): a supervisor whose workers stop in ms exited before.
  const stopped = supervisor.stopped.then(async () => {
    watcher?.close();
    uninstall();
    await (told ??= notifier?.stopping());
  });
  return { supervisor, stopped };
}

/** Restarts on file changes under `paths`, debounced. */
function watch(
  paths: string[],
  restart: (reason: string) => Promise<boolean>,
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
        () => restart(`changed: ${changed[0]}`),
        200,
      );
    }
  })().catch((error) => logger.error(`watch stopped: ${error}`));
  logger.info(`watching ${paths.join(", ")} for changes`);
  return watcher;
}

async function main(args: string[]): Promise<void> {
  let options: SuperviseOptions | "help";
  try {
    options = parseArgs(args);
  } catch (error) {
    console.error(`restart.ts: ${(error as Error).message}`);
    Deno.exit(2);
  }
  if (options === "help") {
    console.log(USAGE);
    Deno.exit(0);
  }
  const logger = stderrLoggerWith("supervisor");
  // Once stopped, supervise() removes its listeners; until the exit, a stop
  // signal still on its way (a group's copy) must find one, not the default
  // action that would end the supervisor with it instead of its code.
  for (const name of STOP_SIGNALS) Deno.addSignalListener(name, () => {});
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
