import { controlRequest } from '../control/control-client.js';
import { ConfigError } from '../errors.js';
import { EXIT } from './exit-codes.js';
import { CliError } from './fail.js';

/**
 * `twoway reconnect`: asks the running client daemon to try its server now instead of waiting out
 * its backoff, and reports how that attempt ended (exit 0 connected or still trying, 1 failed).
 */
export async function reconnectCommand(socketPath: string, stdout: NodeJS.WritableStream): Promise<void> {
  const reply = await controlRequest(socketPath, { cmd: 'reconnect' });
  if (!reply.ok) throw new ConfigError('ERR_CONTROL', `control socket ${socketPath}: ${String(reply.error)}`);
  const lastError = typeof reply.lastError === 'string' ? reply.lastError : undefined;
  switch (reply.state) {
    case 'connected':
      stdout.write('connected\n');
      return;
    case 'connecting':
      stdout.write('reconnecting: the attempt is still under way (see twoway status)\n');
      return;
    default:
      throw new CliError(`reconnect failed: ${lastError ?? 'the attempt failed'}`, EXIT.failure);
  }
}
