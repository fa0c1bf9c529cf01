import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { Option, type Command } from 'commander';
import { checkConfig, detectConfigKind } from '../config/check-config.js';
import { readTomlFile } from '../config/toml-file.js';
import { defaultClientConfigFile, loadClientConfig } from '../config/client-config.js';
import { loadServerConfig } from '../config/server-config.js';
import { ConfigError } from '../errors.js';
import type { LogLevel } from '../log/logger.js';
import { clientCommand } from './client-command.js';
import { connectCommand, findClientConfig } from './connect-command.js';
import { reconnectCommand } from './reconnect-command.js';
import { demoCommand } from './demo-command.js';
import { EXIT } from './exit-codes.js';
import { CliError } from './fail.js';
import { addPeer, formatPeersResult, listPeers, removePeer, setPeer } from './peers-command.js';
import { serverCommand } from './server-command.js';
import { statusCommand } from './status-command.js';
import { checkDevicePinned, checkTarget } from './targets.js';
import { parseDurationMs, registerVerifyCommands } from './verify-commands.js';
import { registerInviteCommands } from './invite-command.js';
import { registerJoinCommand } from './join-command.js';

const DEFAULT_SERVER_CONFIG = '/etc/twoway/server.toml';
/** `$TWOWAY_CONFIG`, else `$XDG_CONFIG_HOME/twoway/client.toml` (`~/.config/twoway/client.toml`). */
const DEFAULT_CLIENT_CONFIG = defaultClientConfigFile(process.env, os.homedir());

