/**
 * An environment variable read only where `--allow-env` already grants it:
 * never a permission prompt, never a throw.
 */

/** The variable's value, or `undefined` if unset or not granted. */
export function grantedEnv(variable: string): string | undefined {
  try {
    const state = Deno.permissions.querySync({ name: "env", variable }).state;
    return state === "granted" ? Deno.env.get(variable) : undefined;
  } catch {
    return undefined;
  }
}
