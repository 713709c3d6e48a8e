/** Writes the benchmark results as Markdown tables and an SVG timeline. */
import type { OverheadRow } from "./_overhead.ts";
import type { RestartRun } from "./_restarts.ts";
import type { LatencyRow } from "./_shutdown.ts";
import type { MemoryRun } from "./_memory.ts";
import type { BalancerRow } from "./_balancers.ts";
import type { KubeRow } from "./_kubernetes.ts";
import type { ClientRow } from "./_clients.ts";
import type { CensusRow } from "./_census.ts";
import type { TelemetryRow } from "./_telemetry.ts";
import type { RestartIdleRow } from "./_restart_idle.ts";
import type { DrainMemoryRow } from "./_drain_memory.ts";
import { median } from "./_run.ts";

/** Everything one `deno task bench` run measured. */
export interface Results {
  machine: Record<string, string | number>;
  settings: Record<string, string | number | boolean>;
  overhead: OverheadRow[];
  shutdown: LatencyRow[];
  restarts: RestartRun[];
  /** The supervisor's RSS across restarts (absent in older results). */
  memory?: MemoryRun;
  /** Restarts behind nginx and HAProxy (absent in older results). */
  balancers?: BalancerRow[];
  /** Peak RSS at the drain against N in flight (absent in older results). */
  drainMemory?: DrainMemoryRow[];
  /** The Kubernetes emulation (absent in older results). */
  kubernetes?: KubeRow[];
  /** One SIGTERM under real client pools (absent in older results). */
  clients?: ClientRow[];
  /** The census's CPU per look (absent in older results). */
  census?: CensusRow[];
  /** The drain's telemetry calls with OpenTelemetry off (absent in older results). */
  telemetry?: TelemetryRow;
  /** An idle server's restart, part by part (absent in older results). */
  restartIdle?: RestartIdleRow[];
}

