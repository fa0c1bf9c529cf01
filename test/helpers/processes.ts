import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseLogLine } from './strict-json.js';
import { waitUntil } from './wait.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TWOWAY_BIN = path.join(REPO_ROOT, 'bin', 'twoway');

/** A child process started by a test, with its output collected and a bounded wait for lines. */
export class Proc {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(command: string, args: readonly string[], options: SpawnOptions = {}) {
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
    this.child.stdout?.on('data', (c: Buffer) => (this.stdout += c.toString('utf8')));
    this.child.stderr?.on('data', (c: Buffer) => (this.stderr += c.toString('utf8')));
    this.child.stdin?.on('error', () => {});
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    running.add(this);
    void this.exited.then(() => running.delete(this));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get output(): string {
    return this.stdout + this.stderr;
  }

  /**
   * JSON log lines (pino) printed on stdout so far, parsed strictly: a line with a duplicate key
   * or that is not JSON throws (log pipelines reject such lines). The last, unfinished line is
   * left for later.
   */
  logLines(): Array<Record<string, unknown>> {
    // Each line is parsed once: stdout only grows, and tests poll this many times.
    if (this.stdout.length < this.#parsedUpTo) {
      this.#parsedUpTo = 0;
      this.#parsed = [];
    }
    const end = this.stdout.lastIndexOf('\n') + 1;
    if (end > this.#parsedUpTo) {
      const fresh = this.stdout
        .slice(this.#parsedUpTo, end)
        .split('\n')
        .filter((line) => line.startsWith('{'));
      this.#parsed.push(...fresh.map(parseLogLine));
      this.#parsedUpTo = end;
    }
    return [...this.#parsed];
  }

  #parsedUpTo = 0;
  #parsed: Array<Record<string, unknown>> = [];

  /** Waits until `predicate(output)` holds, failing with the output after `timeoutMs`. */
  async waitFor(predicate: (proc: Proc) => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    await waitUntil(() => predicate(this), `${what}\n--- output of pid ${this.pid} ---\n${this.output.slice(-3000)}`, timeoutMs, this.exited);
  }

  /** Waits for a log line with `event` (and optional extra matching fields). */
  async waitForEvent(event: string, match: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined;
    await this.waitFor(
      () => {
        found = this.logLines().find((l) => l.event === event && Object.entries(match).every(([k, v]) => l[k] === v));
        return found !== undefined;
      },
      `log event ${event} ${JSON.stringify(match)}`,
      timeoutMs,
    );
    return found!;
  }

  /** Sends a signal to this process (by PID: we stop only what we started). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }

  async stop(timeoutMs = 5_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}

const running = new Set<Proc>();

/** Stops every process the tests in this file started (call from afterEach/afterAll). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop()));
}

/** Starts `bin/twoway` with arguments. */
export function twoway(args: readonly string[], options: SpawnOptions = {}): Proc {
  return new Proc(process.execPath, [TWOWAY_BIN, ...args], {
    ...options,
    env: { ...process.env, NO_COLOR: '1', ...(options.env ?? {}) },
  });
}

/** Runs `bin/twoway` to completion, feeding `input` on stdin. */
export async function runTwoway(
  args: readonly string[],
  options: SpawnOptions & { input?: string | Buffer; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = twoway(args, options);
  if (options.input !== undefined) proc.child.stdin?.end(options.input);
  else proc.child.stdin?.end();
  const timer = setTimeout(() => proc.kill('SIGKILL'), options.timeoutMs ?? 20_000);
  const { code } = await proc.exited;
  clearTimeout(timer);
  return { code, stdout: proc.stdout, stderr: proc.stderr };
}
