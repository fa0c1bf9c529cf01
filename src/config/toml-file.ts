/**
 * Reading a TOML config file: a size cap, parse errors reduced to file:line:column (smol-toml's
 * message quotes the offending lines, which we never echo), paths resolved against the file's
 * folder, and deep freezing of the result.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { ConfigError } from '../errors.js';
import { isTable, type TomlTable } from './fields.js';

/** Config files are hand-written; 1 MiB is generous (a peers file of ~5,000 peers). */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

/** Reads and parses `file`; ERR_CONFIG_FILE when it cannot be read or is not TOML. */
export function readTomlFile(file: string): TomlTable {
  let text: string;
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) throw new ConfigError('ERR_CONFIG_FILE', `${file}: not a regular file`);
    if (stat.size > MAX_CONFIG_FILE_BYTES) {
      throw new ConfigError('ERR_CONFIG_FILE', `${file}: larger than ${MAX_CONFIG_FILE_BYTES} bytes`);
    }
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'permission denied' : `cannot be read (${code ?? 'error'})`;
    throw new ConfigError('ERR_CONFIG_FILE', `${file}: ${reason}`, { cause: err });
  }
  return parseToml(file, text);
}

/** Parses TOML text; errors carry the position and smol-toml's one-line reason only. */
export function parseToml(file: string, text: string): TomlTable {
  try {
    const table: unknown = parse(text);
    if (!isTable(table)) throw new ConfigError('ERR_CONFIG_FILE', `${file}: not a TOML table`);
    return table;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    if (err instanceof TomlError) {
      const reason = (err.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '');
      throw new ConfigError('ERR_CONFIG_FILE', `${file}:${err.line}:${err.column}: invalid TOML: ${reason}`);
    }
    throw new ConfigError('ERR_CONFIG_FILE', `${file}: invalid TOML`);
  }
}

/** Resolves `value` against the folder holding `file` (absolute values stay as they are). */
export function resolveAgainst(file: string, value: string): string {
  return path.resolve(path.dirname(path.resolve(file)), value);
}

/** Freezes `value` and everything reachable from it; returns it typed as deeply readonly. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as object)) deepFreeze(child);
  }
  return value;
}
