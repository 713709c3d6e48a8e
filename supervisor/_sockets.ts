/**
 * The few libc calls the restart handoff needs on Linux, through FFI: find
 * this process's listening sockets for an address (Deno does not expose
 * their file descriptors) and act on them. Opened once, on first use, only
 * with `--allow-ffi`; `null` elsewhere.
 */

const SYMBOLS = {
  getsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "buffer"],
    result: "i32",
  },
  setsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "u32"],
    result: "i32",
  },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // Variadic in C; called only as fcntl(fd, F_GETFD), whose integer
  // arguments pass the same way on x86-64 and arm64 Linux.
  fcntl: { parameters: ["i32", "i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  // /proc/self/fd, listed without Deno's read permission.
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
} as const;

/** The libc functions used here. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>;

let lib: Libc | null | undefined;

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
      return Deno.dlopen(name, SYMBOLS);
    } catch {
      // try the next name
    }
  }
  return null;
}

/** libc, or `null` without `--allow-ffi`, off Linux, or if none is found. */
export function libc(): Libc | null {
  lib ??= open();
  return lib;
}

/** `SOL_SOCKET`: the level of socket options. */
export const SOL_SOCKET = 1;

/** Classic BPF's "return k" (`BPF_RET|BPF_K`), shared by the programs. */
export const BPF_RET_K = 0x06;

/** One classic BPF instruction: `struct sock_filter` (8 bytes) at `at`. */
export function insn(
  view: DataView,
  at: number,
  code: number,
  jt: number,
  jf: number,
  k: number,
) {
  view.setUint16(at * 8, code, true);
  view.setUint8(at * 8 + 2, jt);
  view.setUint8(at * 8 + 3, jf);
  view.setUint32(at * 8 + 4, k >>> 0, true);
}

/** Attaches the classic BPF program `filter` to `fd` as `option`. */
export function attachFilter(
  lib: Libc,
  fd: number,
  option: number,
  filter: Uint8Array,
): boolean {
  // struct sock_fprog: u16 length, then (64-bit) a pointer to the filter.
  const program = new Uint8Array(16);
  const view = new DataView(program.buffer);
  view.setUint16(0, filter.length / 8, true);
  view.setBigUint64(
    8,
    // The buffer, not the view: Deno's TypeScript for `of()` changed between
    // releases, and a fresh array starts at its buffer's first byte.
    BigInt(
      Deno.UnsafePointer.value(
        Deno.UnsafePointer.of(filter.buffer as ArrayBuffer),
      ),
    ),
    true,
  );
  return lib.symbols.setsockopt(fd, SOL_SOCKET, option, program, 16) === 0;
}
const SO_ACCEPTCONN = 30;
const F_GETFD = 1;
const AF_INET = 2;
const AF_INET6 = 10;
/** Descriptors scanned at least; further while open ones keep turning up. */
const MIN_SCAN = 4096;
/** Closed descriptors in a row after which the scan stops (past MIN_SCAN). */
const GAP = 1024;
/** Never scans past this descriptor. */
const MAX_SCAN = 1 << 20;

/** One of this process's sockets on a port (see {@linkcode portSockets}). */
export interface PortSocket {
  fd: number;
  /** True for a listener (`SO_ACCEPTCONN`), false for a connection. */
  listening: boolean;
}

/**
 * This process's sockets bound to `addr`'s port in its address family,
 * listeners and the connections they accepted (which share the port), found
 * among the process's open descriptors (Deno does not expose them). Nothing
 * without libc.
 */
export function* portSockets(addr: Deno.NetAddr): Generator<PortSocket> {
  const lib = libc();
  if (!lib) return;
  for (const fd of openFds(lib)) {
    const socket = socketOn(lib, fd, addr);
    if (socket) yield socket;
  }
}

const PROC_FDS = new TextEncoder().encode("/proc/self/fd\0");
/** Where `d_name` starts in glibc's and musl's 64-bit `struct dirent`. */
const D_NAME = 19;

/**
 * This process's open descriptors from 3: listed from `/proc/self/fd` (one
 * call per open descriptor: ~20 µs for 20), or where that cannot be opened,
 * probed one by one (at least the first 4 096, further while open ones keep
 * turning up: ~6 ms).
 */
export function openFds(lib: Libc): number[] {
  const fds: number[] = [];
  const dir = lib.symbols.opendir(PROC_FDS);
  if (dir !== null) {
    for (let entry; (entry = lib.symbols.readdir(dir)) !== null;) {
      const fd = Number(new Deno.UnsafePointerView(entry).getCString(D_NAME));
      if (fd >= 3) fds.push(fd); // (also the listing's own: not a socket)
    }
    lib.symbols.closedir(dir);
    return fds;
  }
  let limit = MIN_SCAN;
  for (let fd = 3; fd < limit && fd < MAX_SCAN; fd++) {
    if (lib.symbols.fcntl(fd, F_GETFD) < 0) continue; // not open
    limit = Math.max(limit, fd + GAP);
    fds.push(fd);
  }
  return fds;
}

const value = new Int32Array(1);
const valueLength = new Uint32Array(1);
const address = new Uint8Array(128);
const addressLength = new Uint32Array(1);

/** `fd` as a socket on `addr`'s port and family, or `undefined`. */
function socketOn(
  lib: Libc,
  fd: number,
  addr: Deno.NetAddr,
): PortSocket | undefined {
  valueLength[0] = 4;
  if (
    lib.symbols.getsockopt(
      fd,
      SOL_SOCKET,
      SO_ACCEPTCONN,
      value,
      valueLength,
    ) !==
      0
  ) return undefined; // not a socket
  if (!onPort(lib, fd, addr)) return undefined;
  return { fd, listening: value[0] === 1 };
}

/** True if `fd` is a socket bound to `addr`'s port and address family. */
export function onPort(lib: Libc, fd: number, addr: Deno.NetAddr): boolean {
  const family = addr.hostname.includes(":") ? AF_INET6 : AF_INET;
  addressLength[0] = address.length;
  if (lib.symbols.getsockname(fd, address, addressLength) !== 0) return false;
  // sa_family (host order, little-endian on Linux's x86-64 and arm64) at
  // 0..1; sockaddr_in and sockaddr_in6 both keep the port, big-endian, at
  // 2..3.
  return (address[0] | (address[1] << 8)) === family &&
    ((address[2] << 8) | address[3]) === addr.port;
}

/** True if `fd` is still a listening socket on `addr`'s port (a few µs). */
export function stillListening(fd: number, addr: Deno.NetAddr): boolean {
  const lib = libc();
  return lib !== null && socketOn(lib, fd, addr)?.listening === true;
}

/**
 * File descriptors of this process's listening TCP sockets on `addr`'s
 * port and address family. Empty without libc.
 */
export function listeningFds(addr: Deno.NetAddr): number[] {
  const found: number[] = [];
  for (const socket of portSockets(addr)) {
    if (socket.listening) found.push(socket.fd);
  }
  return found;
}

const IPPROTO_TCP = 6;
const TCP_INFO = 11;
/** `tcpi_state` of an established connection. */
export const TCP_ESTABLISHED = 1;
/** `tcpi_state` of a listener. */
export const TCP_LISTEN = 10;
const info = new Uint8Array(32);
const infoView = new DataView(info.buffer);
const infoLength = new Uint32Array(1);

/**
 * `fd`'s TCP state (`tcpi_state`: {@linkcode TCP_ESTABLISHED},
 * {@linkcode TCP_LISTEN}, ...) and, for a
 * listener, its accept queue's length (`tcpi_unacked`); `undefined` if `fd`
 * is not a TCP socket.
 */
export function tcpInfo(
  lib: Libc,
  fd: number,
): { state: number; queued: number } | undefined {
  infoLength[0] = info.length;
  if (lib.symbols.getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, infoLength)) {
    return undefined;
  }
  return { state: info[0], queued: infoView.getUint32(24, true) };
}
