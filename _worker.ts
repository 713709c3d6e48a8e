/**
 * One worker process of the supervisor: spawns the command, forwards its
 * stdout and stderr (keeping the last stderr lines for error reports), and
 * exposes its exit and its ready report as promises.
 */
import type { ControlLink, ControlServer } from "./_control.ts";

/** How many stderr lines a worker keeps for a rollback report. */
const KEEP_LINES = 10;

let nextId = 0;

/** A running worker process. */
export class Worker {
  readonly id: string;
  readonly generation: number;
  readonly child: Deno.ChildProcess;
  readonly started: number = performance.now();
  /** Resolves with the exit status when the process ends. */
  readonly exited: Promise<Deno.CommandStatus>;
  /** Resolves when the worker reports ready over the control channel. */
  readonly ready: Promise<ControlLink>;
  link: ControlLink | undefined;
  /** Set when the supervisor asked it to drain or stop. */
  retiring = false;
  #lines: string[] = [];

  constructor(command: string[], generation: number, control: ControlServer) {
    this.id = `${Deno.pid}-${++nextId}`;
    this.generation = generation;
    this.ready = control.waitReady(this.id).then((link) => (this.link = link));
    this.child = new Deno.Command(command[0], {
      args: command.slice(1),
      env: control.envFor(this.id),
      stdin: "null",
      stdout: "inherit",
      stderr: "piped",
    }).spawn();
    const forwarded = this.#forward(this.child.stderr);
    this.exited = Promise.all([this.child.status, forwarded]).then(([s]) => {
      control.forget(this.id);
      this.link?.close();
      return s;
    });
  }

  /** The pid to report: the server's own if it said so, else the child's. */
  get pid(): number {
    return this.link?.pid ?? this.child.pid;
  }

  /** The last lines the worker wrote to stderr. */
  get lastLines(): string[] {
    return this.#lines;
  }

  /** Sends a signal to the child and, behind a wrapper, to the server. */
  kill(signal: Deno.Signal): void {
    for (const pid of new Set([this.child.pid, this.link?.pid])) {
      if (pid === undefined) continue;
      try {
        Deno.kill(pid, signal);
      } catch {
        // gone already
      }
    }
  }

  async #forward(stream: ReadableStream<Uint8Array>) {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of stream) {
      await Deno.stderr.write(chunk);
      partial += decoder.decode(chunk, { stream: true });
      const lines = partial.split("\n");
      partial = lines.pop()!;
      this.#lines.push(...lines);
      if (this.#lines.length > KEEP_LINES) {
        this.#lines.splice(0, this.#lines.length - KEEP_LINES);
      }
    }
    if (partial) this.#lines.push(partial);
  }
}
