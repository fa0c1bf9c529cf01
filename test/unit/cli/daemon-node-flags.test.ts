import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { daemonNodeFlags, parseShebangNodeFlags } from '../../../src/cli/daemon-node-flags.js';

describe('daemon node flags (bin/twoway shebang)', () => {
  it('parses the flags after node in an env -S shebang, and none from a plain one', () => {
    expect(parseShebangNodeFlags('#!/usr/bin/env -S node --a=1  --b\n')).toEqual(['--a=1', '--b']);
    expect(parseShebangNodeFlags('#!/usr/bin/env node')).toEqual([]);
    expect(() => parseShebangNodeFlags('#!/bin/sh')).toThrow(/not a node shebang/);
    expect(() => parseShebangNodeFlags('// no shebang')).toThrow(/not a node shebang/);
  });

  it("bin/twoway's flags are ones this node accepts at start-up", () => {
    const flags = daemonNodeFlags();
    expect(flags).toContain('--initial-old-space-size=64');
    const run = spawnSync(process.execPath, [...flags, '-e', 'process.exit(7)'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(7);
  });
});
