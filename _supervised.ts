/**
 * The worker side of the restart supervisor (`restart.ts`): it finds the
 * supervisor through one environment variable, binds with `reusePort`,
 * reports "ready" over a private loopback channel once listening, and takes
 * `drain` / `stop` commands. If the channel closes (the supervisor died,
 * even by SIGKILL), the worker drains and exits: no orphan keeps the port.
 *
 * Protocol, one line each way: worker → `ready <token> <worker-id> <pid>`;
 * supervisor → `drain <pre-drain ms> [detach]` or `stop`.
 */
import type { Logger } from "./_log.ts";
import type { DrainContext } from "./shutdown.ts";

/** The environment variable that carries `host:port/token/worker-id`. */
export const SUPERVISOR_ENV = "GRACEFUL_SUPERVISOR";

/** Exit status when a supervised worker cannot use `reusePort`. */
const EXIT_NO_REUSEPORT = 78;

/** What the link drives: a lifecycle (or a lone server) that can drain. */
export interface DrainTarget {
  drain(context: DrainContext): Promise<unknown>;
}

interface Address {
  hostname: string;
  port: number;
  token: string;
  id: string;
}

function readAddress(): Address | undefined {
  let value: string | undefined;
  try {
    const state = Deno.permissions.querySync({
      name: "env",
      variable: SUPERVISOR_ENV,
    }).state;
    if (state !== "granted") return undefined;
    value = Deno.env.get(SUPERVISOR_ENV);
  } catch {
    return undefined;
  }
  if (!value) return undefined;
  const m = value.match(/^([^:/]+):(\d+)\/([A-Za-z0-9]+)\/([A-Za-z0-9-]+)$/);
  if (!m) {
    throw new TypeError(
      `${SUPERVISOR_ENV}: expected host:port/token/worker-id, got ${
        JSON.stringify(value)
      }`,
    );
  }
  return { hostname: m[1], port: Number(m[2]), token: m[3], id: m[4] };
}

/** True when the unstable net APIs (`reusePort`) are enabled. */
function hasReusePort(): boolean {
  return typeof (Deno as unknown as Record<string, unknown>).listenDatagram ===
    "function";
}

class Link {
  #address: Address;
  #targets = new Set<DrainTarget>();
  #conn: Promise<Deno.TcpConn> | undefined;
  #draining = false;
  #logger: Logger;

  constructor(address: Address, logger: Logger) {
    this.#address = address;
    this.#logger = logger;
  }

  /** Registers a target and, the first time, reports ready. */
  ready(target: DrainTarget): void {
    this.#targets.add(target);
    if (this.#conn) return;
    // Restarts are the supervisor's job: a SIGHUP sent to the whole process
    // group (a terminal hang-up, `timeout`, `kill -HUP -PGID`) must not kill
    // the workers. These listeners stay until the worker exits.
    if (Deno.build.os !== "windows") {
      for (const name of ["SIGHUP", "SIGUSR2"] as const) {
        Deno.addSignalListener(name, () => {});
      }
    }
    this.#conn = this.#connect();
  }

  async #connect(): Promise<Deno.TcpConn> {
    const { hostname, port, token, id } = this.#address;
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname, port });
    } catch (error) {
      this.#logger.error(
        `cannot reach the supervisor at ${hostname}:${port} (${error}); draining`,
      );
      this.#drainAll({ reason: "supervisor unreachable" });
      throw error;
    }
    await conn.write(
      new TextEncoder().encode(`ready ${token} ${id} ${Deno.pid}\n`),
    );
    this.#listen(conn);
    return conn;
  }

  async #listen(conn: Deno.TcpConn) {
    let buffered = "";
    const decoder = new TextDecoder();
    try {
      for await (const chunk of conn.readable) {
        buffered += decoder.decode(chunk, { stream: true });
        let at: number;
        while ((at = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, at).trim();
          buffered = buffered.slice(at + 1);
          const [command, delay, detach] = line.split(" ");
          if (command === "drain") {
            this.#drainAll({
              reason: "supervisor: restart",
              drainDelay: Number(delay) || 0,
              detachListener: detach === "detach",
            });
          } else if (command === "stop") {
            this.#drainAll({ reason: "supervisor: stop" });
          }
        }
      }
    } catch {
      // reset: same as the supervisor going away
    }
    if (!this.#draining) {
      this.#logger.warn("supervisor connection lost: draining");
      this.#drainAll({ reason: "supervisor gone" });
    }
  }

  #drainAll(context: DrainContext) {
    if (this.#draining) return;
    this.#draining = true;
    Promise.allSettled([...this.#targets].map((t) => t.drain(context))).finally(
      () => this.#conn?.then((c) => c.close()).catch(() => {}),
    );
  }
}

let link: Link | null | undefined;

/**
 * The process's link to a supervisor, or `undefined` when not supervised
 * (no variable, or no permission to read it). Checks `reusePort` support:
 * a supervised worker without `--unstable-net` exits with one clear line
 * (binding would kill the process with status 70, uncatchably).
 */
export function supervisor(logger: Logger): Link | undefined {
  if (link === undefined) {
    const address = readAddress();
    link = address ? new Link(address, logger) : null;
    if (link && Deno.build.os === "linux" && !hasReusePort()) {
      logger.error(
        "this worker runs under the restart supervisor but reusePort is off: add --unstable-net to its deno command",
      );
      Deno.exit(EXIT_NO_REUSEPORT);
    }
  }
  return link ?? undefined;
}
