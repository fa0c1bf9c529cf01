/**
 * `control_socket_mode` and `control_socket_group`: who besides the daemon's user may use its
 * control socket (the system client unit's socket for members of group twoway, issue 12 item 4).
 * Anyone who can connect may open streams as this client, so "others" never may.
 */
import type { TableReader } from './fields.js';

export interface ControlSocketAccess {
  /** 0o600 (the default) or 0o660. */
  readonly mode: number;
  /** A group name (or a numeric gid) that gets the group bits; the daemon's own group if unset. */
  readonly group?: string;
}

export const DEFAULT_CONTROL_SOCKET_MODE = 0o600;
const GROUP = /^(?:[A-Za-z_][A-Za-z0-9_.-]{0,31}|[0-9]{1,10})$/;

/** Reads both keys from `c` ([client]); a mode is a string of octal digits ("0660") or a TOML 0o660. */
export function readControlSocketAccess(c: TableReader): ControlSocketAccess {
  const raw = c.raw('control_socket_mode');
  let mode = DEFAULT_CONTROL_SOCKET_MODE;
  if (raw !== undefined) {
    if (typeof raw === 'string' && /^0?[0-7]{3}$/.test(raw)) mode = Number.parseInt(raw, 8);
    else if (typeof raw === 'number' && Number.isInteger(raw)) mode = raw;
    else throw c.fail('control_socket_mode', `expected an octal mode such as "0660", got ${JSON.stringify(raw)}`);
    if (mode !== 0o600 && mode !== 0o660) {
      throw c.fail(
        'control_socket_mode',
        `must be "0600" (only this user) or "0660" (and its group), got "${mode.toString(8).padStart(4, '0')}": whoever can connect may open streams as this client`,
      );
    }
  }
  const group = c.optionalString('control_socket_group');
  if (group !== undefined && !GROUP.test(group))
    throw c.fail('control_socket_group', `expected a group name such as "twoway", got ${JSON.stringify(group.slice(0, 40))}`);
  if (group !== undefined && mode === DEFAULT_CONTROL_SOCKET_MODE) {
    throw c.fail('control_socket_group', 'has no effect with control_socket_mode "0600": set control_socket_mode = "0660" too');
  }
  return group === undefined ? { mode } : { mode, group };
}
