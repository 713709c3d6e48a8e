/**
 * A port's `SO_REUSEPORT` group as the kernel orders it, which steering
 * (`_steer.ts`) names by index: members join at the end when they report
 * ready; one that leaves is replaced in its slot by the last. The
 * supervisor serializes joins and leaves (an old worker exits before the
 * next one starts), so the order holds; if it ever did not, steering
 * degrades to the kernel's hash, never to a closed socket.
 */

/** The members of one reuseport group, in the kernel's order. */
export class Group<T> {
  #members: T[] = [];

  /** How many members the group has. */
  get size(): number {
    return this.#members.length;
  }

  /** `member`'s socket joined the group (it listens now). */
  join(member: T): void {
    this.#members.push(member);
  }

  /** `member` left: the kernel moves the last socket into its slot. */
  leave(member: T): void {
    const at = this.#members.indexOf(member);
    if (at < 0) return;
    const last = this.#members.pop()!;
    if (at < this.#members.length) this.#members[at] = last;
  }

  /**
   * The `steer` command's arguments that send `member`'s new connections
   * to the rest of the group; `undefined` if there is no rest.
   */
  awayFrom(member: T): { exclude: number; count: number } | undefined {
    const at = this.#members.indexOf(member);
    return at < 0 || this.size < 2
      ? undefined
      : { exclude: at, count: this.size };
  }
}
