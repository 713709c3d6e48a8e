/**
 * A reload with new configuration: the supervisor reads an env file once
 * per generation, so each restart's workers get what it holds then (on top
 * of the supervisor's own environment, which systemd or a shell fixed at
 * its start). A file that cannot be read or parsed fails that generation,
 * which is rolled back with the reason.
 *
 * The format is dotenv's common core: `KEY=VALUE` lines, `#` comments,
 * blank lines, an optional `export `, and values in single quotes (taken
 * as they are) or double quotes (with `\n` and `\"`). It does not expand
 * `$VARIABLES` or join lines.
 */
import { NotReadyError } from "./_reports.ts";

const LINE = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/;

/** Parses env file `text`; throws naming the first bad line. */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = line.match(LINE);
    if (!m) {
      throw new Error(
        `line ${i + 1}: expected KEY=VALUE, got ${
          JSON.stringify(line.slice(0, 40))
        }`,
      );
    }
    let value = m[2];
    const quote = value[0];
    if (
      (quote === '"' || quote === "'") && value.length >= 2 &&
      value.endsWith(quote)
    ) {
      value = value.slice(1, -1);
      if (quote === '"') {
        value = value.replaceAll("\\n", "\n").replaceAll('\\"', '"');
      }
    } else if (quote === '"' || quote === "'") {
      throw new Error(`line ${i + 1}: unterminated quote in ${m[1]}`);
    } else value = value.replace(/\s+#.*$/, "");
    env[m[1]] = value;
  }
  return env;
}

/** One env file, read once per generation. */
export class EnvFile {
  #generation = -1;
  #env: Record<string, string> | Error = {};

  constructor(readonly path: string) {}

  /**
   * The variables for a worker of `generation` (read at its first worker);
   * a bad file throws a {@linkcode NotReadyError} naming it.
   */
  forGeneration(generation: number): Record<string, string> {
    if (generation !== this.#generation) {
      this.#generation = generation;
      try {
        this.#env = parseEnvFile(Deno.readTextFileSync(this.path));
      } catch (error) {
        this.#env = error as Error;
      }
    }
    if (this.#env instanceof Error) {
      throw new NotReadyError(`env file ${this.path}: ${this.#env.message}`);
    }
    return this.#env;
  }
}
