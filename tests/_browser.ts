/**
 * Headless Chromium (Debian's package) driven over the DevTools protocol
 * with Deno's own WebSocket: open a page, read a value from it. No download,
 * no driver: `--remote-debugging-port=0` prints the browser's address on
 * stderr, `/json/list` names the page's socket, `Runtime.evaluate` reads.
 */
import { Proc } from "./_helpers.ts";

/** The Chromium binary, or undefined if none is installed. */
export const CHROMIUM: string | undefined = [
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
].find((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});

/** A browser with one page open. */
export class Browser implements AsyncDisposable {
  #proc: Proc;
  #profile: string;
  #socket: WebSocket;
  #id = 0;
  #pending = new Map<number, (message: Record<string, unknown>) => void>();

  private constructor(proc: Proc, profile: string, socket: WebSocket) {
    this.#proc = proc;
    this.#profile = profile;
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      this.#pending.get(message.id)?.(message);
      this.#pending.delete(message.id);
    };
  }

  /** Starts Chromium on `url` and connects to the page. */
  static async open(url: string): Promise<Browser> {
    if (!CHROMIUM) throw new Error("no Chromium installed");
    const profile = await Deno.makeTempDir({ prefix: "graceful-chromium-" });
    // The flags that keep Chromium off the (closed) network and quiet.
    // A process group of its own: its renderers and zygote end with it.
    const proc = new Proc([], {}, [
      "setsid",
      CHROMIUM,
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
      `--user-data-dir=${profile}`,
      "--remote-debugging-address=127.0.0.1",
      "--remote-debugging-port=0",
      url,
    ], true);
    try {
      const m = await proc.waitFor(
        /DevTools listening on ws:\/\/127\.0\.0\.1:(\d+)\//,
        60_000,
      );
      const port = m[1];
      let page: { type: string; url: string; webSocketDebuggerUrl: string };
      for (;;) {
        const list = await (await fetch(`http://127.0.0.1:${port}/json/list`))
          .json();
        page = list.find((t: { type: string }) => t.type === "page");
        if (page) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const socket = new WebSocket(page.webSocketDebuggerUrl);
      await new Promise((resolve, reject) => {
        socket.onopen = resolve;
        socket.onerror = () => reject(new Error("DevTools socket failed"));
      });
      return new Browser(proc, profile, socket);
    } catch (error) {
      proc.kill("SIGKILL");
      await proc.status;
      await Deno.remove(profile, { recursive: true }).catch(() => {});
      throw error;
    }
  }

  /** Evaluates `expression` in the page; returns its value (JSON-able). */
  async evaluate<T>(expression: string): Promise<T> {
    const id = ++this.#id;
    const reply = new Promise<Record<string, unknown>>((resolve) =>
      this.#pending.set(id, resolve)
    );
    this.#socket.send(JSON.stringify({
      id,
      method: "Runtime.evaluate",
      params: { expression, returnByValue: true },
    }));
    const message = await reply;
    const result = message.result as
      | { result?: { value?: T }; exceptionDetails?: unknown }
      | undefined;
    if (!result || result.exceptionDetails) {
      throw new Error(`evaluate failed: ${JSON.stringify(message)}`);
    }
    return result.result?.value as T;
  }

  /** Evaluates `expression` until it is truthy; returns it. */
  async until<T>(expression: string, ms = 20_000): Promise<T> {
    const deadline = performance.now() + ms;
    for (;;) {
      const value = await this.evaluate<T>(expression);
      if (value) return value;
      if (performance.now() > deadline) {
        throw new Error(
          `timed out waiting for ${expression}: ${
            JSON.stringify(await this.evaluate("window.state"))
          }`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#socket.close();
    this.#proc.kill("SIGKILL");
    await this.#proc.status;
    await Deno.remove(this.#profile, { recursive: true }).catch(() => {});
  }
}
