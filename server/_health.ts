/**
 * The probe paths of one server: the health path, for readiness (200 `ok`
 * while serving and ready; 503 `not ready` while the app says so, 503
 * `draining` while draining), and the liveness path (200 `alive` while the
 * process lives, draining included). It owns the app's readiness.
 */
import { pathOf, withClose } from "./_responses.ts";

const TEXT = { "content-type": "text/plain" };

/** Answers the probe paths of one server. */
export class Health {
  readonly #healthPath: string | undefined;
  readonly #livenessPath: string | undefined;
  /** The app's own say (`setReady`), and whether `readyWhen` resolved. */
  #wanted = true;
  #startedUp = true;
  #refused = Promise.withResolvers<number>();
  #refusedOnce = false;

  constructor(healthPath?: string, livenessPath?: string) {
    this.#healthPath = healthPath;
    this.#livenessPath = livenessPath;
  }

  /** True when a health path is set. */
  get hasHealthPath(): boolean {
    return this.#healthPath !== undefined;
  }

  /** Resolves with `performance.now()` of the health path's first 503. */
  get refused(): Promise<number> {
    return this.#refused.promise;
  }

  /** False while the app says it is not ready (`readyWhen`, `setReady`). */
  get ready(): boolean {
    return this.#wanted && this.#startedUp;
  }

  /** The app's say at run time (`setReady`); `readyWhen` still counts. */
  setReady(ready: boolean): void {
    this.#wanted = ready;
  }

  /** Not ready until `work` (`readyWhen`) resolves; never if it rejects. */
  startUp(work: PromiseLike<unknown>): Promise<unknown> {
    this.#startedUp = false;
    return Promise.resolve(work).then(() => this.#startedUp = true);
  }

  /**
   * The answer to `request` if it asks a probe path, else `undefined`.
   * `stopping`: draining or pre-draining; `draining`: draining proper.
   * `refuse` writes the drain's 503 (with `Connection: close`).
   */
  answer(
    request: Request,
    stopping: boolean,
    draining: boolean,
    refuse: (request: Request, text: string) => Response,
  ): Response | undefined {
    const path = pathOf(request.url);
    if (path === this.#livenessPath) {
      const alive = new Response("alive\n", { headers: TEXT });
      return draining ? withClose(request, alive) : alive;
    }
    if (path !== this.#healthPath) return undefined;
    if (!stopping) {
      return this.ready
        ? new Response("ok\n", { headers: TEXT })
        : new Response("not ready\n", { status: 503, headers: TEXT });
    }
    if (!this.#refusedOnce) {
      this.#refusedOnce = true;
      this.#refused.resolve(performance.now());
    }
    return refuse(request, "draining\n");
  }
}
