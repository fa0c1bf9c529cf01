import { Option, type Command } from 'commander';
import { checkConfig, detectConfigKind } from '../config/check-config.js';
import { readTomlFile } from '../config/toml-file.js';
import { loadClientConfig } from '../config/client-config.js';
import { loadServerConfig } from '../config/server-config.js';
import { ConfigError } from '../errors.js';
import type { LogLevel } from '../log/logger.js';
import { compileRules } from '../policy/access-rules.js';
import { clientCommand } from './client-command.js';
import { connectCommand } from './connect-command.js';
import { demoCommand } from './demo-command.js';
import { addPeer, formatPeersResult, listPeers, removePeer } from './peers-command.js';
import { serverCommand } from './server-command.js';
import { statusCommand } from './status-command.js';

const DEFAULT_SERVER_CONFIG = '/etc/twoway/server.toml';
const DEFAULT_CLIENT_CONFIG = process.env.TWOWAY_CONFIG ?? '/etc/twoway/client.toml';

function logLevel(cmd: Command): LogLevel {
  return cmd.optsWithGlobals().logLevel as LogLevel;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
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
    .addHelpText('after', '\nExamples:\n  twoway client --config /etc/twoway/client-work.toml\n  twoway client -c client.toml -L 127.0.0.1:5432=db.corp.example:5432 -D 127.0.0.1:1080\n')
    .action(async (opts: { config: string; forward: string[]; socks: string[] }, cmd: Command) =>
      clientCommand({ config: opts.config, logLevel: logLevel(cmd), forward: opts.forward, socks: opts.socks }),
    );

  program
    .command('connect')
    .description('connect stdin/stdout to HOST:PORT through the tunnel (ssh ProxyCommand)')
    .argument('<target>', 'HOST:PORT as the server sees it')
    .option('-c, --config <file>', 'client config file', DEFAULT_CLIENT_CONFIG)
    .addHelpText('after', "\nExample (~/.ssh/config):\n  Host *.corp.example\n    ProxyCommand twoway connect --config ~/.config/twoway/client.toml %h:%p\n")
    .action(async (target: string, opts: { config: string }, cmd: Command) => {
      process.exitCode = await connectCommand(target, { config: opts.config, logLevel: logLevel(cmd) });
    });

  program
    .command('status')
    .description("show a running daemon's sessions, streams and forwards")
    .option('-c, --config <file>', 'the daemon\'s config file (to find its control socket)')
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
    .addHelpText('after', '\nExample:\n  twoway check-config /etc/twoway/server.toml && systemctl reload twoway-server\n')
    .action((file: string) => {
      const checked = checkConfig(file, { env: process.env });
      const peers = checked.kind === 'server' ? checked.peers.peers : checked.kind === 'peers' ? checked.config.peers : [];
      peers.forEach((p, i) => {
        try {
          compileRules(p.allow);
        } catch (err) {
          throw new ConfigError('ERR_CONFIG', `${checked.kind === 'server' ? checked.peers.file : file}: [peer.${i + 1}] (${p.name}): allow: ${(err as Error).message}`);
        }
      });
      process.stdout.write(`ok: ${file} is a valid ${checked.kind} file (checked: ${checked.filesChecked.join(', ')})\n`);
    });

  const peers = program.command('peers').description("edit the server's allowlist and reload the running server");
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
    .action(async (name: string, opts: { publicKey: string; allow: string[]; device: string[]; reverse: string[]; pskFile?: string; kind: 'user' | 'device'; config: string; json?: boolean }) =>
      printPeers(
        await addPeer(opts.config, { name, publicKey: opts.publicKey, allow: opts.allow, devices: opts.device, reverse: opts.reverse, kind: opts.kind, ...(opts.pskFile ? { pskFile: opts.pskFile } : {}) }),
        opts.json,
      ),
    );
  peers
    .command('remove')
    .argument('<name>')
    .option('-c, --config <file>', 'server config file', DEFAULT_SERVER_CONFIG)
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExample:\n  twoway peers remove alice   # her sessions are closed within a second\n')
    .action(async (name: string, opts: { config: string; json?: boolean }) => printPeers(await removePeer(opts.config, name), opts.json));

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

function controlSocketOf(opts: { config?: string; socket?: string }): string {
  if (opts.socket) return opts.socket;
  const file = opts.config ?? DEFAULT_SERVER_CONFIG;
  const kind = detectConfigKind(file, readTomlFile(file));
  if (kind === 'server') return loadServerConfig(file).controlSocket;
  if (kind === 'client') {
    const socket = loadClientConfig(file, { env: process.env }).controlSocket;
    if (socket) return socket;
    throw new ConfigError('ERR_CONFIG', `${file}: [client].control_socket is not set, so there is no daemon to ask`);
  }
  throw new ConfigError('ERR_CONFIG', `${file}: a peers file has no daemon; give the server's config file`);
}