/** The results as Markdown. */
export function markdown(r: Results): string {
  const lines: string[] = [];
  lines.push("# Benchmark results", "");
  lines.push(
    `Machine: ${
      Object.entries(r.machine).map(([k, v]) => `${k} ${v}`).join(", ")
    }.`,
    `Settings: ${
      Object.entries(r.settings).map(([k, v]) => `${k} ${v}`).join(", ")
    }.`,
    "",
  );
  if (r.overhead.length) {
    lines.push(
      "## Overhead: `serve()` against raw `Deno.serve`",
      "",
      "Each round starts raw `Deno.serve` and `serve()` with the same handler, both pinned to core 0, and loads them **at the same time**, each with its own client (wrk -t1 -c50; 4 connections for file-100mib; 10 readers for sse) pinned to core 1, so the machine's noise in that second hits both alike. The cost is the server's CPU time (user + system) per request (per event for sse); the **ratio** is raw's CPU per request over serve()'s, i.e. serve()'s requests per CPU-second relative to raw: its throughput ratio when CPU-bound. It is the median of the per-round ratios (all of them are in results.json); rounds go round-robin over the bodies. req/s are this machine's medians while the two servers share one core (each gets about half of it).",
      "",
      "| body | ratio (median of rounds) | ratio min–max | CPU µs per request raw / serve() | req/s raw / serve() (sharing a core) | p99 raw / serve() ms | peak RSS raw / serve() MiB |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    );
    for (const o of r.overhead) {
      lines.push(
        `| ${o.body}${
          o.body === "sse"
            ? " (events)"
            : o.body.startsWith("control")
            ? " (raw against raw: the method's noise)"
            : ""
        } | **${o.ratio.median}** | ${o.ratio.min}–${o.ratio.max} | ${o.raw.cpuUs} / ${o.graceful.cpuUs} | ${o.raw.rps} / ${o.graceful.rps} | ${o.raw.p99} / ${o.graceful.p99} | ${o.raw.rssMiB} / ${o.graceful.rssMiB} |`,
      );
    }
    lines.push("");
  }
  if (r.shutdown.length) {
    lines.push(
      "## Shutdown latency (SIGTERM)",
      "",
      "| scenario | measured | runs | median ms | max ms |",
      "| --- | --- | ---: | ---: | ---: |",
    );
    for (const s of r.shutdown) {
      lines.push(
        `| ${s.scenario} | ${s.measure} | ${s.runs} | ${s.median} | ${s.max} |`,
      );
    }
    lines.push("");
  }
  if (r.memory) {
    lines.push(
      "## Supervisor memory across restarts",
      "",
      `RSS of the supervisor process (\`ps\`), ${r.memory.restarts} restarts with --pre-drain 0.`,
      "",
      "| restarts | RSS MiB |",
      "| ---: | ---: |",
      ...r.memory.samples.map(([n, mib]) => `| ${n} | ${mib} |`),
      "",
    );
  }
  if (r.balancers?.length) {
    lines.push(
      "## Behind a balancer: restarts under 300 req/s from a client that never retries",
      "",
      "The recipes of examples/deploy/ (ports replaced); two backends restarted one at a time (stop, then start; HAProxy: the next one once HAProxy sees the restarted one up), or one restart.ts supervisor behind nginx. Keep-alive client; POST: 4 KiB bodies read after 0–40 ms, checked by digest.",
      "",
      "| balancer | requests | backends' drainDelay | restarts | requests | failed | per restart | SIGTERM → exit, median / max ms | failures by kind |",
      "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    );
    for (const b of r.balancers) {
      const kinds = Object.entries(b.failures).map(([k, v]) => `${k} ${v}`)
        .join(", ") || "—";
      lines.push(
        `| ${b.balancer} | ${b.request.toUpperCase()} | ${b.drainDelay} | ${b.restarts} | ${b.sent} | **${b.failed}** | ${
          (b.failed / b.restarts).toFixed(2)
        } | ${
          b.exitMs ? `${b.exitMs.median} / ${b.exitMs.max}` : "—"
        } | ${kinds} |`,
      );
    }
    lines.push("");
  }
  if (r.drainMemory?.length) {
    lines.push(
      "## Memory at the drain: N requests in flight at SIGTERM, each handler reads its body 3 s after it starts",
      "",
      "Peak RSS (VmHWM) of the server process in MiB, median of the rounds (each round's in results.json). raw, by hand: Deno.serve + shutdown() (Deno 2.9.6 takes unread bodies away). raw, read early: Deno.serve whose handlers read the body first, then wait. Pre-read: rounds in which Deno had read whole bodies as they arrived, before any handler asked (RSS once every handler runs, before the signal, above the GET row's by more than half the body bytes and at least 20 MiB): it happens to every server alike, before the drain ('read early' reads before the signal by design: not counted). not pre-read: the median of the other rounds. Bound: serve()'s GET row + 2 × the body bytes in flight; over the bound: (serve(), not pre-read − bound) / N, KiB per request (negative: under it). The drain's own: serve()'s peak − its RSS before the signal, median of all rounds.",
      "",
      "| N in flight | request | serve() | serve(), not pre-read | raw, by hand | raw, read early | bound | serve() over the bound, KiB/request | the drain's own | rounds pre-read by Deno (serve() / by hand) | serve() answered whole (fewest) | by hand answered whole | serve() drain ms |",
      "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    );
    const key = (x: DrainMemoryRow) => `${x.n} ${x.size}`;
    const cases = [...new Set(r.drainMemory.map(key))];
    const find = (n: number, size: number, server: string) =>
      r.drainMemory!.find((x) =>
        x.n === n && x.size === size && x.server === server
      );
    const median = (xs: number[]) => {
      const s = [...xs].sort((a, b) => a - b);
      const m = Math.floor(s.length / 2);
      return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
    };
    const round1 = (x: number) => Math.round(x * 10) / 10;
    for (const c of cases) {
      const [n, size] = c.split(" ").map(Number);
      const rows = ["serve()", "raw, by hand", "raw, read early"].map((
        server,
      ) => find(n, size, server));
      const [mine, raw, early] = rows;
      const mib = n * size / 1024 / 1024;
      /** Per round of `row`: did Deno read bodies before the signal? */
      const preRead = (row: DrainMemoryRow | undefined) => {
        const base = find(n, 0, row?.server ?? "")?.before;
        if (!row?.before || !base || size === 0) return undefined;
        const floor = median(base) + Math.max(mib / 2, 20);
        return row.before.map((b) => b > floor);
      };
      const counted = (row: DrainMemoryRow | undefined) => {
        const flags = preRead(row);
        return flags ? `${flags.filter(Boolean).length}/${flags.length}` : "—";
      };
      const mineFlags = preRead(mine);
      const clean = mine && mineFlags
        ? mine.rounds.filter((_, i) => !mineFlags[i])
        : [];
      const cleanMiB = clean.length ? round1(median(clean)) : undefined;
      const get = find(n, 0, "serve()");
      const bound = get && size > 0 ? get.peakMiB + 2 * mib : undefined;
      // Every round pre-read (small bodies, many at once): all rounds.
      const basis = cleanMiB ?? mine?.peakMiB;
      const over = bound !== undefined && basis !== undefined
        ? `${Math.round((basis - bound) * 1024 / n)}${
          cleanMiB === undefined ? " (all rounds)" : ""
        }`
        : undefined;
      const own = mine?.before
        ? round1(median(mine.rounds.map((p, i) => p - mine.before![i])))
        : undefined;
      lines.push(
        `| ${n} | ${size ? `POST ${size / 1024} KiB` : "GET"} | ${
          mine?.peakMiB ?? "—"
        } | ${cleanMiB ?? "—"} | ${raw?.peakMiB ?? "—"} | ${
          early?.peakMiB ?? "—"
        } | ${bound === undefined ? "—" : round1(bound)} | ${over ?? "—"} | ${
          own ?? "—"
        } | ${counted(mine)} / ${counted(raw)} | ${
          mine?.whole ?? "—"
        } of ${n} | ${raw?.whole ?? "—"} | ${mine?.drainMs ?? "—"} |`,
      );
    }
    lines.push("");
  }
  if (r.kubernetes?.length) {
    lines.push(
      "## Kubernetes, emulated with netfilter: rolling updates under 4 × 100 req/s from clients that never retry",
      "",
      "examples/deploy/kubernetes.yaml's pods (the auto preload, its variables) behind a Service made as kube-proxy makes it in iptables mode (DNAT with statistic random), each pod in a network namespace of its own; each deletion is SIGTERM plus the endpoint's rule removed after the given delay (tests/_kubernetes.ts). POST: 4 KiB bodies read after 0–40 ms, checked by digest.",
      "",
      "| rules late by | pods' drainDelay | client | pods deleted | requests | failed | SIGTERM → exit, median / max ms | failures by kind |",
      "| ---: | --- | --- | ---: | ---: | ---: | ---: | --- |",
    );
    for (const k of r.kubernetes) {
      const kinds = Object.entries(k.failures).map(([n, v]) => `${n} ${v}`)
        .join(", ") || "—";
      lines.push(
        `| ${k.propagationMs} ms | ${k.drainDelay} | ${k.client} | ${k.deleted} | ${k.sent} | **${k.failed}** | ${k.exitMs.median} / ${k.exitMs.max} | ${kinds} |`,
      );
    }
    lines.push("");
  }
  if (r.census?.length) {
    lines.push(
      "## The census: CPU per look",
      "",
      "What the pre-drain's look at the port's sockets costs (supervisor/_census.ts; one look every 10 ms), with N open connections: the median of the runs.",
      "",
      "| connections | µs of CPU per look | runs |",
      "| --- | --- | --- |",
      ...r.census.map((c) =>
        `| ${c.connections} | ${c.cpuUsPerLook} | ${c.runs.join(", ")} |`
      ),
      "",
    );
  }
  if (r.restartIdle?.length) {
    lines.push(
      "## An idle server's restart, part by part",
      "",
      "SIGHUP → the old worker's exit seen by the bench, with the supervisor's own lines for the new worker's start (to its ready report) and the old worker's pre-drain, drain and exit; beside it, spawn → listening for a server alone, raw `Deno.serve` and `serve()` in turn. Medians.",
      "",
      "| what | ms | new worker ready in | old worker draining | runs |",
      "| --- | ---: | ---: | ---: | ---: |",
      ...r.restartIdle.map((x) =>
        `| ${x.what} | ${x.totalMs} | ${x.readyMs ?? "—"} | ${
          x.drainingMs ?? "—"
        } | ${x.runs} |`
      ),
      "",
    );
  }
  if (r.telemetry) {
    lines.push(
      "## Telemetry off: what it costs",
      "",
      "Without `OTEL_DENO`, the two calls a drain makes to Deno's no-op tracer and meter (lifecycle/_telemetry.ts), in a process of their own: CPU per drain, the median of the runs. No telemetry code runs per request.",
      "",
      "| µs of CPU per drain | runs |",
      "| --- | --- |",
      `| ${r.telemetry.cpuUsPerDrain} | ${r.telemetry.runs.join(", ")} |`,
      "",
    );
  }
  if (r.clients?.length) {
    lines.push(
      "## Real client pools: one SIGTERM, and supervisor restarts",
      "",
      "Each client library's own pool (no retry), GETs and 4 KiB POSTs. One SIGTERM: one server process stopped after 500 ms at 200/s each, one handler behind serve() (with and without --allow-ffi) or raw Deno.serve with server.shutdown() on SIGTERM as Deno's docs teach, rounds interleaved (tests/_one_sigterm.ts). Supervisor restarts: restart.ts over the fixture app (workers with --allow-ffi), SIGHUP each waited for, 150/s each (tests/_clients.ts). Refused: at connect, nothing sent. Failed: after sending (a reset, an early close, a wrong answer).",
      "",
      "| scenario | client | server | method | signals | sent | refused | failed | failed per signal | SIGTERM → exit, median / max ms (restarts: ms per restart) |",
      "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    );
    for (const c of r.clients) {
      lines.push(
        `| ${
          c.scenario ?? "one SIGTERM"
        } | ${c.client} | ${c.server} | ${c.method} | ${c.signals} | ${c.sent} | ${c.refused} | **${c.failed}** | ${
          (c.failed / c.signals).toFixed(1)
        } | ${c.exitMs.median} / ${c.exitMs.max} |`,
      );
    }
    lines.push("");
  }
  if (r.restarts.length) {
    lines.push(
      "## Restarts under 1000 req/s from a client that never retries",
      "",
      "| method | client | requests sent | tcp_migrate_req | restarts | requests | failed | per restart | signal → old gone, median / max ms | failures by kind |",
      "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    );
    for (const x of r.restarts) {
      const kinds = Object.entries(x.failures).map(([k, v]) =>
        `${k} ${v}`
      ).join(", ") || "—";
      lines.push(
        `| ${x.method}${
          (x.workers ?? 1) > 1 ? ` (${x.workers} workers)` : ""
        } | ${
          x.mode === "new" ? "new connection per request" : "keep-alive"
        } | ${
          x.request === "post" ? "POST 4 KiB, read after 0–40 ms" : "GET"
        } | ${x.migrateReq} | ${x.restarts} | ${x.sent} | **${x.failed}** | ${
          (x.failed / x.restarts).toFixed(2)
        } | ${timing(x.restartMs)} | ${kinds} |`,
      );
    }
    lines.push(
      "",
      "naive: stop the old server (graceful), then start the new one. handoff: reusePort, the old worker calls shutdown() as soon as the new one is ready. unsteered: restart.ts with --no-steer (1 s pre-drain; the listener detached where tcp_migrate_req=1). fixed: the supervisor below with --rollback-window 1000 (a pre-drain of a fixed 1 s, as before it could end early). supervisor: restart.ts with its defaults and workers run with --allow-ffi (a pre-drain of at most 1 s that ends once the old worker is quiet, after the 50 ms rollback window; new connections steered away from the old worker, listener detached where tcp_migrate_req=1). Signal → old gone: from SIGHUP (SIGTERM for naive) until the new generation serves and the old one has exited.",
      "",
      "![Restart timeline](restarts.svg)",
      "",
    );
  }
  return lines.join("\n");
}

const COLORS: Record<string, string> = {
  naive: "#d62728",
  handoff: "#ff7f0e",
  unsteered: "#9467bd",
  supervisor: "#2ca02c",
};

/**
 * An SVG timeline of the restart runs of one client kind: requests/s per
 * 100 ms as one line per method, failures per 100 ms as bars below, each
 * restart marked by a dashed line.
 */
export function svg(runs: RestartRun[], windowMs: number): string {
  const W = 960, H = 460, left = 60, right = 20, top = 50;
  const rpsH = 240, gap = 40, failH = 90;
  const x = (ms: number) => left + (ms / windowMs) * (W - left - right);
  const maxRps = Math.max(
    1000,
    ...runs.flatMap((r) =>
      r.timeline.filter((b) => b[0] < windowMs).map((b) => b[1] * 10)
    ),
  ) * 1.1;
  const maxFail = Math.max(
    1,
    ...runs.flatMap((r) =>
      r.timeline.filter((b) => b[0] < windowMs).map((b) => b[2])
    ),
  );
  const yRps = (v: number) => top + rpsH - (v / maxRps) * rpsH;
  const failTop = top + rpsH + gap;
  const yFail = (v: number) => failTop + failH - (v / maxFail) * failH;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="20" font-size="15" font-weight="bold">Restarts under load: requests/s and failed requests per 100 ms</text>`,
    `<text x="${left}" y="37" fill="#444">1000 req/s from a client that never retries, ${
      runs[0]?.mode === "new" ? "a new connection per request" : "keep-alive"
    }, tcp_migrate_req ${runs[0]?.migrateReq}; dashed lines: restarts</text>`,
  );
  // Axes and grid.
  for (let v = 0; v <= maxRps; v += 500) {
    parts.push(
      `<line x1="${left}" x2="${W - right}" y1="${yRps(v)}" y2="${
        yRps(v)
      }" stroke="#eee"/>`,
      `<text x="${left - 6}" y="${yRps(v) + 4}" text-anchor="end">${v}</text>`,
    );
  }
  parts.push(
    `<text x="14" y="${top + rpsH / 2}" transform="rotate(-90 14 ${
      top + rpsH / 2
    })" text-anchor="middle">requests/s</text>`,
    `<text x="14" y="${failTop + failH / 2}" transform="rotate(-90 14 ${
      failTop + failH / 2
    })" text-anchor="middle">failed</text>`,
    `<line x1="${left}" x2="${W - right}" y1="${failTop + failH}" y2="${
      failTop + failH
    }" stroke="#999"/>`,
    `<text x="${left - 6}" y="${
      failTop + 4
    }" text-anchor="end">${maxFail}</text>`,
    `<text x="${left - 6}" y="${
      failTop + failH + 4
    }" text-anchor="end">0</text>`,
  );
  for (let s = 0; s * 1000 <= windowMs; s++) {
    parts.push(
      `<text x="${x(s * 1000)}" y="${
        H - 8
      }" text-anchor="middle">${s} s</text>`,
    );
  }
  // Restart marks (each method's own, same cadence).
  const marks = runs.find((r) => r.method === "supervisor")?.marks ??
    runs[0]?.marks ?? [];
  for (const m of marks.filter((m) => m < windowMs)) {
    parts.push(
      `<line x1="${x(m)}" x2="${x(m)}" y1="${top}" y2="${
        failTop + failH
      }" stroke="#888" stroke-dasharray="4 4"/>`,
    );
  }
  // Lines and failure bars.
  runs.forEach((run, i) => {
    const color = COLORS[run.method] ?? "#1f77b4";
    const pts = run.timeline.filter((b) => b[0] < windowMs).map((b) =>
      `${x(b[0] + 50).toFixed(1)},${yRps(b[1] * 10).toFixed(1)}`
    );
    parts.push(
      `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${
        pts.join(" ")
      }"/>`,
    );
    const barW = Math.max(2, (x(100) - x(0)) / runs.length);
    for (const b of run.timeline.filter((b) => b[0] < windowMs && b[2] > 0)) {
      const bx = x(b[0]) + i * barW;
      parts.push(
        `<rect x="${bx.toFixed(1)}" y="${yFail(b[2]).toFixed(1)}" width="${
          barW.toFixed(1)
        }" height="${
          (failTop + failH - yFail(b[2])).toFixed(1)
        }" fill="${color}"/>`,
      );
    }
    const lx = left + 10 + i * 290;
    parts.push(
      `<rect x="${lx}" y="${top + 6}" width="14" height="4" fill="${color}"/>`,
      `<text x="${lx + 20}" y="${
        top + 12
      }">${run.method}: ${run.failed} failed in ${run.restarts} restarts</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

/**
 * Writes results.json, results.md and restarts.svg (the GET runs with a new
 * connection per request on the default kernel, tcp_migrate_req 0, where
 * there are any: what most users run) into `dir`; returns the Markdown.
 */
export async function writeReports(
  dir: string,
  results: Results,
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/results.json`,
    JSON.stringify(results, null, 1) + "\n",
  );
  const md = markdown(results);
  await Deno.writeTextFile(`${dir}/results.md`, md);
  const preferred = results.restarts.filter((r) =>
    r.mode === "new" && r.migrateReq.startsWith("0") &&
    (r.request ?? "get") === "get" && (r.workers ?? 1) === 1
  );
  const runs = preferred.length ? preferred : results.restarts;
  if (runs.length) {
    const restarts = Number(results.settings.restarts);
    const interval = Number(results.settings.interval);
    const windowMs = Math.min(15_000, 500 + restarts * interval + 1000);
    await Deno.writeTextFile(`${dir}/restarts.svg`, svg(runs, windowMs));
  }
  return md;
}

/** "median / max" of a run's restart times, or "—" (older results). */
function timing(ms: number[] | undefined): string {
  if (!ms?.length) return "—";
  return `${Math.round(median(ms))} / ${Math.max(...ms)}`;
}
