/**
 * Who descends from whom among processes: the supervisor signals only a
 * process it has verified to be its worker or that worker's descendant.
 */

/**
 * The parent of `pid`, from `/proc/PID/stat` (Deno wants `--allow-all` for
 * that) or else from `ps` (with `--allow-run`); undefined if neither works.
 */
function parentOf(pid: number): number | undefined {
  let ppid: number;
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // pid (comm) state ppid ...: comm may hold spaces and parentheses.
    ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    try {
      const out = new Deno.Command("ps", {
        args: ["-o", "ppid=", "-p", String(pid)],
        stdout: "piped",
        stderr: "null",
      }).outputSync();
      if (!out.success) return undefined;
      ppid = Number(new TextDecoder().decode(out.stdout).trim());
    } catch {
      return undefined;
    }
  }
  return Number.isInteger(ppid) && ppid >= 0 ? ppid : undefined;
}

/**
 * True if `pid` is `root` or one of its descendants (a wrapper such as
 * `deno task` or `sh -c` runs the server as a grandchild).
 */
export function descendsFrom(pid: number, root: number): boolean {
  let at: number | undefined = pid;
  for (let depth = 0; depth < 16 && at !== undefined; depth++) {
    if (at === root) return true;
    if (at <= 1) return false;
    at = parentOf(at);
  }
  return false;
}
