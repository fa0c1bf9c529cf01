import { Command, CommanderError, Option } from 'commander';
import { EXIT } from './exit-codes.js';
import { exitCodeFor, printError } from './fail.js';
import { keygen, pubkey } from './key-commands.js';
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

  registerDaemonCommands(program);
  return program;
}

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

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    printError(err, true);
    process.exitCode = EXIT.failure;
  },
);
