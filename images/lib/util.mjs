// Small helpers shared by the image builder (Node builtins only).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const t0 = Date.now();
export const elapsed = () => ((Date.now() - t0) / 1000).toFixed(1).padStart(6) + 's';
/** Progress line on stderr: `[  12.3s] phase: message`. */
export function log(phase, msg = '') {
  process.stderr.write(`[${elapsed()}] ${phase}${msg ? ': ' + msg : ''}\n`);
}

export const cacheRoot = () =>
  path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'linux-vm');

/**
 * Run a command. Output goes to stderr unless `capture` (then stdout is returned as a string).
 * `quiet` keeps child output for the error message instead of printing it.
 */
export function run(cmd, args, { cwd, capture = false, quiet = false, env, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd,
      env: env ? { ...process.env, ...env } : process.env,
      stdio: [input === undefined ? 'ignore' : 'pipe', capture || quiet ? 'pipe' : process.stderr, quiet ? 'pipe' : process.stderr],
    });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => (err += d));
    if (input !== undefined) child.stdin.end(input);
    child.on('error', (e) => reject(new Error(`${cmd}: ${e.message}` + (e.code === 'ENOENT' ? ' (not installed?)' : ''))));
    child.on('close', (code, signal) => {
      if (code === 0) resolve(out);
      else {
        const tail = (err || (capture ? '' : out)).trim().split('\n').slice(-15).join('\n');
        reject(new Error(`${cmd} ${args.join(' ')} failed (${signal || 'exit ' + code})${tail ? '\n' + tail : ''}`));
      }
    });
  });
}

/** Run a shell pipeline (/bin/sh -c). */
export const sh = (script, opts) => run('/bin/sh', ['-ec', script], opts);

export const sha256 = (data) => createHash('sha256').update(data).digest('hex');

export function sha256File(file) {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file, { highWaterMark: 4 << 20 })
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

export async function exists(p) {
  try {
    await fs.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** Replace (or create) symlink `link` -> `target` atomically. */
export async function symlinkAtomic(target, link) {
  await fs.mkdir(path.dirname(link), { recursive: true });
  const tmp = `${link}.tmp-${process.pid}`;
  await fs.rm(tmp, { force: true });
  await fs.symlink(target, tmp);
  await fs.rename(tmp, link);
}

/** Disk usage (allocated bytes) of a tree. */
export async function duBytes(dir) {
  const out = await run('du', ['-s', '--block-size=1', dir], { capture: true });
  return Number(out.split(/\s/)[0]);
}

export const MiB = 1024 * 1024;
