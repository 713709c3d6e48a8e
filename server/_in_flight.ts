/**
 * The list of requests whose handler is still running, for one server.
 *
 * A doubly linked list threaded through the records themselves: adding and
 * removing a request costs a few field writes and no hashing, where a `Map`
 * keyed by the request cost ~2 % of a small request's server CPU (measured
 * with `deno task bench --only=overhead`). It does not look records up by
 * request: that is the job of whoever needs it, for the few that need it.
 */

/** A record that can be on an {@linkcode InFlight} list. */
export interface Linked<T> {
  prev?: T;
  next?: T;
  /** True while the record is on a list. */
  listed?: boolean;
}

/** The records in flight, newest first. */
export class InFlight<T extends Linked<T>> {
  #head: T | undefined;
  /** How many records are on the list. */
  size = 0;

  /** Puts `record` on the list (it must not be on one). */
  add(record: T): void {
    record.prev = undefined;
    record.next = this.#head;
    if (this.#head) this.#head.prev = record;
    this.#head = record;
    record.listed = true;
    this.size++;
  }

  /** Takes `record` off the list; false if it was not on it. */
  delete(record: T): boolean {
    if (!record.listed) return false;
    const { prev, next } = record;
    if (prev) prev.next = next;
    else this.#head = next;
    if (next) next.prev = prev;
    record.prev = record.next = undefined;
    record.listed = false;
    this.size--;
    return true;
  }

  /** A copy of the list, newest first (safe to change the list meanwhile). */
  toArray(): T[] {
    const all: T[] = [];
    for (let at = this.#head; at; at = at.next) all.push(at);
    return all;
  }
}
