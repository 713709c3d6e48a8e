/**
 * A Kubernetes Service emulated with the kernel's own parts, as kube-proxy
 * builds it in iptables mode: a node (a network namespace) whose locally
 * made connections to the Service's virtual IP are DNATed, by an `OUTPUT`
 * rule and a chain of `statistic --mode random` rules, to pods (each a
 * namespace of its own behind a veth pair, with its own IP, all listening on
 * 8080). Conntrack keeps an established connection on its pod after the
 * rules change, as in a cluster.
 *
 * A rolling update (`maxSurge: 1, maxUnavailable: 0`) as a Deployment does
 * it: start a new pod, add it to the rules once its readiness probe answers
 * 200, then delete an old one: SIGTERM to it and, concurrently, its rule
 * removed after a propagation delay (kube-proxy's lag behind the endpoint
 * removal, kubernetes#67592); the next new pod starts at once. A pod still
 * running after `terminationGracePeriodSeconds` is killed, as the kubelet
 * does. The pods run examples/deploy/kubernetes.yaml's command (the auto
 * preload) with its variables, read from the file.
 *
 * Not emulated: ingress controllers, kube-proxy's IPVS and nftables modes,
 * other nodes (NodePort, externalTrafficPolicy), the kubelet's probe period
 * (probed every 100 ms here) and the API server.
 */
import { type LoadCounts, Proc } from "./_helpers.ts";

const here = (path: string) => new URL(path, import.meta.url).pathname;
const RECIPE = here("../examples/deploy/kubernetes.yaml");
const AUTO = here("../auto.ts");
const POD_APP = here("./fixtures/pod_app.ts");
const LOAD = here("./fixtures/load.ts");

/** The Service's virtual IP and port, and the pods' port. */
const VIP = "10.96.0.10";
const SERVICE_PORT = 80;
const POD_PORT = 8080;
const CHAIN = "KUBE-SVC-APP";

/** What the test takes from the recipe, as written there. */
export interface Recipe {
  /** The container's `env`. */
  env: Record<string, string>;
  /** `readinessProbe.httpGet.path`. */
  readinessPath: string;
  /** `livenessProbe.httpGet.path`. */
  livenessPath: string;
  /** `startupProbe.httpGet.path`. */
  startupPath: string;
  /** `startupProbe`'s `periodSeconds × failureThreshold` (ms). */
  startupBudgetMs: number;
  terminationGracePeriodSeconds: number;
  replicas: number;
}

