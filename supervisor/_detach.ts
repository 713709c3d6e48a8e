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

import { libc, listeningFds } from "./_sockets.ts";

const SHUT_RD = 0;

/**
 * Shuts down the listening sockets on `addr` (read side), so the kernel
 * stops handing them connections. Returns how many were detached; 0 when
 * unsupported. Deno's own `shutdown()` must still be called afterwards.
 */
export function detachListeners(addr: Deno.NetAddr): number {
  const lib = libc();
  if (!lib) return 0;
  let detached = 0;
  for (const fd of listeningFds(addr)) {
    if (lib.symbols.shutdown(fd, SHUT_RD) === 0) detached++;
  }
  return detached;
}
