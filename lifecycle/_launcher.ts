/**
 * What the process's launcher will do to a drain, said in one line at start:
 * PM2 (SIGINT, then SIGKILL after `kill_timeout`), npm's exec (`npx`: a
 * signal to npm's pid never reaches Deno) and `deno run --watch` (a
 * synthetic SIGTERM on a file change, the program cancelled 500 ms later).
 *
 * `launcherLine()` is pure (unit-tested); `seeLauncher()` reads what it may
 * without prompting: the environment variables below where `--allow-env`
 * grants them, and `/proc/self/cmdline` where it may be read (Deno 2 asks
 * `--allow-all` for `/proc`). Where nothing may be read, nothing is said.
 * It changes nothing: the drain runs as it would.
 */
import { grantedEnv } from "./_env_var.ts";

/** What a launcher leaves behind where the process can see it. */
export interface Seen {
  /** The variables of `LAUNCHER_VARIABLES` that could be read. */
  env: Readonly<Record<string, string | undefined>>;
  /** This process's command line, when `/proc/self/cmdline` may be read. */
  argv?: readonly string[];
}

/** The variables read to see the launcher (each asked for on its own). */
export const LAUNCHER_VARIABLES = [
  "pm_id",
  "kill_timeout",
  "kill_signal",
  "npm_command",
  "npm_lifecycle_event",
] as const;

/** PM2's `kill_timeout` when the app's configuration sets none (ms). */
export const PM2_KILL_TIMEOUT_DEFAULT = 1600;
/** How long `deno run --watch` waits after its synthetic SIGTERM (ms; Deno ≥ 2.7.7). */
export const WATCH_WAIT_MS = 500;

/**
 * The one line to say about the launcher, for a process whose drain may
 * take `budget` ms (drain delay + drain timeout + hooks), or `undefined`
 * when no known launcher is seen. `warn` is true when the launcher will cut
 * the drain.
 */
export function launcherLine(
  seen: Seen,
  budget: number,
): { warn: boolean; line: string } | undefined {
  const { env, argv } = seen;
  if (argv && watching(argv)) {
    return {
      warn: budget > WATCH_WAIT_MS,
      line:
        `started by deno run --watch: on a file change Deno sends this process a SIGTERM and cancels it ${WATCH_WAIT_MS} ms later, whatever the drain budget (${budget} ms): requests still in flight then are cut, with no end line; restart.ts --watch reloads gracefully (docs/launchers.md)`,
    };
  }
  if (env.pm_id !== undefined) {
    const given = Number(env.kill_timeout);
    const kill = env.kill_timeout !== undefined && Number.isFinite(given)
      ? given
      : PM2_KILL_TIMEOUT_DEFAULT;
    const whose = env.kill_timeout === undefined
      ? "PM2's default"
      : "the app's kill_timeout";
    const signal = env.kill_signal ?? "SIGINT";
    const how =
      `pm2 stop, restart and reload send ${signal}, then SIGKILL after ${kill} ms (${whose})`;
    return kill > budget
      ? {
        warn: false,
        line:
          `started by PM2 (pm_id ${env.pm_id}): ${how}, which covers this process's drain budget of ${budget} ms`,
      }
      : {
        warn: true,
        line:
          `started by PM2 (pm_id ${env.pm_id}): ${how}, before this process's drain budget of ${budget} ms ends: requests still in flight then are cut; set kill_timeout above ${budget} (docs/launchers.md)`,
      };
  }
  if (env.npm_command === "exec" || env.npm_lifecycle_event === "npx") {
    return {
      warn: true,
      line:
        "started by npm exec (npx): fine for trying it, not for production: a signal sent to npm's pid (docker stop, systemd, kill) does not reach this process (npm's shell dies, npm exits 1, this server is orphaned or killed with its namespace, requests cut); start the deno binary itself (docs/launchers.md)",
    };
  }
  return undefined;
}

/**
 * True when `argv` is Deno's own command line with `--watch` (or
 * `--watch=…`, `--watch-hmr`) among Deno's flags: those before the script.
 */
export function watching(argv: readonly string[]): boolean {
  for (const arg of argv.slice(1)) {
    if (/^--watch(-hmr)?(=|$)/.test(arg)) return true;
    if (/\.(m?[jt]sx?|c[jt]s)$/.test(arg) || arg.includes("://")) return false;
  }
  return false;
}

/** Reads what may be read without a prompt (see the module doc). */
export function seeLauncher(): Seen {
  const env: Record<string, string | undefined> = {};
  for (const variable of LAUNCHER_VARIABLES) {
    env[variable] = grantedEnv(variable);
  }
  let argv: string[] | undefined;
  if (Deno.build.os === "linux") {
    try {
      const path = "/proc/self/cmdline";
      const allowed = Deno.permissions.querySync({ name: "read", path });
      if (allowed.state === "granted") {
        argv = Deno.readTextFileSync(path).split("\0");
      }
    } catch {
      argv = undefined;
    }
  }
  return { env, argv };
}

let said = false;

/**
 * Says the launcher's line once per process (a warning when the launcher
 * will cut a drain of `budget` ms), through `logger`. Returns the line.
 */
export function sayLauncher(
  logger: { info(line: string): void; warn(line: string): void },
  budget: number,
): string | undefined {
  if (said) return undefined;
  said = true;
  const found = launcherLine(seeLauncher(), budget);
  if (found) (found.warn ? logger.warn : logger.info)(found.line);
  return found?.line;
}