/** Reads examples/deploy/kubernetes.yaml (the few fields used here). */
export async function recipe(): Promise<Recipe> {
  const text = await Deno.readTextFile(RECIPE);
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/- \{ name: (\w+), value: "?([^"}]*?)"? \}/g)) {
    env[m[1]] = m[2];
  }
  const field = (pattern: RegExp) => {
    const m = text.match(pattern);
    if (!m) throw new Error(`kubernetes.yaml: no match for ${pattern}`);
    return m[1];
  };
  return {
    env,
    readinessPath: field(/readinessProbe:\s*\n\s*httpGet: \{ path: (\S+),/),
    livenessPath: field(/livenessProbe:\s*\n\s*httpGet: \{ path: (\S+),/),
    startupPath: field(/startupProbe:\s*\n\s*httpGet: \{ path: (\S+),/),
    startupBudgetMs: 1000 *
      Number(field(/startupProbe:[^]*?periodSeconds: (\d+)/)) *
      Number(field(/startupProbe:[^]*?failureThreshold: (\d+)/)),
    terminationGracePeriodSeconds: Number(
      field(/terminationGracePeriodSeconds: (\d+)/),
    ),
    replicas: Number(field(/replicas: (\d+)/)),
  };
}

/** `/usr/sbin/NAME` where it exists (often not on a user's PATH), else NAME. */
function sbin(name: string): string {
  try {
    return Deno.statSync(`/usr/sbin/${name}`).isFile
      ? `/usr/sbin/${name}`
      : name;
  } catch {
    return name;
  }
}
const IPTABLES = sbin("iptables");
const IPTABLES_RESTORE = sbin("iptables-restore");

async function sh(cmd: string[], input?: string): Promise<string> {
  const child = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (input !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(input));
    await writer.close();
  }
  const out = await child.output();
  if (!out.success) {
    throw new Error(
      `\`${cmd.join(" ")}\` failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * Why the emulation cannot run here (one line), or `undefined`: it needs
 * root, `ip` with veth pairs, and `iptables` with the nat table and the
 * statistic match in a namespace.
 */
export async function unavailable(): Promise<string | undefined> {
  let cluster: Cluster | undefined;
  try {
    cluster = await Cluster.create();
    await cluster.probeRules();
    return undefined;
  } catch (error) {
    return (error as Error).message.split("\n")[0];
  } finally {
    await cluster?.dispose();
  }
}

let clusters = 0;

/** One pod: its namespace, IP and server process. */
export class Pod {
  exitMs: number | undefined;
  code: number | undefined;
  killed = false;
  /** Liveness probe answers (HTTP status, "000" refused) while it drained. */
  liveness: Record<string, number> = {};
  /** Startup probe answers until its first 200 (status → count). */
  startup: Record<string, number> = {};
  /** Start → the startup probe's first 200 (ms). */
  startedMs = 0;
  constructor(
    readonly ns: string,
    readonly ip: string,
    readonly proc: Proc,
  ) {}
}

/** The node, its Service rules and its pods. */
export class Cluster {
  readonly node: string;
  readonly prefix: string[];
  /** Pods in the Service's endpoints, in rule order. */
  endpoints: Pod[] = [];
  readonly pods: Pod[] = [];
  #namespaces: string[] = [];
  #next = 1;

  private constructor(node: string) {
    this.node = node;
    this.prefix = ["ip", "netns", "exec", node];
  }

  /** Makes the node namespace (loopback up, nat chain in place). */
  static async create(): Promise<Cluster> {
    const node = `graceful-k8s-${Deno.pid}-${++clusters}`;
    await sh(["ip", "netns", "add", node]);
    const cluster = new Cluster(node);
    cluster.#namespaces.push(node);
    await sh(["ip", "-n", node, "link", "set", "lo", "up"]);
    return cluster;
  }

  /** Writes the Service's rules once with no endpoint: fails if unsupported. */
  async probeRules(): Promise<void> {
    await this.#pod("probe");
    await this.#writeRules([`10.244.${this.#next - 1}.2`]);
    await this.#writeRules([]);
  }

  /** Creates a pod's namespace and veth pair; returns its IP. */
  async #pod(name: string): Promise<{ ns: string; ip: string }> {
    const k = this.#next++;
    const ns = `${this.node}-${name}${k}`;
    await sh(["ip", "netns", "add", ns]);
    this.#namespaces.push(ns);
    const host = `veth${k}`;
    const ip = `10.244.${k}.2`;
    const run = (...args: string[]) => sh(["ip", ...args]);
    await run("-n", ns, "link", "set", "lo", "up");
    await run(
      "-n",
      this.node,
      "link",
      "add",
      host,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      ns,
    );
    await run("-n", this.node, "addr", "add", `10.244.${k}.1/24`, "dev", host);
    await run("-n", this.node, "link", "set", host, "up");
    await run("-n", ns, "addr", "add", `${ip}/24`, "dev", "eth0");
    await run("-n", ns, "link", "set", "eth0", "up");
    await run("-n", ns, "route", "add", "default", "via", `10.244.${k}.1`);
    if (k === 1) {
      // The VIP needs a route for the first lookup; DNAT then reroutes.
      await run(
        "-n",
        this.node,
        "route",
        "add",
        "10.96.0.0/12",
        "via",
        ip,
        "dev",
        host,
      );
    }
    return { ns, ip };
  }

  /**
   * Replaces the Service chain in one `iptables-restore` transaction, as
   * kube-proxy does: endpoint i of n is taken with probability 1/(n - i).
   */
  async #writeRules(ips: string[]): Promise<void> {
    const lines = ["*nat", `:${CHAIN} - [0:0]`];
    ips.forEach((ip, i) => {
      const left = ips.length - i;
      const pick = left > 1
        ? ` -m statistic --mode random --probability ${(1 / left).toFixed(5)}`
        : "";
      lines.push(
        `-A ${CHAIN} -p tcp -m tcp${pick} -j DNAT --to-destination ${ip}:${POD_PORT}`,
      );
    });
    lines.push("COMMIT", "");
    await sh([...this.prefix, IPTABLES_RESTORE, "--noflush"], lines.join("\n"));
    const jump = [
      "OUTPUT",
      "-d",
      `${VIP}/32`,
      "-p",
      "tcp",
      "-m",
      "tcp",
      "--dport",
      String(SERVICE_PORT),
      "-j",
      CHAIN,
    ];
    try {
      await sh([...this.prefix, IPTABLES, "-t", "nat", "-C", ...jump]);
    } catch {
      await sh([...this.prefix, IPTABLES, "-t", "nat", "-A", ...jump]);
    }
  }

  /** Rewrites the rules for the current endpoints. */
  syncRules(): Promise<void> {
    return this.#writeRules(this.endpoints.map((pod) => pod.ip));
  }

  /**
   * Starts a pod with the recipe's command and variables (plus `env`), then
   * probes from the node as the kubelet does: the startup probe until its
   * first 200 (within its `periodSeconds × failureThreshold`; every 100 ms
   * here), and only then the readiness probe until 200.
   */
  async startPod(r: Recipe, env: Record<string, string> = {}): Promise<Pod> {
    const { ns, ip } = await this.#pod("pod");
    const proc = new Proc(
      [
        "run",
        "--preload",
        AUTO,
        "--allow-net",
        "--allow-env",
        POD_APP,
        String(POD_PORT),
      ],
      { ...r.env, ...env },
      ["ip", "netns", "exec", ns],
    );
    const pod = new Pod(ns, ip, proc);
    this.pods.push(pod);
    const start = performance.now();
    for (;;) {
      const code = await this.#probe(pod, r.startupPath);
      if (code === "200") break;
      pod.startup[code] = (pod.startup[code] ?? 0) + 1;
      if (performance.now() - start > r.startupBudgetMs) {
        throw new Error(`pod ${ip}: startup probe failed\n${proc.output()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    pod.startedMs = performance.now() - start;
    const deadline = performance.now() + 30_000;
    while (!(await this.#ready(pod, r.readinessPath))) {
      if (performance.now() > deadline) {
        throw new Error(`pod ${ip} never ready\n${proc.output()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return pod;
  }

  async #ready(pod: Pod, path: string): Promise<boolean> {
    return await this.#probe(pod, path) === "200";
  }

  /** An HTTP probe from the node, as the kubelet's: its status, "000" if none. */
  async #probe(pod: Pod, path: string): Promise<string> {
    try {
      const out = await sh([
        ...this.prefix,
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-m",
        "1",
        "-w",
        "%{http_code}",
        `http://${pod.ip}:${POD_PORT}${path}`,
      ]);
      return out || "000";
    } catch {
      return "000";
    }
  }

  /**
   * Deletes a pod as Kubernetes does: SIGTERM now and, concurrently, its
   * endpoint removed from the rules after `propagationMs`; SIGKILL at the
   * grace period. Resolves when both are done.
   */
  async deletePod(
    pod: Pod,
    propagationMs: number,
    graceSeconds: number,
    livenessPath?: string,
  ): Promise<void> {
    const start = performance.now();
    pod.proc.kill("SIGTERM");
    // The kubelet's liveness probe while the pod drains (every 100 ms here):
    // a failure would have it restart a pod that is only draining.
    let exited = false;
    const probing = livenessPath && (async () => {
      while (!exited) {
        const code = await this.#probe(pod, livenessPath);
        if (!exited) pod.liveness[code] = (pod.liveness[code] ?? 0) + 1;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    const removal = new Promise((resolve) => setTimeout(resolve, propagationMs))
      .then(() => {
        this.endpoints = this.endpoints.filter((p) => p !== pod);
        return this.syncRules();
      });
    const grace = setTimeout(() => {
      pod.killed = true;
      pod.proc.kill("SIGKILL");
    }, graceSeconds * 1000);
    pod.code = (await pod.proc.status).code;
    exited = true;
    await probing;
    clearTimeout(grace);
    pod.exitMs = performance.now() - start;
    await removal;
  }

  /** Removes every namespace (pods are ended by their tests first). */
  async dispose(): Promise<void> {
    for (const pod of this.pods) {
      pod.proc.kill("SIGKILL");
      await pod.proc.status;
    }
    for (const ns of this.#namespaces.reverse()) {
      await sh(["ip", "netns", "del", ns]).catch(() => {});
    }
  }
}

/** One client of a run: how it connects and what it sends. */
export interface Client {
  mode: "keepalive" | "new";
  post: boolean;
}

/** The four clients every run has, at once. */
export const CLIENTS: Client[] = [
  { mode: "keepalive", post: false },
  { mode: "keepalive", post: true },
  { mode: "new", post: false },
  { mode: "new", post: true },
];

/** A run's outcome per client. */
export interface KubeRun {
  propagationMs: number;
  /** The pods' GRACEFUL_DRAIN_DELAY. */
  drainDelay: string;
  /** Pods deleted (each rolling update deletes `replicas`). */
  deleted: number;
  /** SIGTERM → exit of each deleted pod (ms). */
  exits: number[];
  /** Pods the grace period had to kill. */
  killed: number;
  /** The deleted pods' exit codes. */
  codes: number[];
  clients: (Client & LoadCounts & { pods: number })[];
  /** Every pod's server pid, in start order. */
  pids: number[];
  /** The deleted pods' stderr. */
  logs: string[];
  /** Each deleted pod's liveness answers while it drained (status → count). */
  liveness: Record<string, number>[];
  /** The pods started by the updates: startup probe answers before 200. */
  startups: { answers: Record<string, number>; ms: number }[];
}

/**
 * Runs the recipe's Deployment behind the emulated Service under load from
 * the four {@linkcode CLIENTS} (`rate` req/s each), and does `updates`
 * rolling updates with the given propagation delay.
 */
export async function kubeRun(
  { propagationMs, updates = 1, rate = 100, env = {} }: {
    propagationMs: number;
    updates?: number;
    rate?: number;
    /** Variables over the recipe's (e.g. another GRACEFUL_DRAIN_DELAY). */
    env?: Record<string, string>;
  },
): Promise<KubeRun> {
  const r = await recipe();
  const cluster = await Cluster.create();
  const loads: Proc[] = [];
  try {
    for (let i = 0; i < r.replicas; i++) {
      cluster.endpoints.push(await cluster.startPod(r, env));
    }
    await cluster.syncRules();
    for (const client of CLIENTS) {
      loads.push(
        new Proc(
          [
            "run",
            "--allow-net",
            LOAD,
            JSON.stringify({
              hostname: VIP,
              port: SERVICE_PORT,
              rate,
              duration: 120_000,
              mode: client.mode,
              connections: client.post ? 8 : 4,
              ...(client.post ? { path: "/upload", body: 4096 } : {}),
            }),
          ],
          {},
          cluster.prefix,
        ),
      );
    }
    for (const load of loads) await load.waitFor(/load running/);
    const deletions: Promise<void>[] = [];
    const deleted: Pod[] = [];
    for (let u = 0; u < updates; u++) {
      for (const old of [...cluster.endpoints]) {
        const fresh = await cluster.startPod(r, env);
        cluster.endpoints.push(fresh);
        await cluster.syncRules();
        deleted.push(old);
        deletions.push(
          cluster.deletePod(
            old,
            propagationMs,
            r.terminationGracePeriodSeconds,
            r.livenessPath,
          ),
        );
      }
      // The next update starts from pods that all serve.
      await Promise.all(deletions);
    }
    // A last moment of load on the new pods alone.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const clients: KubeRun["clients"] = [];
    for (const [i, load] of loads.entries()) {
      load.kill("SIGTERM");
      const status = await load.status;
      if (status.code !== 0) throw new Error(`load failed\n${load.output()}`);
      const result = JSON.parse(load.stdout.trim().split("\n").pop()!);
      const failed = Object.values(result.failures as Record<string, number>)
        .reduce((a, b) => a + b, 0);
      clients.push({
        ...CLIENTS[i],
        sent: result.sent,
        ok: result.ok,
        failures: result.failures,
        failed,
        samples: result.samples,
        // The pods that answered it (the POST answer is a digest, not a pid).
        pods: CLIENTS[i].post ? 0 : result.pids.length,
      });
    }
    return {
      propagationMs,
      drainDelay: env.GRACEFUL_DRAIN_DELAY ?? r.env.GRACEFUL_DRAIN_DELAY,
      deleted: deleted.length,
      exits: deleted.map((pod) => Math.round(pod.exitMs ?? -1)),
      killed: deleted.filter((pod) => pod.killed).length,
      codes: deleted.map((pod) => pod.code ?? -1),
      clients,
      pids: cluster.pods.map((pod) => pod.proc.pid),
      logs: deleted.map((pod) => pod.proc.stderr),
      liveness: deleted.map((pod) => pod.liveness),
      startups: cluster.pods.slice(r.replicas).map((pod) => ({
        answers: pod.startup,
        ms: Math.round(pod.startedMs),
      })),
    };
  } finally {
    for (const load of loads) {
      load.kill("SIGKILL");
      await load.status;
    }
    await cluster.dispose();
  }
}
