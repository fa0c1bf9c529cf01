/**
 * `twoway init`: an employee's set-up without root. Writes DIR/client.toml (default
 * `$XDG_CONFIG_HOME/twoway`, else `~/.config/twoway`) and a new private key DIR/client.key (0600)
 * beside it, and prints the public key (alone on stdout) to send to the administrator.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { readClientTable } from '../config/client-config.js';
import { readPrivateKeyFile, writeSecretFile } from '../config/key-file.js';
import { parseToml } from '../config/toml-file.js';
import { encodeKey, generateKeyPair, publicKeyFromPrivate, wipe } from '../crypto/keys.js';
import { EXIT } from './exit-codes.js';
import { CliError } from './fail.js';

export const INIT_CONFIG_NAME = 'client.toml';
export const INIT_KEY_NAME = 'client.key';
/** client.toml may later hold a proxy's credentials: private to its user. */
const CONFIG_FILE_MODE = 0o600;

export interface InitOptions {
  readonly dir: string;
  readonly serverUrl: string;
  readonly serverPublicKey: string;
  /** Rewrite an existing client.toml; an existing client.key is kept, never replaced. */
  readonly force: boolean;
}

export interface InitResult {
  readonly configFile: string;
  readonly keyFile: string;
  readonly publicKey: string;
  readonly keyCreated: boolean;
}

function configText(serverUrl: string, serverPublicKey: string): string {
  return `# twoway client configuration, written by 'twoway init'. Check it with: twoway check-config FILE
# Relative paths are resolved against the folder of this file. Unknown keys are errors.
# Every key is described in the example configs/client.toml of the twoway package.

[client]
server_url = ${JSON.stringify(serverUrl)}
server_public_key = ${JSON.stringify(serverPublicKey)}
# This client's private key (0600), made by 'twoway init'; never send it to anyone.
private_key_file = ${JSON.stringify(INIT_KEY_NAME)}
# control_socket is not set: the daemon listens on $XDG_RUNTIME_DIR/twoway/client.sock when
# XDG_RUNTIME_DIR is set (it is in a login session), which 'twoway status' and 'twoway connect' use.

# Local ports forwarded through the tunnel, e.g.:
# [[forward]]
# listen = "127.0.0.1:2222"
# target = "git.corp.example:22"
`;
}

function exists(file: string): boolean {
  try {
    fs.lstatSync(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new CliError(`${file}: cannot be checked (${(err as NodeJS.ErrnoException).code ?? 'error'})`, EXIT.failure, { cause: err });
  }
}

/** Writes the files; throws before writing anything when a file exists (without --force) or an input is bad. */
export function initClient(options: InitOptions): InitResult {
  const dir = path.resolve(options.dir);
  const configFile = path.join(dir, INIT_CONFIG_NAME);
  const keyFile = path.join(dir, INIT_KEY_NAME);
  const text = configText(options.serverUrl, options.serverPublicKey.trim());
  // The same checks as every load: a bad URL or key fails here, before a file is written.
  readClientTable(configFile, parseToml(configFile, text));
  const keyExists = exists(keyFile);
  if (!options.force) {
    const present = [configFile, keyFile].filter((f, i) => (i === 1 ? keyExists : exists(f)));
    if (present.length > 0)
      throw new CliError(
        `${present.join(' and ')} exist${present.length === 1 ? 's' : ''} already; nothing was written (--force rewrites ${INIT_CONFIG_NAME} and keeps the key)`,
      );
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });

  let publicKey: string;
  if (keyExists) {
    const privateKey = readPrivateKeyFile(keyFile);
    publicKey = encodeKey(publicKeyFromPrivate(privateKey));
    wipe(privateKey);
  } else {
    const pair = generateKeyPair();
    const encoded = Buffer.from(`${encodeKey(pair.privateKey)}\n`, 'utf8');
    try {
      writeSecretFile(keyFile, encoded);
    } finally {
      encoded.fill(0);
      wipe(pair.privateKey);
    }
    publicKey = encodeKey(pair.publicKey);
  }

  // A new file next to the old one, renamed over it: never a half-written config.
  const temp = path.join(dir, `.${INIT_CONFIG_NAME}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    fs.writeFileSync(temp, text, { mode: CONFIG_FILE_MODE, flag: 'wx' });
    // Without --force a link, which fails if the file appeared meanwhile; with it a rename.
    if (options.force) fs.renameSync(temp, configFile);
    else fs.linkSync(temp, configFile);
  } catch (err) {
    throw new CliError(`${configFile}: could not be written (${(err as NodeJS.ErrnoException).code ?? 'error'})`, EXIT.failure, { cause: err });
  } finally {
    fs.rmSync(temp, { force: true });
  }
  return { configFile, keyFile, publicKey, keyCreated: !keyExists };
}
