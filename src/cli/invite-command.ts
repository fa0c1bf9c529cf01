/**
 * The administrator's enrollment commands: `twoway invite NAME`, `twoway invites list|revoke`
 * and `twoway peers approve NAME`. Each edits its file under the file's lock, then tells the
 * running server (which writes the audit line: invite.created, invite.revoked, peer.approved).
 */
import fs from 'node:fs';
import { Option, type Command } from 'commander';
import { renderUnicodeCompact } from 'uqr';
import { readPrivateKeyFile } from '../config/key-file.js';
import { PEER_NAME, compilePeerRules, isDeviceRule, loadPeers } from '../config/peers.js';
import { loadServerConfig } from '../config/server-config.js';
import { controlRequest } from '../control/control-client.js';
import { publicKeyFromPrivate, wipe } from '../crypto/keys.js';
import { encodeInviteToken, isServerUrl } from '../enroll/invite-token.js';
import { MAX_INVITE_EXPIRY_MS, createInvite, listInvites, revokeInvite, type InviteVerify } from '../enroll/invites-store.js';
import { approvePeer } from '../enroll/register.js';
import { ConfigError } from '../errors.js';
import { escapeText } from '../log/escape.js';
import { EXIT } from './exit-codes.js';
import { CliError } from './fail.js';
import { askReload } from './peers-command.js';

