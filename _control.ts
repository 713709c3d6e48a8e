/**
 * The supervisor's end of the private channel: a loopback TCP listener that
 * only workers holding the random token can talk to. Each worker connects
 * once it listens, says `ready <token> <id> <pid>`, and keeps the connection
 * open; commands go back on the same connection.
 */
import { SUPERVISOR_ENV } from "./_supervised.ts";

/** One connected worker. */
export interface ControlLink {
  /** The pid the worker reported (the real server, even behind a wrapper). */
  pid: number;
  /** Sends one command line; ignores a worker that has gone. */
  send(line: string): void;
  /** Closes the connection. */
  close(): void;
}

/** Accepts workers' ready reports and routes them by worker id. */
export class ControlServer implements Disposable {
  #listener: Deno.TcpListener;
  #token = crypto.randomUUID().replaceAll("-", "");
  #waiting = new Map<string, (link: ControlLink) => void>();

  constructor() {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accept();
  }

  /** The environment a worker with this id needs to find the supervisor. */
  envFor(id: string): Record<string, string> {
    const { hostname, port } = this.#listener.addr;
    return { [SUPERVISOR_ENV]: `${hostname}:${port}/${this.#token}/${id}` };
  }

  /** Resolves when the worker with this id reports ready. */
  waitReady(id: string): Promise<ControlLink> {
    return new Promise((resolve) => this.#waiting.set(id, resolve));
  }

  /** Stops waiting for this worker. */
  forget(id: string): void {
    this.#waiting.delete(id);
  }

  async #accept() {
    try {
      for await (const conn of this.#listener) this.#greet(conn);
    } catch {
      // listener closed
    }
  }

  async #greet(conn: Deno.TcpConn) {
    const reader = conn.readable.getReader();
    let line = "";
    const decoder = new TextDecoder();
    try {
      while (!line.includes("\n") && line.length < 512) {
        const { value, done } = await reader.read();
        if (done) break;
        line += decoder.decode(value, { stream: true });
      }
    } catch {
      // fall through: rejected below
    }
    const [word, token, id, pid] = line.trim().split(" ");
    const resolve = this.#waiting.get(id);
    if (word !== "ready" || token !== this.#token || !resolve) {
      conn.close();
      return;
    }
    this.#waiting.delete(id);
    const encoder = new TextEncoder();
    let open = true;
    // Keep reading so that a closed worker is noticed; the data is unused.
    (async () => {
      try {
        while (!(await reader.read()).done);
      } catch {
        // reset
      }
      open = false;
    })();
    resolve({
      pid: Number(pid),
      send(text: string) {
        if (open) conn.write(encoder.encode(text + "\n")).catch(() => {});
      },
      close() {
        open = false;
        try {
          conn.close();
        } catch {
          // closed already
        }
      },
    });
  }

  [Symbol.dispose](): void {
    this.#listener.close();
  }
}
