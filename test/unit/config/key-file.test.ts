import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readPrivateKeyFile, readPskFile, writeSecretFile, assertSecretFileStat } from '../../../src/config/key-file.js';
import { thrown, useTempDir, writeKey } from '../../helpers/config-fixture.js';

describe('key files', () => {
  const tempDir = useTempDir();

  it('reads a 0600 key with a trailing newline into a fresh 32-byte Uint8Array', () => {
    const dir = tempDir();
    const [file, key] = writeKey(dir, 'k.key');
    const bytes = readPrivateKeyFile(file);
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect(bytes.byteLength).toBe(32);
    expect(bytes.byteOffset).toBe(0);
    expect(bytes.buffer.byteLength).toBe(32); // its own buffer, not a pool slice
    expect(Buffer.from(bytes).toString('base64')).toBe(key);
  });

  it('accepts mode 0400 and surrounding whitespace', () => {
    const dir = tempDir();
    const key = randomBytes(32).toString('base64');
    const file = path.join(dir, 'p.psk');
    fs.writeFileSync(file, `  \r\n${key} \n\n`, { mode: 0o400 });
    expect(Buffer.from(readPskFile(file)).toString('base64')).toBe(key);
  });

  it.each([0o644, 0o640, 0o604, 0o620, 0o602])('refuses mode %s with the chmod hint, without the content', (mode) => {
    const dir = tempDir();
    const [file, key] = writeKey(dir, 'loose.key', mode);
    const err = thrown(() => readPrivateKeyFile(file));
    expect(err.code).toBe('ERR_KEY_FILE_MODE');
    expect(err.message).toBe(`private key file ${file} has mode 0${mode.toString(8)}, readable or writable by others; run: chmod 600 ${file}`);
    expect(err.message).not.toContain(key);
  });

  it('refuses a file owned by another user', () => {
    const dir = tempDir();
    const [file] = writeKey(dir, 'k.key');
    const stat = fs.statSync(file);
    const err = thrown(() => assertSecretFileStat(file, stat, 'psk', () => stat.uid + 1));
    expect(err.code).toBe('ERR_KEY_FILE_MODE');
    expect(err.message).toContain(`is owned by uid ${stat.uid}, not by the user running twoway (uid ${stat.uid + 1})`);
  });

  it('refuses a missing file, naming it', () => {
    const file = path.join(tempDir(), 'absent.key');
    const err = thrown(() => readPrivateKeyFile(file));
    expect(err.code).toBe('ERR_KEY_FILE');
    expect(err.message).toBe(`private key file ${file} does not exist`);
  });

  it('refuses a directory', () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'd'), { mode: 0o700 });
    expect(thrown(() => readPskFile(path.join(dir, 'd'))).message).toMatch(/not a regular file/);
  });

  const badContents: [string, string][] = [
    ['two keys', `${randomBytes(32).toString('base64')}\n${randomBytes(32).toString('base64')}\n`],
    ['a 31-byte key', randomBytes(31).toString('base64')],
    [
      'url-safe base64',
      randomBytes(32)
        .toString('base64')
        .replace(/.{2}=$/, '-_='),
    ],
    ['non-canonical padding bits', `${randomBytes(32).toString('base64').slice(0, 42)}B=`],
    ['a hex key', randomBytes(32).toString('hex')],
    ['an empty file', ''],
    ['too large', 'A'.repeat(5000)],
  ];
  it.each(badContents)('refuses %s without echoing the content', (_what, content) => {
    const dir = tempDir();
    const file = path.join(dir, 'bad.key');
    fs.writeFileSync(file, content, { mode: 0o600 });
    const err = thrown(() => readPrivateKeyFile(file));
    expect(err.code).toBe('ERR_KEY_FILE');
    expect(err.message.startsWith(`private key file ${file}`)).toBe(true);
    if (content.length >= 8) expect(err.message).not.toContain(content.trim().slice(0, 8));
  });

  it('writeSecretFile creates a 0600 file exclusively and never overwrites', () => {
    const dir = tempDir();
    const file = path.join(dir, 'new.key');
    const text = Buffer.from(`${randomBytes(32).toString('base64')}\n`);
    const oldMask = process.umask(0o022);
    try {
      writeSecretFile(file, text);
    } finally {
      process.umask(oldMask);
    }
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(file)).toEqual(text);
    expect(readPrivateKeyFile(file)).toHaveLength(32);
    const err = thrown(() => writeSecretFile(file, Buffer.from('other')));
    expect(err.code).toBe('ERR_KEY_FILE');
    expect(err.message).toBe(`secret file ${file} already exists; refusing to overwrite it`);
    expect(fs.readFileSync(file)).toEqual(text);
  });

  it('writeSecretFile does not follow a planted symlink', () => {
    const dir = tempDir();
    const target = path.join(dir, 'target');
    fs.writeFileSync(target, 'original');
    fs.symlinkSync(target, path.join(dir, 'link.key'));
    expect(thrown(() => writeSecretFile(path.join(dir, 'link.key'), Buffer.from('x'))).code).toBe('ERR_KEY_FILE');
    expect(fs.readFileSync(target, 'utf8')).toBe('original');
  });
});
