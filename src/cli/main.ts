import os from 'node:os';
import { Command, CommanderError, Option } from 'commander';
import { defaultClientConfigFile, userConfigDir } from '../config/client-config.js';
import { EXIT } from './exit-codes.js';
import { exitCodeFor, printError } from './fail.js';
import { genpsk, keygen, pubkey } from './key-commands.js';
import { initClient } from './init-command.js';
import { registerDaemonCommands } from './daemon-commands.js';
import { VERSION } from '../version.js';

/**
 * The `twoway` command line. The only code that reads argv and the environment and calls
 * process.exit; everything below receives plain options.
 */
function buildProgram(): Command {
  const program = new Command('twoway')
    .description('A mutually authenticated tunnel: Noise IKpsk2 over WebSocket, encrypted TCP streams.')
    .version(VERSION, '-V, --version', 'print the version')
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'))
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('keygen')
    .description('print a new private key (base64, WireGuard format)')
    .addHelpText('after', '\nExample:\n  umask 077; twoway keygen > client.key; twoway pubkey < client.key > client.pub\n')
    .action(() => keygen(process.stdout));

  program
    .command('pubkey')
    .description('read a private key on stdin and print its public key')
    .addHelpText('after', '\nExample:\n  twoway pubkey < /etc/twoway/server.key\n')
    .action(async () => pubkey(process.stdin, process.stdout));

  program
    .command('genpsk')
    .description('print a new pre-shared key (32 random bytes, base64, as wg genpsk)')
    .addHelpText('after', '\nExample:\n  (umask 077; twoway genpsk > alice.psk)   # give the same file to alice, mode 0600\n')
    .action(() => genpsk(process.stdout));

  program
    .command('init')
    .description("an employee's set-up without root: write client.toml and a new key, print the public key")
    .requiredOption('--server-url <url>', "the server's URL, from the administrator (ws:// or wss://)")
    .requiredOption('--server-public-key <key>', "the server's public key (base64), from the administrator")
    .option('--dir <dir>', 'where to write client.toml and client.key (default: $XDG_CONFIG_HOME/twoway, else ~/.config/twoway)')
    .option('--force', 'rewrite an existing client.toml (an existing client.key is kept)')
    .addHelpText(
      'after',
      '\nExample:\n  twoway init --server-url wss://vpn.corp.example/twoway --server-public-key "$(cat server.pub)" > alice.pub\n' +
        '\nThe public key is printed alone on stdout: send it to the administrator. Existing files are\n' +
        'never overwritten without --force, and the key never.\n',
    )
    .action((opts: { serverUrl: string; serverPublicKey: string; dir?: string; force?: boolean }) => {
      const result = initClient({
        dir: opts.dir ?? userConfigDir(process.env, os.homedir()),
        serverUrl: opts.serverUrl,
        serverPublicKey: opts.serverPublicKey,
        force: opts.force === true,
      });
      process.stdout.write(`${result.publicKey}\n`);
      process.stderr.write(
        `wrote ${result.configFile}; ${result.keyCreated ? 'new private key' : 'kept the private key'} ${result.keyFile} (mode 0600)\n` +
          `send the public key printed above to your administrator, then run: twoway client${result.configFile === defaultClientConfigFile(process.env, os.homedir()) ? '' : ` --config ${result.configFile}`}\n`,
      );
    });

  registerDaemonCommands(program);
  return program;
}

/**
 * True once stdout or stderr failed (EPIPE: `twoway help status | head -1` closed the pipe).
 * Without a listener that 'error' event would crash the process with a stack trace.
 */
let outputLost = false;

/** A reader that goes away ends our output quietly; the exit status says the output was cut. */
function endQuietlyOnClosedOutput(stream: NodeJS.WriteStream): void {
  stream.on('error', () => {
    outputLost = true;
    if (finished && (process.exitCode === undefined || process.exitCode === EXIT.ok)) process.exitCode = EXIT.failure;
  });
}
let finished = false;

async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are successful exits; everything else commander reports is a usage error.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
      return EXIT.usage;
    }
    printError(err, process.env.TWOWAY_DEBUG === '1');
    return exitCodeFor(err);
  }
}

endQuietlyOnClosedOutput(process.stdout);
endQuietlyOnClosedOutput(process.stderr);

main(process.argv).then(
  (code) => {
    finished = true;
    process.exitCode = code === EXIT.ok && outputLost ? EXIT.failure : code;
  },
  (err: unknown) => {
    finished = true;
    printError(err, true);
    process.exitCode = EXIT.failure;
  },
);
