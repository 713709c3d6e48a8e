/**
 * Which connections of a draining (or pre-draining) server can no longer
 * carry a request unannounced: those told `Connection: close`, and those
 * busy with a request or a stream (whose response will say it). The
 * census (`supervisor/_census.ts`) compares them with the open ones.
 */
import { keyOf } from "../supervisor/_census.ts";

/** The connections told to go away, by peer (`keyOf`). */
export class Announced {
  #told = new Set<string>();

  /** `peer` was told `Connection: close` (or its stream ended by the drain). */
  tell(peer: Deno.NetAddr | undefined): void {
    const key = peer && keyOf(peer);
    if (key) this.#told.add(key);
  }

  /** Forgets every one (a pre-drain rolled back). */
  clear(): void {
    this.#told.clear();
  }

  /** The told peers plus the `busy` ones (requests and streams in flight). */
  peers(busy: Iterable<Deno.NetAddr | undefined>): Set<string> {
    const all = new Set(this.#told);
    for (const peer of busy) {
      const key = peer && keyOf(peer);
      if (key) all.add(key);
    }
    return all;
  }
}
