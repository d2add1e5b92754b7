/**
 * The server's command-line configuration: every option also from an
 * environment variable (`--max-batch` and `SYNCLINE_MAX_BATCH`), a command-line
 * value winning over the environment; secrets also from files. One table
 * (SERVER_OPTIONS) is the usage text, the parser's input, and the server
 * README's table (test/docs.test.ts checks they agree).
 */
import { parseArgs } from 'node:util';

/** One option of `syncline-server`. */
export interface OptionSpec {
  /** The long option name, without `--`. */
  readonly name: string;
  /** `list`: repeatable on the command line, comma-separated in the environment. */
  readonly type: 'string' | 'boolean' | 'list';
  /** What the value looks like in the usage text (`N`, `PATH`, …); none for a boolean. */
  readonly value?: string;
  /** The usage text's lines. */
  readonly help: string;
}

/** The environment variable of an option: SYNCLINE_ and its name in capitals, `-` as `_`. */
export function envName(option: string): string {
  return `SYNCLINE_${option.toUpperCase().replace(/-/g, '_')}`;
}

/** A configuration mistake: the message names the option (or variable) and points at --help. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(message: string) {
    super(`${message} (see syncline-server --help)`);
  }
}

/** What readOptions found: each option's value, and where it came from (for messages). */
export interface ReadOptions {
  readonly values: Readonly<Record<string, string | boolean | string[] | undefined>>;
  /** Where option `name` came from, for messages: `SYNCLINE_NAME` when the environment gave it, else `--name`. */
  readonly source: (name: string) => string;
  readonly positionals: readonly string[];
}

/**
 * Reads `argv` against `specs`, then fills what it did not give from `env`.
 * Throws ConfigError for an unknown option, a missing value, or an
 * environment boolean that is not true/false/1/0.
 */
export function readOptions(argv: readonly string[], env: NodeJS.ProcessEnv, specs: readonly OptionSpec[], positionals = false): ReadOptions {
  const options = Object.fromEntries(specs.map((s) => [s.name, s.type === 'boolean' ? { type: 'boolean' as const } : { type: 'string' as const, ...(s.type === 'list' ? { multiple: true } : {}) }]));
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: positionals });
  } catch (error) {
    throw new ConfigError(describeParseError(error));
  }
  const values: Record<string, string | boolean | string[] | undefined> = { ...parsed.values };
  const from: Record<string, string> = {};
  for (const spec of specs) {
    if (values[spec.name] !== undefined) {
      from[spec.name] = `--${spec.name}`;
      continue;
    }
    const name = envName(spec.name);
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    from[spec.name] = name;
    if (spec.type === 'boolean') {
      if (!/^(true|false|1|0)$/i.test(raw)) throw new ConfigError(`${name} must be true, false, 1 or 0, got ${JSON.stringify(raw)}`);
      values[spec.name] = /^(true|1)$/i.test(raw);
    } else if (spec.type === 'list') {
      values[spec.name] = raw.split(',').map((v) => v.trim()).filter(Boolean);
    } else {
      values[spec.name] = raw;
    }
  }
  return { values, source: (name) => from[name] ?? `--${name}`, positionals: parsed.positionals };
}

/** parseArgs's errors, said the way the rest of the CLI says things. */
function describeParseError(error: unknown): string {
  const e = error as Error & { code?: string };
  const option = /'(-{1,2}[^' ]+)/.exec(e.message)?.[1];
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option ?? ''}`.trim();
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return option !== undefined ? `${option} needs a value` : e.message;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${/'([^']*)'/.exec(e.message)?.[1] ?? ''}`.trim();
    default:
      return e.message;
  }
}

/** A non-negative integer option, or undefined when not given; ConfigError naming where it came from otherwise. */
export function intOption(read: ReadOptions, name: string): number | undefined {
  const raw = read.values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new ConfigError(`${read.source(name)} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return n;
}

/** The usage lines of `specs`, each with its environment variable. */
export function usageOf(specs: readonly OptionSpec[]): string {
  return specs
    .map((s) => {
      const head = `  --${s.name}${s.value ? ` ${s.value}` : ''}`;
      const lines = s.help.split('\n');
      const first = `${head.padEnd(27)}${lines[0]}`;
      return [first, ...lines.slice(1).map((l) => `${' '.repeat(27)}${l}`), `${' '.repeat(27)}(${envName(s.name)})`].join('\n');
    })
    .join('\n');
}
