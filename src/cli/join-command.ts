/**
 * `twoway join TOKEN|-`: the employee's enrollment (src/enroll/join-client.ts). Exit 0 joined
 * (also when waiting for approval), 3 a damaged token or files in the way, 4 the server refused.
 */
import os from 'node:os';
import type { Command } from 'commander';
import { renderUnicodeCompact } from 'uqr';
import { defaultClientConfigFile, userConfigDir } from '../config/client-config.js';
import { decodeInviteToken } from '../enroll/invite-token.js';
import { joinWithToken } from '../enroll/join-client.js';
import { escapeText } from '../log/escape.js';
import { createLogger, type LogLevel } from '../log/logger.js';
import { readAll } from './io.js';

const MAX_TOKEN_INPUT_BYTES = 4_096;

export function registerJoinCommand(program: Command): void {
  program
    .command('join')
    .description("an employee's enrollment: generate a key here, register it with the invitation token, write client.toml")
    .argument('<token>', 'the token from twoway invite, or - to read it from stdin')
    .option('--dir <dir>', 'where to write client.toml and client.key (default: $XDG_CONFIG_HOME/twoway, else ~/.config/twoway)')
    .option('--force', 'replace an existing client.toml and client.key')
    .addHelpText(
      'after',
      '\nExamples:\n  twoway join twoway-invite:AQ...\n  twoway join - < invite.txt\n' +
        '\nNothing is written unless the server accepted the token; the private key never leaves this machine.\n',
    )
    .action(async (tokenArg: string, opts: { dir?: string; force?: boolean }, cmd: Command) => {
      const text = tokenArg === '-' ? (await readAll(process.stdin, MAX_TOKEN_INPUT_BYTES)).toString('utf8') : tokenArg;
      const token = decodeInviteToken(text);
      const level = cmd.optsWithGlobals().logLevel as LogLevel;
      const logger = createLogger({ level: level === 'info' ? 'warn' : level, destination: process.stderr, base: { role: 'join' } });
      const dir = opts.dir ?? userConfigDir(process.env, os.homedir());
      const r = await joinWithToken({ token, dir, force: opts.force === true, hostname: os.hostname(), logger });
      const out: string[] = [`joined as ${r.name}; wrote ${r.configFile} and the new private key ${r.keyFile} (mode 0600)`];
      if (r.pending) out.push(`waiting for an administrator's approval: ask them to run: twoway peers approve ${r.name}`);
      if (r.totpUri !== undefined) {
        out.push('your authenticator secret, shown this once (scan it or add it to your authenticator app):', escapeText(r.totpUri));
        if (process.stdout.isTTY) out.push(renderUnicodeCompact(r.totpUri));
      } else if (r.verify !== undefined) {
        out.push(`this peer verifies the person (${r.verify}): after connecting, run: twoway login`);
      }
      const isDefault = r.configFile === defaultClientConfigFile(process.env, os.homedir());
      out.push(`start the tunnel: twoway client${isDefault ? '' : ` --config ${r.configFile}`}`);
      process.stdout.write(`${out.join('\n')}\n`);
    });
}
