/**
 * A typed reader over one parsed TOML table. Every error names the file and the key
 * (`server.toml: [forward.2].listen: expected "host:port", got "abc"`), unknown keys are errors so
 * typos are never silently ignored, and values are echoed only when the caller says they are not
 * secret, shortened and JSON-quoted.
 */
import { ConfigError } from '../errors.js';

/** Longest excerpt of a bad value quoted back in an error message. */
const MAX_ECHO_CHARS = 64;

export type TomlTable = Record<string, unknown>;

/** True for a plain TOML table (not an array, date or primitive). */
export function isTable(value: unknown): value is TomlTable {
  // smol-toml's TomlDate extends Date; everything else that is an object is a table.
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** A short, quoted rendering of a user value for an error message. */
export function echo(value: unknown): string {
  if (typeof value === 'string') {
    const cut = value.length > MAX_ECHO_CHARS ? `${value.slice(0, MAX_ECHO_CHARS)}...` : value;
    return JSON.stringify(cut);
  }
  if (Array.isArray(value)) return 'an array';
  if (isTable(value)) return 'a table';
  if (typeof value === 'object' && value !== null) return 'a date';
  return String(value);
}

/** The message of a missing required key (see TableReader.fail: a typo is reported first). */
export const MISSING_KEY = 'required key is missing';

/** Edit distance with adjacent transpositions (optimal string alignment), for typo hints. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** True when `typed` is probably a misspelling of `known`. */
function looksLike(typed: string, known: string): boolean {
  const norm = (k: string): string => k.toLowerCase().replace(/-/g, '_');
  if (norm(typed) === norm(known)) return true;
  const limit = known.length <= 4 ? 1 : 2;
  return Math.abs(typed.length - known.length) <= limit && editDistance(norm(typed), norm(known)) <= limit;
}

export interface IntOptions {
  readonly min: number;
  readonly max: number;
}

/** Reads keys from one table; call `done()` last to refuse the keys nobody asked for. */
export class TableReader {
  readonly file: string;
  /** How the table is named in messages: `[server]`, `[forward.2]`, or `` for the top level. */
  readonly where: string;
  readonly #table: TomlTable;
  readonly #seen = new Set<string>();

  constructor(file: string, where: string, table: TomlTable) {
    this.file = file;
    this.where = where;
    this.#table = table;
  }

  /**
   * `file: [table].key: message` as a ConfigError. A required key that is missing while the table
   * holds a key nobody asked for that looks like it (`sever_url` for `server_url`) is reported as
   * that unknown key, with a hint: the typo is the mistake, not the missing key.
   */
  fail(key: string | undefined, message: string, cause?: unknown): ConfigError {
    if (message === MISSING_KEY && key !== undefined) {
      const typo = Object.keys(this.#table).find((k) => !this.#seen.has(k) && k !== key && looksLike(k, key));
      if (typo !== undefined) return this.fail(typo, `unknown key (did you mean ${key}?)`);
    }
    const name = key === undefined ? this.where : this.where === '' ? key : `${this.where}.${key}`;
    const text = name === '' ? `${this.file}: ${message}` : `${this.file}: ${name}: ${message}`;
    return new ConfigError('ERR_CONFIG', text, cause === undefined ? undefined : { cause });
  }

  has(key: string): boolean {
    return this.#table[key] !== undefined;
  }

  /** The raw value, marking the key as known. */
  raw(key: string): unknown {
    this.#seen.add(key);
    return this.#table[key];
  }

  /** A string; `secret` hides the value in errors. */
  optionalString(key: string, options: { secret?: boolean } = {}): string | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw this.fail(key, `expected a string, got ${options.secret ? typeof value : echo(value)}`);
    if (value === '') throw this.fail(key, 'expected a non-empty string');
    return value;
  }

  string(key: string, options: { secret?: boolean } = {}): string {
    const value = this.optionalString(key, options);
    if (value === undefined) throw this.fail(key, MISSING_KEY);
    return value;
  }

  /** A string or a non-empty list of strings, as a list (for failover lists and key pins). */
  stringOrList(key: string): string[] | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    const list = typeof value === 'string' ? [value] : value;
    if (!Array.isArray(list) || list.length === 0) throw this.fail(key, `expected a string or a non-empty list of strings, got ${echo(value)}`);
    list.forEach((item, i) => {
      if (typeof item !== 'string' || item === '') throw this.fail(`${key}[${i}]`, `expected a non-empty string, got ${echo(item)}`);
    });
    return list as string[];
  }

  /** A list of non-empty strings (may be empty). */
  stringList(key: string, fallback: string[] = []): string[] {
    const value = this.raw(key);
    if (value === undefined) return fallback;
    if (!Array.isArray(value)) throw this.fail(key, `expected a list of strings, got ${echo(value)}`);
    value.forEach((item, i) => {
      if (typeof item !== 'string' || item.trim() === '') throw this.fail(`${key}[${i}]`, `expected a non-empty string, got ${echo(item)}`);
    });
    return value as string[];
  }

  boolean(key: string, fallback: boolean): boolean {
    const value = this.raw(key);
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') throw this.fail(key, `expected true or false, got ${echo(value)}`);
    return value;
  }

  /** An integer in `min..max` (TOML integers arrive as numbers; floats are refused). */
  int(key: string, fallback: number, { min, max }: IntOptions): number {
    const value = this.raw(key);
    if (value === undefined) return fallback;
    if (typeof value === 'bigint') throw this.fail(key, `expected an integer in ${min}..${max}, got ${value}`);
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      throw this.fail(key, `expected an integer in ${min}..${max}, got ${echo(value)}`);
    }
    return value;
  }

  /** A sub-table, or undefined when absent. */
  optionalTable(key: string): TableReader | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (!isTable(value)) throw this.fail(key, `expected a table [${key}], got ${echo(value)}`);
    return new TableReader(this.file, `[${key}]`, value);
  }

  /** An array of tables (`[[key]]`), numbered from 1 in messages: `[forward.2]` is the second. */
  tableList(key: string, maxCount: number): TableReader[] {
    const value = this.raw(key);
    if (value === undefined) return [];
    if (!Array.isArray(value)) throw this.fail(key, `expected one or more [[${key}]] tables, got ${echo(value)}`);
    if (value.length > maxCount) throw this.fail(key, `at most ${maxCount} [[${key}]] tables are allowed, got ${value.length}`);
    return value.map((item, i) => {
      if (!isTable(item)) throw this.fail(`${key}[${i}]`, `expected a table, got ${echo(item)}`);
      return new TableReader(this.file, `[${key}.${i + 1}]`, item);
    });
  }

  /** Refuses every key that no reader method asked for, with a hint when it looks like a known one. */
  done(): void {
    for (const key of Object.keys(this.#table)) {
      if (this.#seen.has(key)) continue;
      const known = [...this.#seen].find((k) => looksLike(key, k));
      throw this.fail(key, known === undefined ? 'unknown key' : `unknown key (did you mean ${known}?)`);
    }
  }
}
