// Boots a <linux-vm> guest image (images/dist/<name>/manifest.json) in qemu-system-i386 with TCG, the same
// kernel, initrd, cmdline, memory and disk as v86 gets, the shell on a virtio console (QEMU's stdio) and
// kernel messages (ttyS0) in a log file. Debian package: qemu-system-x86.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const PROMPT = '\x1b]133;A\x07';
const WAIT_REQUEST = '\x1b]7701;wait\x07'; // the guest asks for one line: "go <unix-seconds> <64 hex>"

export class QemuVm {
  /** @param {string} imageDir  images/dist/<name> */
  constructor(imageDir, { serialLog = '/dev/null', qemu = process.env.QEMU ?? 'qemu-system-i386' } = {}) {
    const manifest = JSON.parse(readFileSync(path.join(imageDir, 'manifest.json'), 'utf8'));
    const file = (name) => path.join(imageDir, name);
    this.args = [
      '-accel', 'tcg', '-nographic', '-m', String(manifest.memoryMiB),
      '-kernel', file(manifest.kernel), '-initrd', file(manifest.initrd), '-append', manifest.cmdline,
      '-monitor', 'none', '-serial', `file:${serialLog}`, '-nic', 'none',
      '-device', 'virtio-serial-pci', '-chardev', 'stdio,id=c0,signal=off', '-device', 'virtconsole,chardev=c0',
      // The disk is the guest's root, mounted rw: snapshot=on keeps its writes out of the image file.
      ...(manifest.disk ? ['-drive', `file=${file(manifest.disk.url)},format=raw,if=ide,index=0,media=disk,snapshot=on`] : []),
    ];
    this.qemu = qemu;
    this.output = ''; // everything the guest wrote to the console, as latin1
    this.waiters = new Set();
    this.answeredWait = false;
  }

  get pid() {
    return this.process.pid;
  }

  /** Starts QEMU; resolves with the seconds to the first prompt. */
  async boot(timeoutMs = 300_000) {
    const started = performance.now();
    this.process = spawn(this.qemu, this.args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    this.process.stderr.on('data', (d) => (stderr += d));
    this.exited = new Promise((resolve) => this.process.on('exit', (code, signal) => {
      this.exitReason = `qemu exited (${signal ?? code}): ${stderr.trim()}`;
      for (const w of this.waiters) w.check();
      resolve();
    }));
    this.process.stdout.on('data', (data) => {
      this.output += data.toString('latin1');
      if (!this.answeredWait && this.output.includes(WAIT_REQUEST)) {
        this.answeredWait = true;
        this.process.stdin.write(`go ${Math.floor(Date.now() / 1000)} ${randomBytes(32).toString('hex')}\n`);
      }
      for (const w of this.waiters) w.check();
    });
    await this.waitFor(PROMPT, 0, timeoutMs);
    return (performance.now() - started) / 1000;
  }

  /** Resolves with the output index just after `text`, first found at or after `from`. */
  waitFor(text, from, timeoutMs) {
    return new Promise((resolve, reject) => {
      const waiter = {
        check: () => {
          const i = this.output.indexOf(text, from);
          if (i >= 0) {
            finish();
            resolve(i + text.length);
          } else if (this.exitReason) {
            finish();
            reject(new Error(this.exitReason));
          }
        },
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`qemu: no ${JSON.stringify(text)} after ${timeoutMs} ms; output:\n${this.output.slice(from).slice(-2000)}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
      waiter.check();
    });
  }

  /** Types `command` + Enter; resolves at `marker` in the output: { hostMs, text (output since typing) }. */
  async runCommand(command, marker, timeoutMs) {
    const from = this.output.length;
    const started = performance.now();
    this.process.stdin.write(command + '\n');
    const end = await this.waitFor(marker, from, timeoutMs);
    const hostMs = performance.now() - started;
    const lineEnd = this.output.indexOf('\n', end);
    if (lineEnd < 0) await this.waitFor('\n', end, timeoutMs);
    return { hostMs, text: this.output.slice(from, this.output.indexOf('\n', end) + 1) };
  }

  async stop() {
    if (!this.process || this.process.exitCode !== null || this.process.signalCode) return;
    this.process.kill('SIGTERM');
    await this.exited;
  }
}
