// Runs guest commands natively on the (x86-64, IA32-capable) host, with the guest image's own i386 binaries:
// a chroot into the image's root. tiny: the initramfs extracted to a temp directory; debian: disk.img
// loop-mounted read-only. Both get a tmpfs on /tmp (as in the guest), the host's /dev and a /proc.
// Needs root (mount, chroot).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', TERM: 'dumb', LANG: 'C' };

function must(command, args, options = {}) {
  const r = spawnSync(command, args, { encoding: 'utf8', ...options });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${r.error?.message ?? r.stderr?.trim() ?? r.status}`);
  return r.stdout;
}

export class NativeRoot {
  /** @param {string} imageDir  images/dist/<name> */
  constructor(imageDir) {
    this.manifest = JSON.parse(readFileSync(path.join(imageDir, 'manifest.json'), 'utf8'));
    this.imageDir = imageDir;
    this.mounts = [];
  }

  /** Prepares the root; `shell` is what the guest's console runs (busybox sh for tiny, bash for debian). */
  open() {
    this.dir = mkdtempSync(path.join(os.tmpdir(), `linux-vm-native-${this.manifest.name}-`));
    this.root = path.join(this.dir, 'root');
    must('mkdir', ['-p', this.root]);
    if (this.manifest.disk) {
      this.mount(['-o', 'ro,loop', path.join(this.imageDir, this.manifest.disk.url), this.root]);
      this.shell = '/bin/bash';
    } else {
      const initrd = path.join(this.imageDir, this.manifest.initrd);
      must('sh', ['-ec', 'gzip -dc < "$1" | (cd "$2" && cpio -idm --quiet)', 'sh', initrd, this.root]);
      this.shell = '/bin/sh';
    }
    this.mount(['-t', 'tmpfs', '-o', 'mode=1777', 'tmpfs', path.join(this.root, 'tmp')]);
    this.mount(['--bind', '/dev', path.join(this.root, 'dev')]);
    this.mount(['-t', 'proc', 'proc', path.join(this.root, 'proc')]);
    return this;
  }

  mount(args) {
    must('mount', args);
    this.mounts.push(args.at(-1));
  }

  /** Runs `script` with the root's shell in the chroot: { hostMs (spawn to exit), text (stdout + stderr) }. */
  runCommand(script) {
    const started = performance.now();
    const r = spawnSync('chroot', [this.root, this.shell, '-c', `cd /root 2>/dev/null; ${script}`], { encoding: 'utf8', env: ENV });
    const hostMs = performance.now() - started;
    if (r.error) throw r.error;
    return { hostMs, text: r.stdout + r.stderr };
  }

  close() {
    const stuck = this.mounts.reverse().filter((m) => spawnSync('umount', [m]).status !== 0);
    this.mounts = [];
    // Never rm -r across a mount that is still there (/dev is the host's).
    if (stuck.length) console.error(`native: could not unmount ${stuck.join(', ')}; leaving ${this.dir}`);
    else if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