function logLevel(cmd: Command): LogLevel {
  return cmd.optsWithGlobals().logLevel as LogLevel;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Registers every command that runs or talks to a daemon. */
export function registerDaemonCommands(program: Command): void {
  program
    .command('server')
    .description('run the server daemon in the foreground (systemd: twoway-server.service)')
    .option('-c, --config <file>', 'server config file', DEFAULT_SERVER_CONFIG)
    .option('--debug-relay-capture <file>', 'append every byte relayed to or from devices to FILE (0600): shows what the server can see')
    .addHelpText('after', '\nExample:\n  twoway server --config /etc/twoway/server.toml\n\nSIGHUP reloads the allowlist; SIGTERM drains streams and stops.\n')
    .action(async (opts: { config: string; debugRelayCapture?: string }, cmd: Command) =>
      serverCommand({ config: opts.config, logLevel: logLevel(cmd), ...(opts.debugRelayCapture ? { relayCapture: opts.debugRelayCapture } : {}) }),
    );

  program
    .command('client')
    .description('run the client daemon in the foreground (systemd: twoway-client@NAME.service)')
    .option('-c, --config <file>', 'client config file', DEFAULT_CLIENT_CONFIG)
    .option('-L, --forward <listen=target>', 'one-off local forward, repeatable', collect, [])
    .option('-D, --socks <listen>', 'one-off SOCKS5 listener, repeatable', collect, [])
    .addHelpText(
      'after',
      '\nExamples:\n  twoway client --config /etc/twoway/client-work.toml\n  twoway client -c client.toml -L 127.0.0.1:5432=db.corp.example:5432 -D 127.0.0.1:1080\n',
    )
    .action(async (opts: { config: string; forward: string[]; socks: string[] }, cmd: Command) =>
      clientCommand({ config: opts.config, logLevel: logLevel(cmd), forward: opts.forward, socks: opts.socks }),
    );

  program
    .command('connect')
    .description('connect stdin/stdout to HOST:PORT through the tunnel (ssh ProxyCommand)')
    .argument('<target>', 'HOST:PORT as the server sees it')
    .option('-c, --config <file>', 'client config file (default: $TWOWAY_CONFIG, else ~/.config/twoway/client.toml)')
    .option('-s, --socket <path>', "the client daemon's control socket (default: the config's control_socket)")
    .addHelpText('after', '\nExample (~/.ssh/config):\n  Host *.corp.example\n    ProxyCommand twoway connect %h:%p\n')
    .action(async (target: string, opts: { config?: string; socket?: string }, cmd: Command) => {
      // Usage errors (exit 2) before any handshake: the target's form, and a device's pin.
      checkTarget(target, 'connect: target');
      if (opts.socket === undefined) {
        const file = findClientConfig(opts.config, process.env);
        checkDevicePinned(target, new Set(loadClientConfig(file, { env: process.env }).devices.map((d) => d.name)), 'connect: target', file);
      }
      process.exitCode = await connectCommand(target, { ...opts, logLevel: logLevel(cmd) });
    });

  program
    .command('reconnect')
    .description('ask the running client daemon to reconnect now instead of waiting out its backoff')
    .option('-c, --config <file>', "the client's config file (to find its control socket; default as for connect)")
    .option('-s, --socket <path>', 'the control socket itself')
    .addHelpText('after', '\nExamples:\n  twoway reconnect\n  twoway reconnect --socket /run/twoway/client-work.sock\n')
    .action(async (opts: { config?: string; socket?: string }) => {
      await reconnectCommand(controlSocketOf(opts), process.stdout);
    });

  program
    .command('status')
    .description("show a running daemon's sessions, streams and forwards")
    .option('-c, --config <file>', "the daemon's config file, to find its control socket (default: $TWOWAY_CONFIG, else ~/.config/twoway/client.toml)")
    .option('-s, --socket <path>', 'the control socket itself')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExamples:\n  twoway status --config /etc/twoway/server.toml\n  twoway status --socket /run/twoway/client-work.sock --json\n')
    .action(async (opts: { config?: string; socket?: string; json?: boolean }) => {
      await statusCommand(controlSocketOf(opts), opts.json === true, process.stdout);
    });

  program
    .command('check-config')
    .description('validate a server, client or peers file and the key files it names')
    .argument('<file>')
    .option('--user <name>', 'the user the daemon runs as, who must own the key files (default: the user running this check)')
    .addHelpText('after', '\nExample:\n  twoway check-config --user twoway /etc/twoway/server.toml && systemctl reload twoway-server\n')
    .action((file: string, opts: { user?: string }) => {
      const checked = checkConfig(file, { env: process.env, ...(opts.user !== undefined ? { owner: { uid: userId(opts.user), name: opts.user } } : {}) });
      process.stdout.write(`ok: ${file} is a valid ${checked.kind} file (checked: ${checked.filesChecked.join(', ')})\n`);
    });

  const peers = program
    .command('peers')
    .description("edit the server's allowlist and reload the running server")
    .action(() => {
      // A subcommand is required: usage on stderr, exit 2.
      process.stderr.write(`twoway: peers: a subcommand is required (list, add, set, remove, approve)\n${peers.helpInformation()}`);
      process.exitCode = EXIT.usage;
    });
  peers
    .command('list')
    .option('-c, --config <file>', 'server config file', DEFAULT_SERVER_CONFIG)
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  twoway peers list --config /etc/twoway/server.toml --json\n')
    .action((opts: { config: string; json?: boolean }) => printPeers(listPeers(opts.config), opts.json));
  peers
    .command('add')
    .argument('<name>', 'a unique name: letters, digits, . _ -')
    .requiredOption('-k, --public-key <key>', "the peer's public key (base64)")
    .option('-a, --allow <rule>', 'a target it may reach, HOST:PORTS (repeatable)', collect, [])
    .option('-d, --device <rule>', 'a device service it may reach, DEVICE:SERVICE, * for any (repeatable)', collect, [])
    .option('--reverse <entry>', 'for a device: a reverse listener, SERVICE=HOST:PORT (repeatable)', collect, [])
    .option('--psk-file <file>', 'a pre-shared key file (mode 0600)')
    .addOption(new Option('--kind <kind>', 'user or device').choices(['user', 'device']).default('user'))
    .option('-c, --config <file>', 'server config file', DEFAULT_SERVER_CONFIG)
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      '\nExamples:\n  twoway peers add alice --public-key "$(cat alice.pub)" --allow 10.1.0.0/16:22 --allow db.corp.example:5432 --device build1:ssh\n' +
        '  twoway peers add build1 --kind device --public-key "$(cat build1.pub)" --reverse ssh=127.0.0.1:2222\n',
    )
    .action(
      async (
        name: string,
        opts: {
          publicKey: string;
          allow: string[];
          device: string[];
          reverse: string[];
          pskFile?: string;
          kind: 'user' | 'device';
          config: string;
          json?: boolean;
        },
      ) =>
        printPeers(
          await addPeer(opts.config, {
            name,
            publicKey: opts.publicKey,
            allow: opts.allow,
            devices: opts.device,
            reverse: opts.reverse,
            kind: opts.kind,
            ...(opts.pskFile ? { pskFile: opts.pskFile } : {}),
          }),
          opts.json,
        ),
    );
  peers
    .command('set')
    .argument('<name>', 'an existing peer')
    .description("change a peer's access rules, device grants, psk or key; its sessions stay, streams it may no longer reach are reset")
    .option('-a, --allow <rule>', 'replace the access rules with these, HOST:PORTS (repeatable)', collect)
    .option('--add-allow <rule>', 'add an access rule (repeatable)', collect, [])
    .option('--remove-allow <rule>', 'remove an access rule, spelled as listed (repeatable)', collect, [])
    .option('-d, --device <rule>', 'replace the device grants with these, DEVICE:SERVICE (repeatable)', collect)
    .option('--add-device <rule>', 'add a device grant (repeatable)', collect, [])
    .option('--remove-device <rule>', 'remove a device grant (repeatable)', collect, [])
    .option('--reverse <entry>', "replace a device's reverse listeners, SERVICE=HOST:PORT (repeatable)", collect)
    .option('--psk-file <file>', 'use this pre-shared key file (mode 0600)')
    .option('--no-psk', "drop the peer's pre-shared key")
    .option('-k, --public-key <key>', "a new public key for the peer (base64); the old key's sessions close")
    .addOption(new Option('--verify <method>', 'the person must verify before any stream: totp, oidc, or none').choices(['totp', 'oidc', 'none']))
    .option('--verify-valid <duration>', 'how long a verification lasts, across reconnects (8h, 30m; default 8h)')
    .option('--identity <id>', 'OIDC: the identity (email or subject) that must sign in with this key')
    .option('-c, --config <file>', 'server config file', DEFAULT_SERVER_CONFIG)
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      '\nExamples:\n  twoway peers set alice --add-device build1:ssh\n  twoway peers set alice --allow 10.1.0.0/16:22 --remove-device build1:ssh --psk-file /etc/twoway/peers/alice.psk\n' +
        '\nA flag not given leaves that part as it is. The running server reloads: her live sessions stay,\nstreams to targets no longer allowed are reset; a new psk applies from her next handshake;\na new --public-key closes the sessions of the old key at once.\n',
    )
    .action(
      async (
        name: string,
        opts: {
          allow?: string[];
          addAllow: string[];
          removeAllow: string[];
          device?: string[];
          addDevice: string[];
          removeDevice: string[];
          reverse?: string[];
          pskFile?: string;
          psk: boolean;
          publicKey?: string;
          verify?: 'totp' | 'oidc' | 'none';
          verifyValid?: string;
          identity?: string;
          config: string;
          json?: boolean;
        },
      ) => {
        if (opts.pskFile !== undefined && !opts.psk) throw new CliError('peers set: --psk-file and --no-psk contradict each other', EXIT.usage);
        const changes = {
          ...(opts.allow ? { allow: opts.allow } : {}),
          addAllow: opts.addAllow,
          removeAllow: opts.removeAllow,
          ...(opts.device ? { devices: opts.device } : {}),
          addDevices: opts.addDevice,
          removeDevices: opts.removeDevice,
          ...(opts.reverse ? { reverse: opts.reverse } : {}),
          ...(opts.pskFile !== undefined ? { pskFile: opts.pskFile } : !opts.psk ? { pskFile: null } : {}),
          ...(opts.publicKey !== undefined ? { publicKey: opts.publicKey } : {}),
          ...(opts.verify !== undefined ? { verify: opts.verify === 'none' ? null : opts.verify } : {}),
          ...(opts.verifyValid !== undefined ? { verifyValidMs: parseDurationMs(opts.verifyValid, '--verify-valid') } : {}),
          ...(opts.identity !== undefined ? { identity: opts.identity } : {}),
        };
        printPeers(await setPeer(opts.config, name, changes), opts.json);
      },
    );
  peers
    .command('remove')
    .argument('<name>')
    .option('-c, --config <file>', 'server config file', DEFAULT_SERVER_CONFIG)
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  twoway peers remove alice   # her sessions are closed within a second\n')
    .action(async (name: string, opts: { config: string; json?: boolean }) => printPeers(await removePeer(opts.config, name), opts.json));
  registerInviteCommands(program, peers, DEFAULT_SERVER_CONFIG);
  registerJoinCommand(program);

  registerVerifyCommands(program, peers, { serverConfig: DEFAULT_SERVER_CONFIG, controlSocketOf });

  program
    .command('demo')
    .description('run a working tunnel on loopback with throwaway keys, show what happened, and exit')
    .addHelpText('after', '\nExample:\n  twoway demo\n')
    .action(async () => demoCommand(process.stdout));
}

