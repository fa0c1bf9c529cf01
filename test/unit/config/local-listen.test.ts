import { describe, expect, it } from 'vitest';
import { parseForwardSpec } from '../../../src/cli/load-client.js';
import { parseLocalListen } from '../../../src/config/local-listen.js';

describe('local listen addresses', () => {
  it('reads host:port, unix:PATH and absolute paths; relative unix paths against the config file', () => {
    expect(parseLocalListen('127.0.0.1:1080')).toEqual({ host: '127.0.0.1', port: 1080 });
    expect(parseLocalListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseLocalListen('unix:/run/user/1000/a.sock')).toEqual({ path: '/run/user/1000/a.sock' });
    expect(parseLocalListen('/run/a.sock')).toEqual({ path: '/run/a.sock' });
    expect(parseLocalListen('unix:s/a.sock', '/etc/twoway/client.toml')).toEqual({ path: '/etc/twoway/s/a.sock' });
    expect(() => parseLocalListen('unix:')).toThrow(/expected a unix socket path/);
    expect(() => parseLocalListen('1080')).toThrow(/"unix:PATH" or an absolute path, got "1080"/);
  });

  it('-L and -D take unix sockets too', () => {
    expect(parseForwardSpec('unix:/tmp/x/db.sock=db.corp.example:5432')).toEqual({ listen: { path: '/tmp/x/db.sock' }, target: 'db.corp.example:5432' });
    expect(parseForwardSpec('127.0.0.1:2222=git:22')).toEqual({ listen: { host: '127.0.0.1', port: 2222 }, target: 'git:22' });
  });
});
