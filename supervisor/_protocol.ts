/**
 * The restart supervisor's protocol with its workers, in one place.
 *
 * The channel is the worker's own standard streams, as tableflip uses an
 * inherited pipe: nothing outside the worker's process tree can write to
 * them, there is no port for a stranger to find, and the end of stdin tells
 * a worker that its supervisor is gone.
 *
 * - The supervisor starts the worker with `GRACEFUL_SUPERVISOR=stdio-1` and a
 *   pipe on its stdin, and writes `hello <nonce>` first: a secret of 128 bits
 *   per worker that only the worker's process tree can read.
 * - Once listening, the worker writes `graceful: ready <nonce> <pid>` on
 *   stderr. The supervisor takes that line out of the forwarded output and
 *   believes the pid only if it is the child's or a descendant's.
 * - Then, one line each on stdin: `drain <ms> [detach]` (pre-drain for that
 *   long, then drain: a restart), `resume` (leave the pre-drain and keep
 *   serving: a rollback), `stop` (drain now), `steer <exclude> <count>`
 *   (send the port's new connections to every member of its reuseport
 *   group but the `exclude`-th of `count`: see `_steer.ts`), `unsteer`
 *   (spread them by the kernel's hash again), `commit` (end the pre-drain
 *   now and drain: the supervisor's answer to a quiet report). EOF: drain
 *   now.
 * - During a pre-drain, a worker that can see its own connections (Linux,
 *   `--allow-ffi`) writes `graceful: quiet <nonce>` on stderr once none is
 *   left that could still send a request unannounced (see `_census.ts`):
 *   the supervisor may then commit the restart before the pre-drain's time.
 */

/** The variable that tells a process it runs under the supervisor. */
export const SUPERVISOR_ENV = "GRACEFUL_SUPERVISOR";

/**
 * The flags of a supervised worker's `deno run`: the one source for the
 * README, the docs, `restart.ts`'s doc and `deno task start:supervised`
 * (`tests/docs_test.ts` checks them all).
 */
export const WORKER_FLAGS =
  "--allow-net --allow-env --allow-ffi --unstable-net";

/** Its value: the protocol version. */
export const PROTOCOL = "stdio-1";

/** Longest line either side accepts; longer ones are ignored. */
export const MAX_LINE = 256;

/** Largest reuseport group a `steer` command may name. */
export const MAX_GROUP = 256;

/** A command from the supervisor to a worker. */
export type Command =
  | { kind: "hello"; nonce: string }
  | { kind: "drain"; delay: number; detach: boolean }
  | { kind: "resume" }
  | { kind: "stop" }
  | { kind: "commit" }
  | { kind: "steer"; exclude: number; count: number }
  | { kind: "unsteer" }
  | { kind: "ping" };

const NONCE = /^[0-9a-f]{32}$/;

/** A fresh secret for one worker. */
export function nonce(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** The line that carries `command` (with its newline). */
export function commandLine(command: Command): string {
  switch (command.kind) {
    case "hello":
      return `hello ${command.nonce}\n`;
    case "drain":
      return `drain ${command.delay}${command.detach ? " detach" : ""}\n`;
    case "steer":
      return `steer ${command.exclude} ${command.count}\n`;
    default:
      return `${command.kind}\n`;
  }
}

/** Parses one line from the supervisor; `undefined` if it is not a command. */
export function parseCommand(line: string): Command | undefined {
  const [word, arg, extra, ...rest] = line.trim().split(" ");
  if (rest.length > 0) return undefined;
  if (word === "hello" && NONCE.test(arg ?? "") && extra === undefined) {
    return { kind: "hello", nonce: arg };
  }
  if (word === "drain" && /^\d{1,10}$/.test(arg ?? "")) {
    const delay = Number(arg);
    if (delay > 2 ** 31 - 1) return undefined;
    if (extra === undefined || extra === "detach") {
      return { kind: "drain", delay, detach: extra === "detach" };
    }
    return undefined;
  }
  if (
    word === "steer" && /^\d{1,3}$/.test(arg ?? "") &&
    /^\d{1,3}$/.test(extra ?? "")
  ) {
    const exclude = Number(arg);
    const count = Number(extra);
    return count >= 2 && count <= MAX_GROUP && exclude < count
      ? { kind: "steer", exclude, count }
      : undefined;
  }
  if (
    (word === "resume" || word === "stop" || word === "unsteer" ||
      word === "commit" || word === "ping") &&
    arg === undefined
  ) {
    return { kind: word };
  }
  return undefined;
}

/** What a worker reports on stderr: ready (with its pid), quiet, alive. */
export type ReportKind = "ready" | "quiet" | "alive";

/** A report's line, with its newline; a `ready` report carries the pid. */
export function reportLine(
  kind: ReportKind,
  secret: string,
  pid?: number,
): string {
  return `graceful: ${kind} ${secret}${pid === undefined ? "" : ` ${pid}`}\n`;
}

/** A line of a worker's stderr that has a report's shape. */
export interface Report {
  kind: ReportKind;
  /**
   * True when it carries this worker's secret and, for `ready`, a plausible
   * pid (a whole number ≥ 2: never 0, 1 or a negative pid, which `kill`
   * would take as a process group or all processes). Whether the pid
   * belongs to the worker is checked elsewhere.
   */
  ours: boolean;
  /** The pid a `ready` report names. */
  pid?: number;
}

const REPORT = /^graceful: (ready|quiet|alive) /;

/**
 * Reads a line of a worker's stderr: `undefined` if it does not have a
 * report's shape (it is the app's, and forwarded); otherwise the report,
 * which is never forwarded, whoever wrote it.
 */
export function parseReport(line: string, secret: string): Report | undefined {
  const shape = line.match(REPORT);
  if (!shape) return undefined;
  const kind = shape[1] as ReportKind;
  const [nonce, pid, ...rest] = line.slice(shape[0].length).split(" ");
  if (kind !== "ready") {
    return { kind, ours: nonce === secret && pid === undefined };
  }
  const n = /^\d{1,10}$/.test(pid ?? "") ? Number(pid) : NaN;
  const ours = nonce === secret && rest.length === 0 && n >= 2 &&
    n <= 2 ** 31 - 1;
  return ours ? { kind, ours, pid: n } : { kind, ours };
}

/**
 * Where a report starts in a line of the worker's stderr, or -1. Not always
 * at 0: the app may have left a line unterminated (`loading... `), or a
 * large write of its own may be split around the report, which is written
 * in one piece (at most `PIPE_BUF`) and ends its line.
 */
export function reportAt(line: string): number {
  return line.search(/graceful: (ready|quiet|alive) /);
}

/** `line` with anything shaped like a secret taken out, for messages. */
export function redact(line: string): string {
  return line.replace(/[0-9a-f]{32}/g, "<secret>");
}