function printPeers(result: ReturnType<typeof listPeers>, json: boolean | undefined): void {
  process.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : formatPeersResult(result));
  if (result.reload && !result.reload.ok && result.reload.detail.includes('refused')) process.exitCode = 1;
}

/** The uid of a user name (as `id -u` finds it, NSS included) or a numeric uid. */
function userId(user: string): number {
  if (/^\d{1,10}$/.test(user)) return Number(user);
  if (!/^[A-Za-z0-9._][A-Za-z0-9._-]{0,63}\$?$/.test(user)) throw new CliError(`--user ${JSON.stringify(user.slice(0, 64))}: not a user name`, EXIT.usage);
  try {
    return Number(execFileSync('id', ['-u', '--', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    throw new CliError(`--user ${user}: no such user`, EXIT.usage);
  }
}

function controlSocketOf(opts: { config?: string; socket?: string }): string {
  if (opts.socket) return opts.socket;
  const file = opts.config ?? DEFAULT_CLIENT_CONFIG;
  const kind = detectConfigKind(file, readTomlFile(file));
  if (kind === 'server') return loadServerConfig(file).controlSocket;
  if (kind === 'client') {
    const socket = loadClientConfig(file, { env: process.env }).controlSocket;
    if (socket) return socket;
    throw new ConfigError('ERR_CONFIG', `${file}: [client].control_socket is not set, so there is no daemon to ask`);
  }
  throw new ConfigError('ERR_CONFIG', `${file}: a peers file has no daemon; give the server's config file`);
}
