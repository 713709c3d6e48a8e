/**
 * A census of this process's TCP sockets on one port, through libc: how many
 * connections wait in the listeners' accept queues, and the peer of every
 * established connection accepted on the port. The restart's pre-drain uses
 * it to end early: once every accepted connection is busy with a request
 * (whose response says `Connection: close`) and nothing is queued, no client
 * can send a request that the drain would cut.
 *
 * It sees sockets, not requests: a connection that is half way through
 * sending a request head counts as idle (so the pre-drain waits for it), and
 * a SYN the kernel has not finished (the SYN queue) is not counted at all,
 * which is why the caller waits a little after steering before it believes
 * an empty queue. Needs `--allow-ffi` on Linux; `undefined` elsewhere.
 */
import {
  libc,
  onPort,
  openFds,
  TCP_ESTABLISHED,
  TCP_LISTEN,
  tcpInfo,
} from "./_sockets.ts";
const AF_INET = 2;
const AF_INET6 = 10;

/** What {@linkcode census} found. */
export interface Census {
  /** Connections in the port's accept queues, not yet accepted. */
  queued: number;
  /** Peers (see {@linkcode peerKey}) of the established accepted connections. */
  open: string[];
}

/**
 * Counts this process's sockets on `addr`'s port and family; `undefined`
 * without libc (no `--allow-ffi`, or not Linux).
 */
export function census(addr: Deno.NetAddr): Census | undefined {
  const lib = libc();
  if (!lib) return undefined;
  const address = new Uint8Array(128);
  const addressLength = new Uint32Array(1);
  const found: Census = { queued: 0, open: [] };
  // Three calls per descriptor on the port, one per other socket (~0.3 ms
  // for 20 connections: bench/README.md, "The census").
  for (const fd of openFds(lib)) {
    if (!onPort(lib, fd, addr)) continue;
    const tcp = tcpInfo(lib, fd); // undefined for a UDP socket on the port
    if (tcp?.state === TCP_LISTEN) {
      found.queued += tcp.queued;
      continue;
    }
    if (tcp?.state !== TCP_ESTABLISHED) continue;
    addressLength[0] = address.length;
    if (lib.symbols.getpeername(fd, address, addressLength) !== 0) continue;
    const peer = peerOf(address);
    if (peer !== undefined) found.open.push(peer);
  }
  return found;
}

/** The key of a `sockaddr_in` / `sockaddr_in6`, as {@linkcode peerKey}. */
function peerOf(address: Uint8Array): string | undefined {
  const port = (address[2] << 8) | address[3];
  const family = address[0] | (address[1] << 8);
  if (family === AF_INET) return `${address.subarray(4, 8).join(".")}|${port}`;
  if (family !== AF_INET6) return undefined;
  const bytes = address.subarray(8, 24);
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) &&
    bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return `${bytes.subarray(12).join(".")}|${port}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) {
    groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  }
  return peerKey({ hostname: groups.join(":"), port });
}

/**
 * The key of a peer, as {@linkcode peerKey}; `undefined` for a Unix
 * socket's peer (no address to tell connections apart, and no census).
 */
export function keyOf(addr: Deno.Addr): string | undefined {
  return "hostname" in addr ? peerKey(addr) : undefined;
}

/**
 * One key per peer address, the same whichever way the address is written:
 * IPv6 in its canonical form, IPv4-mapped IPv6 as plain IPv4.
 */
export function peerKey(addr: { hostname: string; port: number }): string {
  let host = addr.hostname;
  if (host.includes(":")) {
    host = new URL(`http://[${host}]/`).hostname.slice(1, -1);
    const mapped = host.match(/^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/);
    if (mapped) {
      const hi = parseInt(mapped[1], 16);
      const lo = parseInt(mapped[2], 16);
      host = [hi >> 8, hi & 255, lo >> 8, lo & 255].join(".");
    }
  }
  return `${host}|${addr.port}`;
}
