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

type Libc = Deno.DynamicLibrary<{
  getsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "buffer"];
    result: "i32";
  };
  getsockname: { parameters: ["i32", "buffer", "buffer"]; result: "i32" };
  shutdown: { parameters: ["i32", "i32"]; result: "i32" };
}>;

const SOL_SOCKET = 1;
const SO_ACCEPTCONN = 30;
const SHUT_RD = 0;
const MAX_FD = 4096;

let libc: Libc | null | undefined;

function open(): Libc | null {
  if (Deno.build.os !== "linux") return null;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return null;
    }
  } catch {
    return null;
  }
  for (
    const name of [
      "libc.so.6",
      "libc.musl-x86_64.so.1",
      "libc.musl-aarch64.so.1",
    ]
  ) {
    try {
      return Deno.dlopen(name, {
        getsockopt: {
          parameters: ["i32", "i32", "i32", "buffer", "buffer"],
          result: "i32",
        },
        getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
        shutdown: { parameters: ["i32", "i32"], result: "i32" },
      });
    } catch {
      // try the next name
    }
  }
  return null;
}

/** True when listeners can be detached (Linux, `--allow-ffi`, libc found). */
export function canDetach(): boolean {
  libc ??= open();
  return libc !== null;
}

const AF_INET = 2;
const AF_INET6 = 10;

/** File descriptors of listening TCP sockets of `family` bound to `port`. */
function listeners(lib: Libc, port: number, family: number): number[] {
  const found: number[] = [];
  const value = new Int32Array(1);
  const valueLength = new Uint32Array(1);
  const address = new Uint8Array(128);
  const addressLength = new Uint32Array(1);
  for (let fd = 3; fd < MAX_FD; fd++) {
    valueLength[0] = 4;
    if (
      lib.symbols.getsockopt(
        fd,
        SOL_SOCKET,
        SO_ACCEPTCONN,
        value,
        valueLength,
      ) !== 0
    ) continue;
    if (value[0] !== 1) continue;
    addressLength[0] = address.length;
    if (lib.symbols.getsockname(fd, address, addressLength) !== 0) continue;
    // sa_family (host order, little-endian on Linux's x86-64 and arm64) at
    // 0..1; sockaddr_in and sockaddr_in6 both keep the port, big-endian, at
    // 2..3.
    if ((address[0] | (address[1] << 8)) !== family) continue;
    if (((address[2] << 8) | address[3]) === port) found.push(fd);
  }
  return found;
}

/**
 * Shuts down the listening sockets on `port` (read side), so the kernel
 * stops handing them connections. Returns how many were detached; 0 when
 * unsupported. Deno's own `shutdown()` must still be called afterwards.
 */
export function detachListeners(addr: Deno.NetAddr): number {
  if (!canDetach()) return 0;
  const family = addr.hostname.includes(":") ? AF_INET6 : AF_INET;
  const fds = listeners(libc!, addr.port, family);
  if (fds.length === 0) return 0;
  let detached = 0;
  for (const fd of fds) {
    if (libc!.symbols.shutdown(fd, SHUT_RD) === 0) detached++;
  }
  return detached;
}