const UNITS_MS: Readonly<Record<string, number>> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `30m`, `24h`, `7d` (one number and one unit) in milliseconds. */
export function parseDuration(text: string, what: string): number {
  const m = /^([1-9][0-9]{0,6})([smhd])$/.exec(text.trim());
  if (m === null) throw new CliError(`${what} ${JSON.stringify(text.slice(0, 32))}: expected a number and a unit, e.g. 30m, 24h, 7d`, EXIT.usage);
  return Number(m[1]) * UNITS_MS[m[2]!]!;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * The server's public key, from its private key file: root (sudo) reads the service user's file,
 * so the owner is whoever owns it; its mode must still be 0600.
 */
function serverPublicKeyOf(privateKeyFile: string): Uint8Array {
  let uid: number | undefined;
  try {
    uid = fs.statSync(privateKeyFile).uid;
  } catch {
    // readPrivateKeyFile says what is wrong with it
  }
  const privateKey = readPrivateKeyFile(privateKeyFile, uid !== undefined && process.getuid?.() === 0 ? { uid } : undefined);
  try {
    return publicKeyFromPrivate(privateKey);
  } finally {
    wipe(privateKey);
  }
}

/** Tells the running server about an invitation (it logs the audit line); quiet when none runs. */
async function tellServer(controlSocket: string, id: string): Promise<string> {
  if (!fs.existsSync(controlSocket)) return `no server running at ${controlSocket}: the audit line is not written`;
  try {
    const reply = await controlRequest(controlSocket, { cmd: 'invites', id });
    return reply.ok ? 'the running server logged it' : `the running server answered: ${String(reply.error)}`;
  } catch (err) {
    return (err as Error).message;
  }
}

export interface InviteOptions {
  readonly allow: readonly string[];
  readonly devices: readonly string[];
  readonly expiresMs: number;
  readonly verify?: InviteVerify;
  readonly approval: boolean;
  readonly url?: string;
}

/** `twoway invite NAME ...`: the token and what the server recorded. */
export async function inviteCommand(
  serverConfigFile: string,
  name: string,
  o: InviteOptions,
): Promise<{ token: string; id: string; name: string; expiresAt: string; url: string; audit: string }> {
  const config = loadServerConfig(serverConfigFile);
  if (!PEER_NAME.test(name)) throw new CliError(`invite: name ${JSON.stringify(name.slice(0, 64))}: expected 1-64 of A-Z a-z 0-9 . _ -`, EXIT.usage);
  compilePeerRules(o.allow);
  for (const d of o.devices)
    if (!isDeviceRule(d)) throw new CliError(`invite: --device ${JSON.stringify(d.slice(0, 80))}: expected DEVICE:SERVICE`, EXIT.usage);
  if (o.expiresMs > MAX_INVITE_EXPIRY_MS) throw new CliError('invite: --expires: at most 30d', EXIT.usage);
  if (config.requirePsk) {
    throw new ConfigError(
      'ERR_CONFIG',
      `${config.file}: require_psk is set, and a peer that joins by invitation has no psk_file: add it with twoway peers add --psk-file instead`,
    );
  }
  const url = o.url ?? config.publicUrl;
  if (url === undefined) {
    throw new ConfigError('ERR_CONFIG', `${config.file}: [server] public_url is not set and no --url was given: the token must name the URL clients dial`);
  }
  if (!isServerUrl(url)) throw new CliError(`invite: --url ${JSON.stringify(url.slice(0, 80))}: expected ws://HOST[:PORT]/PATH or wss://...`, EXIT.usage);
  if (fs.existsSync(config.peersFile) && loadPeers(config.peersFile).peers.some((p) => p.name === name)) {
    throw new ConfigError('ERR_CONFIG', `${config.peersFile}: a peer named ${name} exists already`);
  }
  const serverPublicKey = serverPublicKeyOf(config.privateKeyFile);
  const { record, id, secret } = createInvite(config.invitesFile, {
    name,
    allow: o.allow,
    devices: o.devices,
    ...(o.verify !== undefined ? { verify: o.verify } : {}),
    approval: o.approval,
    expiresInMs: o.expiresMs,
  });
  let token: string;
  try {
    token = encodeInviteToken({ id, secret, serverPublicKey, url });
  } finally {
    wipe(secret);
  }
  return { token, id: record.id, name, expiresAt: record.expiresAt, url, audit: await tellServer(config.controlSocket, record.id) };
}

/** Registers invite, invites list|revoke and peers approve. */
export function registerInviteCommands(program: Command, peers: Command, defaultServerConfig: string): void {
  program
    .command('invite')
    .description('create a one-time, expiring invitation for NAME and print it as one token (twoway join reads it)')
    .argument('<name>', 'the peer name the join registers: letters, digits, . _ -')
    .option('-a, --allow <rule>', 'a target the new peer may reach, HOST:PORTS (repeatable)', collect, [])
    .option('-d, --device <rule>', 'a device service it may reach, DEVICE:SERVICE (repeatable)', collect, [])
    .option('--expires <duration>', 'how long the invitation stays valid (30m, 24h, 7d; at most 30d)', '24h')
    .addOption(new Option('--verify <method>', 'the peer must also verify the person').choices(['totp', 'oidc']))
    .option('--approval', 'the joined key waits for twoway peers approve NAME')
    .option('--url <url>', 'the server URL in the token (default: [server] public_url)')
    .option('--qr', 'also print the token as a QR code on stderr (default: when stderr is a terminal)')
    .option('-c, --config <file>', 'server config file', defaultServerConfig)
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      '\nExample:\n  sudo twoway invite alice --allow db.corp.example:5432 --expires 24h --config /etc/twoway/server.toml\n' +
        '\nThe token is printed alone on stdout. Give it to the employee by a channel you trust: whoever\nholds it can join once, until it expires or is revoked.\n',
    )
    .action(
      async (
        name: string,
        opts: {
          allow: string[];
          device: string[];
          expires: string;
          verify?: InviteVerify;
          approval?: boolean;
          url?: string;
          qr?: boolean;
          config: string;
          json?: boolean;
        },
      ) => {
        const expiresMs = parseDuration(opts.expires, 'invite: --expires');
        const r = await inviteCommand(opts.config, name, {
          allow: opts.allow,
          devices: opts.device,
          expiresMs,
          ...(opts.verify ? { verify: opts.verify } : {}),
          approval: opts.approval === true,
          ...(opts.url ? { url: opts.url } : {}),
        });
        if (opts.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        else process.stdout.write(`${r.token}\n`);
        if (opts.qr === true || process.stderr.isTTY) process.stderr.write(`${renderUnicodeCompact(r.token)}\n`);
        process.stderr.write(`invitation ${r.id} for ${r.name}, valid until ${r.expiresAt}; on the employee's machine: twoway join TOKEN (${r.audit})\n`);
      },
    );

  const invites = program
    .command('invites')
    .description('list or revoke invitations')
    .action(() => {
      process.stderr.write(`twoway: invites: a subcommand is required (list, revoke)\n${invites.helpInformation()}`);
      process.exitCode = EXIT.usage;
    });
  invites
    .command('list')
    .option('-c, --config <file>', 'server config file', defaultServerConfig)
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  sudo twoway invites list --config /etc/twoway/server.toml\n')
    .action((opts: { config: string; json?: boolean }) => {
      const list = listInvites(loadServerConfig(opts.config).invitesFile);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ invites: list }, null, 2)}\n`);
        return;
      }
      const lines = list.map(
        (i) =>
          `${i.id}  ${i.name}  ${i.status}  expires ${i.expiresAt}${i.usedBy ? `  used by ${i.usedBy}` : ''}${i.approval ? '  approval' : ''}${i.verify ? `  verify ${i.verify}` : ''}`,
      );
      process.stdout.write(lines.length === 0 ? 'no invitations\n' : `${lines.map(escapeText).join('\n')}\n`);
    });
  invites
    .command('revoke')
    .argument('<id-or-name>', 'the invitation id, or the name it invites')
    .option('-c, --config <file>', 'server config file', defaultServerConfig)
    .addHelpText('after', '\nExample:\n  sudo twoway invites revoke alice --config /etc/twoway/server.toml\n')
    .action(async (idOrName: string, opts: { config: string }) => {
      const config = loadServerConfig(opts.config);
      const revoked = revokeInvite(config.invitesFile, idOrName);
      for (const r of revoked) {
        const audit = await tellServer(config.controlSocket, r.id);
        process.stdout.write(`revoked invitation ${r.id} for ${r.name} (${audit})\n`);
      }
    });

  peers
    .command('approve')
    .argument('<name>', 'a peer that joined by an invitation with --approval')
    .option('-c, --config <file>', 'server config file', defaultServerConfig)
    .addHelpText('after', '\nExample:\n  sudo twoway peers approve alice --config /etc/twoway/server.toml\n')
    .action(async (name: string, opts: { config: string }) => {
      const config = loadServerConfig(opts.config);
      const left = approvePeer(config.peersFile, name);
      const reload = await askReload(config.controlSocket);
      process.stdout.write(`approved ${name}; ${left.length} peers on the allowlist\n${reload.detail}\n`);
      if (!reload.ok && reload.detail.includes('refused')) process.exitCode = EXIT.failure;
    });
}
