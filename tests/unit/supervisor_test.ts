/**
 * The supervisor's restart and rollback (supervisor/_supervisor.ts) over
 * fake workers: no process starts. Each fake follows a plan (ready, or exit
 * at start, or die during the old worker's pre-drain) and answers the
 * supervisor's commands as a worker does (a drained worker reports quiet,
 * then exits once committed). The lines are the supervisor's own.
 */
import assert from "node:assert/strict";
import { Supervisor } from "../../supervisor/_supervisor.ts";
import { Worker } from "../../supervisor/_worker.ts";
import type { Command } from "../../supervisor/_protocol.ts";

/** What a fake worker does: become ready, or exit with a code. */
type Plan =
  | "ready"
  | { exitAtStart: number }
  | { dieDuringPreDrain: number };

let nextPid = 10_000;

class FakeWorker {
  readonly started = performance.now();
  readonly exited: Promise<Deno.CommandStatus>;
  readonly ready: Promise<number>;
  readonly child = { pid: nextPid++ };
  readonly sent: Command[] = [];
  readonly lastLines: string[] = [];
  serverPid: number | undefined;
  retiring = false;
  lastAlive = performance.now();
  #exit = Promise.withResolvers<Deno.CommandStatus>();
  #gone = false;
  #onQuiet: (() => void) | undefined;

  constructor(readonly generation: number, readonly plan: Plan) {
    this.exited = this.#exit.promise;
    const ready = Promise.withResolvers<number>();
    this.ready = ready.promise;
    this.ready.catch(() => {});
    this.exited.then(() => ready.reject(new Error("exited")));
    setTimeout(() => {
      if (plan === "ready" || "dieDuringPreDrain" in plan) {
        ready.resolve(this.child.pid);
      } else this.exit(plan.exitAtStart);
    }, 5);
  }

  get gone(): boolean {
    return this.#gone;
  }
  get pid(): number {
    return this.child.pid;
  }

