/**
 * Memory at the drain: peak RSS and drain time of a server drained with N
 * requests in flight (each handler waits 3 s, then reads its body), for
 * GETs and POSTs of 4 KiB and 64 KiB, three servers side by side:
 *   serve()         this module
 *   raw, by hand    Deno.serve + addSignalListener + shutdown() (Deno 2.9.6
 *                   takes unread bodies away there: none answered whole)
 *   raw, read early Deno.serve whose handlers read the body as soon as they
 *                   start, then wait: what Deno itself costs to keep N read
 *                   bodies, the floor for any server that keeps them
 * `deno task bench --only=drain-memory` (Linux only: reads /proc).
 */
import { median } from "./_run.ts";

const SERVER = new URL("./fixtures/drain_memory_server.ts", import.meta.url)
  .pathname;

/** The three servers compared. */
export type MemoryServer = "serve()" | "raw, by hand" | "raw, read early";

/** One case's outcome. */
export interface DrainMemoryRow {
  n: number;
  /** Body bytes per request (0: GET). */
  size: number;
  server: MemoryServer;
  /** Peak RSS of the server process (VmHWM), MiB: the median of the rounds. */
  peakMiB: number;
  /** Every round's peak RSS, MiB, in order. */
  rounds: number[];
  /**
   * Every round's RSS once all N handlers were running, before the signal
   * (MiB, in order; absent in older results). Deno 2.9.6 sometimes reads
   * whole bodies as they arrive, before any handler asks: such a round
   * starts its drain hundreds of MiB higher, for every server alike.
   */
  before?: number[];
  /** Requests answered 200 with their whole body counted. */
  whole: number;
  /** SIGTERM → every answer in, ms. */
  drainMs: number;
}

const MODE: Record<MemoryServer, string[]> = {
  "serve()": ["serve"],
  "raw, by hand": ["raw"],
  "raw, read early": ["early"],
};

async function once(
  n: number,
  size: number,
  server: MemoryServer,
  waitMs: number,
) {
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = free.addr.port;
  free.close();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      SERVER,
      String(port),
      String(n),
      ...MODE[server],
      String(waitMs),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const until = async (text: string) => {
    while (!out.includes(text)) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`server ended before "${text}": ${out}`);
      out += value;
    }
  };
  const conns: Deno.TcpConn[] = [];
  try {
    await until("listening");
    const head = size > 0
      ? `POST / HTTP/1.1\r\nhost: x\r\ncontent-length: ${size}\r\n\r\n`
      : "GET / HTTP/1.1\r\nhost: x\r\n\r\n";
    const request = new Uint8Array([
      ...new TextEncoder().encode(head),
      ...new Uint8Array(size).fill(97),
    ]);
    for (let i = 0; i < n; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn);
      // write() may take part of it: the rest would never arrive.
      for (let at = 0; at < request.length;) {
        at += await conn.write(request.subarray(at));
      }
    }
    // Every handler running (a request not yet parsed would be an idle
    // connection to shutdown(), closed unanswered).
    await until(" kB\n");
    const beforeKb = Number(out.match(/all in (\d+) kB/)?.[1]);
    const start = performance.now();
    child.kill("SIGTERM");
    let whole = 0;
    await Promise.all(conns.map(async (conn) => {
      // The whole answer: the server closes the connection after it.
      let text = "";
      const buf = new Uint8Array(4096);
      while (text.length < 4096) {
        const got = await conn.read(buf).catch(() => null);
        if (!got) break;
        text += new TextDecoder().decode(buf.subarray(0, got));
      }
      if (
        text.startsWith("HTTP/1.1 200") && text.endsWith(`\r\n\r\n${size}`)
      ) whole++;
    }));
    const drainMs = Math.round(performance.now() - start);
    await until("peak");
    const kb = Number(out.match(/peak (\d+) kB/)?.[1]);
    const mib = (kb: number) => Math.round(kb / 102.4) / 10;
    return { peakMiB: mib(kb), beforeMiB: mib(beforeKb), whole, drainMs };
  } finally {
    for (const conn of conns) conn.close();
    try {
      child.kill("SIGKILL");
    } catch {
      // exited
    }
    await child.status;
  }
}

/**
 * Runs every case `rounds` times, round by round (each round goes over every
 * case, the three servers side by side); a row keeps the median peak, the
 * fewest answered whole and the median drain time.
 */
export async function drainMemory(
  counts: number[],
  log: (line: string) => void,
  { waitMs = 3000, rounds = 3 }: { waitMs?: number; rounds?: number } = {},
): Promise<DrainMemoryRow[]> {
  if (Deno.build.os !== "linux") {
    log("drain-memory: skipped (reads /proc, Linux only)");
    return [];
  }
  const seen = new Map<string, Awaited<ReturnType<typeof once>>[]>();
  for (let round = 1; round <= rounds; round++) {
    for (const n of counts) {
      for (const size of [0, 4096, 65536]) {
        for (const server of Object.keys(MODE) as MemoryServer[]) {
          const run = await once(n, size, server, waitMs);
          const key = JSON.stringify([n, size, server]);
          seen.set(key, [...seen.get(key) ?? [], run]);
          log(
            `drain-memory round ${round}/${rounds}: ${n} × ${
              size ? `POST ${size / 1024} KiB` : "GET"
            }, ${server}: before ${run.beforeMiB} MiB, peak ${run.peakMiB} MiB, ${run.whole} whole, ${run.drainMs} ms`,
          );
        }
      }
    }
  }
  return [...seen].map(([key, runs]) => {
    const [n, size, server] = JSON.parse(key);
    return {
      n,
      size,
      server,
      peakMiB: median(runs.map((r) => r.peakMiB)),
      rounds: runs.map((r) => r.peakMiB),
      before: runs.map((r) => r.beforeMiB),
      whole: Math.min(...runs.map((r) => r.whole)),
      drainMs: median(runs.map((r) => r.drainMs)),
    };
  });
}
