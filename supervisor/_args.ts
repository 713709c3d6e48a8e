/**
 * The command line of `restart.ts`: its options, then the worker command
 * after `--`.
 */
import type { SuperviseOptions } from "../restart.ts";
import { MAX_WORKERS, PRE_DRAIN_DEFAULT } from "./_supervisor_options.ts";
import { MAX_TIMER_MS, parseFlags, wholeNumber } from "../lifecycle/_cli.ts";

/** The supervisor's usage text (`--help`). */
export const USAGE = `usage: restart.ts [options] -- <command...>
options:
  --workers N          workers sharing the port (default 1, at most 64)
  --pre-drain MS       longest Connection: close window before an old worker
                       drains; it ends once the old worker is quiet (Linux,
                       workers with --allow-ffi) (default 1000)
  --rollback-window MS the pre-drain lasts at least this long after the new
                       worker is ready; a new worker that dies within it is
                       rolled back (default 50, at most --pre-drain)
  --ready-timeout MS   time a new worker has to report ready (default 30000)
  --stop-timeout MS    time a draining worker has to exit before SIGKILL (default 60000)
  --heartbeat MS       replace a worker that has not answered a ping for MS
                       (a blocked event loop, SIGSTOP) (default 0: off)
  --env-file PATH      read PATH once per generation: each restart's workers
                       get its variables (a bad file rolls the restart back)
  --watch[=PATHS]      restart on changes under PATHS (comma-separated, default .)
  --no-steer           do not steer new connections away from a retiring worker
                       (steering needs --allow-ffi in the worker command)
signals: SIGHUP or SIGUSR2 restart; SIGINT or SIGTERM stop (twice: kill)`;

/**
 * Parses `restart.ts`'s arguments: its options, then the worker command
 * after `--`. `"help"` for `--help`; throws an Error with a one-line
 * message (and the usage) on anything else wrong.
 */
export function parseArgs(args: string[]): SuperviseOptions | "help" {
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
      heartbeat: { type: "string" },
      "env-file": { type: "string" },
      watch: { type: "string" },
      "no-steer": { type: "boolean" },
      help: { type: "boolean" },
    });
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) return "help";
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
  if (get("heartbeat") !== undefined) {
    options.heartbeat = ms("heartbeat", 0);
  }
  if (get("env-file") !== undefined) options.envFile = get("env-file");
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