  exit(code: number, signal: Deno.Signal | null = null): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#exit.resolve({ success: code === 0, code, signal });
  }

  whenQuiet(): Promise<"quiet"> {
    return new Promise((resolve) => this.#onQuiet = () => resolve("quiet"));
  }

  send(command: Command): void {
    if (this.#gone) return;
    this.sent.push(command);
    if (command.kind === "drain") {
      // Quiet at once, as an idle old worker is; exits once committed.
      setTimeout(() => this.#onQuiet?.(), 5);
    } else if (command.kind === "commit" || command.kind === "stop") {
      setTimeout(() => this.exit(0), 5);
    }
  }

  kill(signal: Deno.Signal): void {
    this.exit(128 + (signal === "SIGKILL" ? 9 : 15), signal);
  }

  /** The kinds of commands it got, in order (`hello`, `ping` left out). */
  get commands(): string[] {
    return this.sent.map((c) => c.kind).filter((k) => k !== "ping");
  }
}
// The real worker's logic over the fake's process: readiness, the take-over
// (rollback window), retirement, resumption and the kill.
for (
  const name of [
    "readyWithin",
    "takeOver",
    "retire",
    "resume",
    "killNow",
  ] as const
) {
  Object.defineProperty(FakeWorker.prototype, name, {
    value: Worker.prototype[name],
  });
}

/**
 * A supervisor of `workers` fakes whose plans come from `plans` (per
 * generation, in spawn order; "ready" when not given). A fake with
 * `dieDuringPreDrain` dies that many ms after the old worker is told to
 * drain.
 */
function harness(workers: number, plans: Record<number, Plan[]> = {}) {
  const spawned: FakeWorker[] = [];
  const lines: string[] = [];
  const original = Worker.spawn;
  Worker.spawn = (_command: string[], generation: number) => {
    const queue = plans[generation] ??= [];
    const plan = queue.shift() ?? "ready";
    const fake = new FakeWorker(generation, plan);
    if (typeof plan === "object" && "dieDuringPreDrain" in plan) {
      fake.ready.then(() =>
        setTimeout(() => fake.exit(1), plan.dieDuringPreDrain)
      );
    }
    spawned.push(fake);
    return fake as unknown as Worker;
  };
  const supervisor = new Supervisor({
    command: ["fake-worker"],
    workers,
    preDrain: 1000,
    rollbackWindow: 50,
    readyTimeout: 2000,
    logger: {
      info: (line) => lines.push(line),
      warn: (line) => lines.push(line),
      error: (line) => lines.push(line),
    },
  });
  return {
    supervisor,
    spawned,
    lines,
    of: (generation: number) =>
      spawned.filter((w) => w.generation === generation),
    async [Symbol.asyncDispose]() {
      await supervisor.stop();
      Worker.spawn = original;
    },
  };
}

const names = (workers: FakeWorker[]) =>
  workers.map((w) => `pid ${w.pid} (generation ${w.generation})`).join(", ");

for (const workers of [1, 2, 3]) {
  Deno.test(`supervisor (fake workers): ${workers} worker(s), a restart starts every new one, then replaces the slots in turn (each old one steered, drained, committed, gone; one unsteer at the end); the line names the new pids`, async () => {
    await using h = harness(workers);
    await h.supervisor.start();
    const old = h.of(1);
    assert.equal(await h.supervisor.restart("test"), true);
    const fresh = h.of(2);
    assert.equal(h.supervisor.generation, 2);
    assert.deepEqual(h.supervisor.pids, fresh.map((w) => w.pid));
    for (const w of old) {
      assert.ok(w.gone);
      assert.deepEqual(w.commands, ["steer", "drain", "commit"]);
    }
    // Each slot's steer replaces the program before it: one unsteer, from
    // the last slot's new worker, once every old worker has gone.
    assert.deepEqual(
      fresh.map((w) => w.commands.filter((k) => k === "unsteer").length),
      fresh.map((_, i) => i === workers - 1 ? 1 : 0),
    );
    assert.ok(
      h.lines.some((l) =>
        l.startsWith("generation 2 serving in") &&
        l.endsWith(`(pids ${fresh.map((w) => w.pid).join(", ")})`)
      ),
      h.lines.join("\n"),
    );
  });

  Deno.test(`supervisor (fake workers): ${workers} worker(s), the last new one exits at start: all or nothing, no old worker retires, the new ones already ready are stopped; the line names every old pid`, async () => {
    await using h = harness(workers, {
      2: [...Array(workers - 1).fill("ready"), { exitAtStart: 3 }],
    });
    await h.supervisor.start();
    const old = h.of(1);
    assert.equal(await h.supervisor.restart("test"), false);
    assert.equal(h.supervisor.generation, 1);
    assert.deepEqual(h.supervisor.pids, old.map((w) => w.pid));
    for (const w of old) {
      assert.ok(!w.gone);
      assert.deepEqual(w.commands, [], "not steered, not drained");
    }
    const fresh = h.of(2);
    assert.equal(fresh.length, workers);
    for (const w of fresh.slice(0, -1)) {
      assert.ok(w.gone);
      assert.deepEqual(w.commands, ["stop"]);
    }
    const failed = fresh[workers - 1];
    const line = h.lines.find((l) => l.startsWith("generation 2 failed"));
    assert.equal(
      line,
      `generation 2 failed, rolled back: worker pid ${failed.pid} exited with code 3 before it was ready; serving: ${
        names(old)
      }; waiting for the next restart signal`,
    );
  });

  Deno.test(`supervisor (fake workers): ${workers} worker(s), the first new one dies during the old one's pre-drain: the old one resumes and keeps serving; the new ones of later slots are stopped`, async () => {
    await using h = harness(workers, { 2: [{ dieDuringPreDrain: 10 }] });
    // The rollback window must outlast the death: the quiet report comes
    // at 5 ms, the commit not before 50.
    await h.supervisor.start();
    const old = h.of(1);
    assert.equal(await h.supervisor.restart("test"), false);
    assert.deepEqual(h.supervisor.pids, old.map((w) => w.pid));
    // Steered away, told to drain, then back: serving and steered no more.
    assert.deepEqual(old[0].commands, ["steer", "drain", "resume", "unsteer"]);
    for (const w of old) assert.ok(!w.gone);
    // Every new one was started (all were ready before the first handover);
    // those of the later slots are stopped.
    assert.equal(h.of(2).length, workers);
    for (const w of h.of(2).slice(1)) assert.deepEqual(w.commands, ["stop"]);
    const line = h.lines.find((l) => l.startsWith("generation 2 failed"));
    assert.match(line ?? "", /during the old worker's pre-drain/);
    assert.ok(line?.includes(`serving: ${names(old)};`), line);
  });
}

Deno.test("supervisor (fake workers): stop drains every worker once and exits 0; a worker that exits 124 makes the supervisor's code 124, named", async () => {
  const h = harness(2);
  await h.supervisor.start();
  const [first, second] = h.of(1);
  // The second one's drain will cut a request.
  second.send = (command) => {
    second.sent.push(command);
    if (command.kind === "stop") setTimeout(() => second.exit(124), 5);
  };
  await h.supervisor.stop("test");
  assert.deepEqual(first.commands.filter((k) => k === "stop"), ["stop"]);
  assert.equal(h.supervisor.exitCode, 124);
  assert.ok(
    h.lines.some((l) => l.includes(`pid ${second.pid}`) && /124/.test(l)),
    h.lines.join("\n"),
  );
  await h[Symbol.asyncDispose]();
});
