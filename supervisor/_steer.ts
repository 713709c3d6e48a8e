/**
 * Steers a port's `SO_REUSEPORT` group away from a listener that is about
 * to close, so that a restart loses no connection on a default kernel.
 *
 * Why: with `net.ipv4.tcp_migrate_req=0` (every distribution's default),
 * closing a listener resets the connections still queued on it. Linux lets
 * any member of the group attach a classic BPF program that picks, for each
 * new connection, the index of the socket that gets it
 * (`SO_ATTACH_REUSEPORT_CBPF`, Linux ≥ 4.5). Indices follow the order in
 * which sockets joined; a socket that leaves is replaced in its slot by the
 * last one; an index past the end falls back to the kernel's usual hash, and
 * a closed socket is never picked. The supervisor knows the join order, so
 * it tells the old worker "you are `exclude` of `count`", and the program
 * sends each new connection to a random one of the others. The old worker
 * accepts what was already queued, serves it, and closes with an empty
 * queue. After the restart's last old worker has gone (a steer replaces
 * the program before it), `unsteer` detaches the program
 * (`SO_DETACH_REUSEPORT_BPF`, Linux ≥ 5.3; on older kernels a program that
 * always falls back to the hash takes its place).
 *
 * A wrong index can only send connections to another live member of the
 * group, or to the old worker (today's behaviour without steering); never
 * to a closed socket. Needs `--allow-ffi` and Linux with glibc or musl;
 * elsewhere every call returns why it did nothing.
 */
import { MAX_GROUP } from "./_protocol.ts";
import {
  attachFilter,
  BPF_RET_K,
  insn,
  libc,
  listeningFds,
  SOL_SOCKET,
} from "./_sockets.ts";

const SO_ATTACH_REUSEPORT_CBPF = 51;
const SO_DETACH_REUSEPORT_BPF = 68;

const BPF_LD_W_ABS = 0x20;
const BPF_ALU_MOD_K = 0x94;
const BPF_ALU_ADD_K = 0x04;
const BPF_JMP_JGE_K = 0x35;
const BPF_RET_A = 0x16;
/** `SKF_AD_OFF + SKF_AD_RANDOM`: a random 32-bit number. */
const AD_RANDOM = -0x1000 + 56;

/**
 * The program: a random index in `[0, count)` other than `exclude`. With
 * `count` 0 it always returns an index past any group (the kernel's hash).
 */
export function steerProgram(exclude: number, count: number): Uint8Array {
  if (count === 0) {
    const filter = new Uint8Array(8);
    insn(new DataView(filter.buffer), 0, BPF_RET_K, 0, 0, 0xffffffff);
    return filter;
  }
  if (
    !Number.isInteger(count) || count < 2 || count > MAX_GROUP ||
    !Number.isInteger(exclude) || exclude < 0 || exclude >= count
  ) {
    throw new RangeError(
      `steer: expected 0 <= exclude < count <= ${MAX_GROUP}, count >= 2; got exclude ${exclude}, count ${count}`,
    );
  }
  const filter = new Uint8Array(6 * 8);
  const view = new DataView(filter.buffer);
  insn(view, 0, BPF_LD_W_ABS, 0, 0, AD_RANDOM); // A = random
  insn(view, 1, BPF_ALU_MOD_K, 0, 0, count - 1); // A %= count - 1
  insn(view, 2, BPF_JMP_JGE_K, 1, 0, exclude); // A >= exclude: skip one
  insn(view, 3, BPF_RET_A, 0, 0, 0); // return A
  insn(view, 4, BPF_ALU_ADD_K, 0, 0, 1); // A += 1
  insn(view, 5, BPF_RET_A, 0, 0, 0); // return A
  return filter;
}

function errno(): string {
  const lib = libc();
  if (!lib) return "";
  const at = lib.symbols.__errno_location();
  return at ? ` (errno ${new Deno.UnsafePointerView(at).getInt32()})` : "";
}

/** libc and this process's listeners on `addr`, or why there are none. */
function listeners(
  addr: Deno.NetAddr,
): { lib: NonNullable<ReturnType<typeof libc>>; fds: number[] } | string {
  const lib = libc();
  if (!lib) return "needs --allow-ffi on Linux";
  const fds = listeningFds(addr);
  if (fds.length === 0) {
    return `no listening socket found for port ${addr.port}`;
  }
  return { lib, fds };
}

/** Attaches `filter` to the group of every listener on `addr`. */
function attach(addr: Deno.NetAddr, filter: Uint8Array): string | undefined {
  const found = listeners(addr);
  if (typeof found === "string") return found;
  for (const fd of found.fds) {
    if (!attachFilter(found.lib, fd, SO_ATTACH_REUSEPORT_CBPF, filter)) {
      return `setsockopt(SO_ATTACH_REUSEPORT_CBPF) failed${errno()}`;
    }
  }
  return undefined;
}

/**
 * Makes new connections to `addr`'s port go to any member of its
 * reuseport group but the `exclude`-th of `count`. Returns why it did
 * nothing, or `undefined` once the program is attached.
 */
export function steerAway(
  addr: Deno.NetAddr,
  exclude: number,
  count: number,
): string | undefined {
  return attach(addr, steerProgram(exclude, count));
}

/**
 * Detaches the group's program: new connections are spread by the kernel's
 * hash again. Returns why it did nothing, or `undefined`.
 */
export function unsteer(addr: Deno.NetAddr): string | undefined {
  const found = listeners(addr);
  if (typeof found === "string") return found;
  const { lib, fds } = found;
  const none = new Int32Array(1);
  if (
    lib.symbols.setsockopt(
      fds[0],
      SOL_SOCKET,
      SO_DETACH_REUSEPORT_BPF,
      none,
      4,
    ) === 0
  ) {
    return undefined;
  }
  // Before Linux 5.3 (or with no program attached): a program that always
  // falls back to the hash does the same.
  return attach(addr, steerProgram(0, 0));
}
