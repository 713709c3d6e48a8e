/**
 * Detaches a listening socket from its SO_REUSEPORT group before Deno's
 * graceful shutdown, so that a restart loses no fresh connection.
 *
 * Why: `server.shutdown()` closes the listener *and* at once closes every
 * connection that has not delivered a request yet (hyper treats them as
 * idle). A client that has just connected to the old worker then sees its
 * connection closed before any response. Calling `shutdown(2)` on the
 * listening socket first takes it out of the port's group (with
 * `net.ipv4.tcp_migrate_req=1` its queue moves to the new worker); the
 * connections it already accepted get time to send their request, and only
 * then does Deno's drain start.
 *
 * Needs `--allow-ffi` and Linux with glibc or musl; does nothing otherwise.
 * Deno's accept loop reports the detached socket as an `EINVAL` rejection
 * of `finished`; the server treats that one error as a normal end.
 */

import {
  attachFilter,
  BPF_RET_K,
  insn,
  libc,
  listeningFds,
  stillListening,
  TCP_LISTEN,
  tcpInfo,
} from "./_sockets.ts";

const SHUT_RD = 0;
const SO_ATTACH_FILTER = 26;
const BPF_LD_B_ABS = 0x30;
const BPF_ALU_AND_K = 0x54;
const BPF_JMP_JEQ_K = 0x15;
const TCP_SYN = 0x02;
const TCP_ACK = 0x10;

/**
 * A socket filter that drops a connection's first segment (SYN without
 * ACK) and keeps every other: a socket filter sees the TCP header at 0.
 */
const DROP_SYN = (() => {
  const filter = new Uint8Array(5 * 8);
  const view = new DataView(filter.buffer);
  insn(view, 0, BPF_LD_B_ABS, 0, 0, 13); // A = the flags byte
  insn(view, 1, BPF_ALU_AND_K, 0, 0, TCP_SYN | TCP_ACK); // A &= SYN|ACK
  insn(view, 2, BPF_JMP_JEQ_K, 1, 0, TCP_SYN); // A == SYN: to 4
  insn(view, 3, BPF_RET_K, 0, 0, 0xffffffff); // keep it
  insn(view, 4, BPF_RET_K, 0, 0, 0); // drop it
  return filter;
})();

/**
 * One server's listening sockets, found once (a scan of the process's
 * descriptors: about 5 ms, done at start, not at the signal) and checked
 * again (a few µs) before they are shut.
 */
export class Listeners {
  #addr: Deno.NetAddr;
  #fds: number[] | undefined;

  constructor(addr: Deno.NetAddr) {
    this.#addr = addr;
  }

  /** True when descriptors were found: {@linkcode detach} can shut them. */
  get found(): boolean {
    return (this.#fds?.length ?? 0) > 0;
  }

  /** Finds the descriptors now, where libc is available (at start). */
  find(): void {
    if (this.#addr.transport !== "tcp") this.#fds = [];
    else if (libc()) this.#fds ??= listeningFds(this.#addr);
  }

  /**
   * Connections in the listeners' accept queues: shutting a listener resets
   * them (unless the kernel migrates them to a sibling). 0 if unknown.
   */
  queued(): number {
    const lib = libc();
    if (!lib || !this.#fds) return 0;
    let queued = 0;
    for (const fd of this.#fds) {
      // A descriptor reused since start is not this listener: not counted.
      const tcp = tcpInfo(lib, fd);
      if (tcp?.state === TCP_LISTEN) queued += tcp.queued;
    }
    return queued;
  }

  /**
   * Drops new connection attempts (their SYN) on the listeners, so that
   * their accept queues can empty before they are shut: connections keep
   * arriving while Deno accepts what is queued, and one still queued when
   * its listener is shut is reset after its client has sent its request. A
   * dropped SYN is sent again after about 1 s, and refused then: nothing
   * was sent. Returns how many listeners drop them; 0 when unsupported. It
   * does not stop a handshake already under way from completing.
   */
  dropNew(): number {
    const lib = libc();
    if (!lib || !this.#fds) return 0;
    let dropping = 0;
    for (const fd of this.#fds) {
      if (!stillListening(fd, this.#addr)) continue;
      if (attachFilter(lib, fd, SO_ATTACH_FILTER, DROP_SYN)) dropping++;
    }
    return dropping;
  }

  /**
   * Shuts down the listening sockets (read side), so the kernel stops
   * handing them connections. Returns how many; 0 when unsupported. Deno's
   * own `shutdown()` must still be called afterwards.
   */
  detach(): number {
    const lib = libc();
    if (!lib || this.#addr.transport !== "tcp") return 0;
    this.find();
    let fds = this.#fds!.filter((fd) => stillListening(fd, this.#addr));
    // A descriptor found at start that is no longer this listener: look again.
    if (fds.length < this.#fds!.length) fds = listeningFds(this.#addr);
    let detached = 0;
    for (const fd of fds) {
      if (lib.symbols.shutdown(fd, SHUT_RD) === 0) detached++;
    }
    this.#fds = [];
    return detached;
  }
}
