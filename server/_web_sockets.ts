/**
 * The WebSockets a server upgraded, until they are closed: the drain lets
 * those the app is closing (its `info.signal` listener called `close()`)
 * finish their closing handshake before Deno's `shutdown()`, which would
 * otherwise close them again with 1001 and the client see an unclean close
 * (`wasClean` false) instead of the app's code.
 */
import { upgradedSocket } from "../lifecycle/_deno.ts";

/** Open WebSockets of one server (owned by `Traffic`). */
export class WebSockets {
  #open = new Set<WebSocket>();
  /** A 101 whose socket could not be found (Deno's slot missing). */
  #untracked = false;
  /** Resolved once no socket is closing (made when first asked for). */
  #settled: PromiseWithResolvers<void> | undefined;

  /** Notes the WebSocket of `res`, if it is a 101 of `Deno.upgradeWebSocket`. */
  watch(res: Response): void {
    const socket = upgradedSocket(res);
    if (!socket) this.#untracked = true;
    if (!socket || socket.readyState === WebSocket.CLOSED) return;
    this.#open.add(socket);
    socket.addEventListener("close", () => {
      this.#open.delete(socket);
      if (this.#settled && this.closing === 0) {
        this.#settled.resolve();
        this.#settled = undefined;
      }
    }, { once: true });
  }

  /** True if a WebSocket may be open (one that cannot be seen counts). */
  get mayBeOpen(): boolean {
    return this.#untracked || this.#open.size > 0;
  }

  /** WebSockets whose closing handshake has started and not ended. */
  get closing(): number {
    let n = 0;
    for (const socket of this.#open) {
      if (socket.readyState === WebSocket.CLOSING) n++;
    }
    return n;
  }

  /**
   * Resolves once no WebSocket is closing (the caller bounds the wait). It
   * closes none, and does not wait for sockets the app left open (Deno's
   * `shutdown()` closes those with 1001).
   */
  settled(): Promise<void> {
    if (this.closing === 0) return Promise.resolve();
    this.#settled ??= Promise.withResolvers<void>();
    return this.#settled.promise;
  }
}
