/**
 * The supervisor's own memory across many restarts: RSS (from `ps`) at the
 * start and every `every` restarts, with `--pre-drain 0` so a thousand
 * restarts take minutes, not an hour.
 */
import { Proc, RESTART, SERVER, SUPERVISOR_FLAGS } from "./_run.ts";

/** RSS of the supervisor after so many restarts. */
export interface MemoryRun {
  restarts: number;
  /** [restarts done, RSS MiB]. */
  samples: [number, number][];
}

async function rssMiB(pid: number): Promise<number> {
  const out = await new Deno.Command("ps", {
    args: ["-o", "rss=", "-p", String(pid)],
    stdout: "piped",
  }).output();
  const kb = Number(new TextDecoder().decode(out.stdout).trim());
  return Math.round((kb / 1024) * 10) / 10;
}

/** Runs the supervisor over the benchmark server through `restarts` restarts. */
export async function supervisorMemory(
  restarts: number,
  every: number,
  log: (line: string) => void,
): Promise<MemoryRun> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const proc = new Proc([
    ...SUPERVISOR_FLAGS,
    RESTART,
    "--pre-drain",
    "0",
    "--",
    Deno.execPath(),
    "run",
    "--allow-net",
    "--allow-env",
    "--unstable-net",
    SERVER,
    JSON.stringify({ impl: "graceful", port }),
  ]);
  try {
    await proc.waitFor(/generation 1\) ready/);
    const samples: [number, number][] = [[0, await rssMiB(proc.pid)]];
    for (let done = 1; done <= restarts; done++) {
      proc.kill("SIGHUP");
      await proc.waitFor(new RegExp(`generation ${done + 1} serving`), 60_000);
      if (done % every === 0) {
        samples.push([done, await rssMiB(proc.pid)]);
        log(
          `memory: ${done} restarts, supervisor RSS ${samples.at(-1)![1]} MiB`,
        );
        // The collected output grows with every restart: keep the tail only.
        proc.stderr = proc.stderr.slice(-4096);
      }
    }
    return { restarts, samples };
  } finally {
    proc.kill("SIGTERM");
    await proc.status;
  }
}
