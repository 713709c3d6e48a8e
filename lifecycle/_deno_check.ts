/**
 * What is said at start about the running Deno: one line each for a release
 * outside the supported range (with what the suite found wrong on it), an
 * internal of `_deno.ts` that is missing (with what degrades), and a
 * launcher that keeps signals from reaching Deno. Said once per process, at
 * the first `serve()`. It does not refuse to serve: what degrades is said,
 * the rest works.
 */
import type { Logger } from "./_log.ts";
import {
  compareVersions,
  minorOf,
  missingReliances,
  type Reliance,
} from "./_deno.ts";

/** The releases the whole suite passes on, oldest and newest. */
export const SUPPORTED = { oldest: "2.9.6", newest: "2.9.6" } as const;

/** The range as the start-up lines and the README say it. */
export function rangeText(): string {
  return SUPPORTED.oldest === SUPPORTED.newest
    ? SUPPORTED.newest
    : `${SUPPORTED.oldest} to ${SUPPORTED.newest}`;
}

/** Lines that say what degrades on `version` with what is `missing`. */
export function runtimeWarnings(
  version: string,
  missing: readonly Reliance[],
): string[] {
  const lines: string[] = [];
  const range = rangeText();
  if (compareVersions(version, SUPPORTED.oldest) < 0) {
    lines.push(
      `Deno ${version} is older than the supported range (${range}): ${
        olderThanSupported(version)
      }; upgrade Deno`,
    );
  }
  const [major, minor] = minorOf(version);
  const [topMajor, topMinor] = minorOf(SUPPORTED.newest);
  if (major > topMajor || (major === topMajor && minor > topMinor)) {
    lines.push(
      `Deno ${version} is newer than the supported range (${range}): untested; request bodies are still held as on ${topMajor}.${topMinor}, and the canaries (deno task test) tell what changed`,
    );
  }
  return [...lines, ...lacking(version, missing)];
}

function lacking(version: string, missing: readonly Reliance[]): string[] {
  return missing.map((r) => `Deno ${version} lacks ${r.name}: ${r.without}`);
}

/**
 * What the suite found wrong on releases older than the range (run on the
 * latest patch of every 2.x minor and on 2.9.0; the probes in CHANGELOG.md
 * place the bounds to the patch). Everything else held there: in-flight
 * requests finish, bodies arrive whole, the deadline, hooks, exit codes.
 */
const OLDER: readonly { from: string; to: string; problem: string }[] = [
  {
    from: "2.8.3",
    to: "2.9.5",
    problem:
      "keep-alive POST clients lose a few requests per supervisor restart (19 in 5 restarts at 1000 POST/s), as Deno closes keep-alive connections after POSTs by itself",
  },
  {
    from: "2.0.0",
    to: "2.8.2",
    problem:
      "a supervised worker with shutdown: false stays until --stop-timeout after its drain (a stdin read cannot be cancelled)",
  },
  {
    from: "2.0.0",
    to: "2.7.99",
    problem:
      "1 request in about 3000 timed out in the nginx rolling-restart test",
  },
  {
    from: "2.0.0",
    to: "2.0.99",
    problem:
      "Connection: close on the drain delay's responses is dropped, and a body not arrived by the deadline is not cut",
  },
  {
    from: "2.0.0",
    to: "2.3.99",
    problem: "the auto preload needs deno run --preload (2.4 and later)",
  },
];

/** What is known to go wrong on releases older than the range. */
function olderThanSupported(version: string): string {
  const known = OLDER.filter((p) =>
    compareVersions(version, p.from) >= 0 &&
    compareVersions(version, p.to) <= 0
  );
  return known.length > 0
    ? known.map((p) => p.problem).join("; ")
    : "not tested";
}

const checked = { release: false, reliances: false };

/**
 * Says once per process, one line each, what degrades on the running Deno
 * (see the module doc). Returns the lines (empty where nothing does).
 * It does not refuse to serve: what degrades is said, the rest works.
 * `reliances: false` leaves out the look at Deno's internals (~10 ms, at
 * its first call), for a later call to say.
 */
export function checkRuntime(
  logger: Logger,
  { reliances = true }: { reliances?: boolean } = {},
): string[] {
  const lines: string[] = [];
  if (!checked.release) {
    checked.release = true;
    lines.push(...runtimeWarnings(Deno.version.deno, []));
    const wrapper = npmWrapper();
    if (wrapper) lines.push(wrapper);
  }
  if (reliances && !checked.reliances) {
    checked.reliances = true;
    lines.push(...lacking(Deno.version.deno, missingReliances()));
  }
  for (const line of lines) logger.warn(line);
  return lines;
}

// --- How Deno was started -------------------------------------------------

/** How many ancestors to look at (the task runner and a shell between). */
const ANCESTORS = 4;

/**
 * A line if an ancestor of this process is npm's Node wrapper of Deno
 * (`node …/deno/bin.cjs`: what `node_modules/.bin/deno` is in the `deno`
 * npm package up to 2.6): a signal sent to the wrapper's pid (by `kill`,
 * systemd, a container runtime) ends the wrapper and never reaches Deno.
 * Looked for only where `/proc` may be read: Deno 2 asks `--allow-all`
 * (`-A`) for it, whatever `--allow-read` says. Says nothing otherwise.
 */
export function npmWrapper(): string | undefined {
  if (Deno.build.os !== "linux") return undefined;
  let pid = Deno.ppid;
  for (let i = 0; i < ANCESTORS && pid > 1; i++) {
    const dir = `/proc/${pid}`;
    try {
      const allowed = Deno.permissions.querySync({ name: "read", path: dir });
      if (allowed.state !== "granted") return undefined;
      const argv = Deno.readTextFileSync(`${dir}/cmdline`).split("\0");
      const script = argv.find((arg) => /deno[\\/]bin\.cjs$/.test(arg));
      if (script) {
        return `this Deno was started by npm's Node wrapper (pid ${pid}: node ${script}): a signal sent to that pid (kill, systemd, docker stop) ends the wrapper and never reaches this process; start the deno binary itself (${
          script.replace(/bin\.cjs$/, "deno")
        })`;
      }
      const stat = Deno.readTextFileSync(`${dir}/stat`);
      // Field 4, after the command in parentheses (which may hold spaces).
      pid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
      return undefined;
    }
  }
  return undefined;
}
