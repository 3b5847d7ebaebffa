// Kernel step: a small, module-less i386 kernel for v86, built from Debian bookworm's `linux-source-6.1`
// (`make ARCH=i386 tinyconfig` + images/kernel/v86.config). Same interface as lib/kernel-debian.mjs:
// `resolve(apt)` -> hash inputs, `prepare(apt, resolved, cacheDir)` -> { vmlinuz, release, installModules }.
//
// Cache (under cacheDir/kernels/):
//   linux-source-6.1_<version>/   the extracted source tree (+ .complete)
//   custom-v86-<hash16>/          vmlinuz (bzImage), config, release, modules.builtin*, build.json (+ .complete)
//   custom-v86-<hash16>.build/    the out-of-tree build directory while building (removed on success unless
//                                 LINUX_VM_KEEP_KBUILD=1; a failed build leaves it for inspection/reuse)
// <hash16> covers the source package version, the config fragment, this file and the host gcc version.
//
// Host packages: gcc make bc flex bison (+ binutils, xz-utils, perl, gzip; no libelf/libssl for this config).
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exists, log, run, sh, sha256 } from './util.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FRAGMENT = path.join(HERE, '..', 'kernel', 'v86.config');
const SOURCE_PKG = 'linux-source-6.1';
const ARCH = 'i386';

export const kernelCustom = {
  id: 'custom-v86',
  hasModules: false,

  /** Resolve the source package version; everything returned goes into the image hash. */
  async resolve(apt) {
    const version = (await apt.show(SOURCE_PKG)).Version;
    if (!version) throw new Error(`apt: no version for ${SOURCE_PKG}`);
    const fragment = await fs.readFile(FRAGMENT, 'utf8');
    const builder = await fs.readFile(fileURLToPath(import.meta.url));
    const gcc = (await run('gcc', ['-dumpfullversion'], { capture: true, quiet: true })).trim();
    const inputs = { kernel: this.id, package: SOURCE_PKG, version, arch: ARCH, gcc,
      fragmentSha256: sha256(fragment), builderSha256: sha256(builder) };
    return { ...inputs, hash: sha256(JSON.stringify(inputs)).slice(0, 16) };
  },

  /** Build the bzImage unless a complete build with the same hash is cached. */
  async prepare(apt, resolved, cacheDir) {
    const kernels = path.join(cacheDir, 'kernels');
    const dir = path.join(kernels, `${this.id}-${resolved.hash}`);
    if (!(await exists(path.join(dir, '.complete')))) {
      // Several image builds may run at once: one builds, the others wait for its .complete stamp.
      await withLock(`${dir}.lock`, async () => {
        if (await exists(path.join(dir, '.complete'))) return;
        const src = await extractSource(apt, resolved.version, kernels);
        await buildKernel({ src, dir, build: `${dir}.build` });
      });
    }
    const release = (await fs.readFile(path.join(dir, 'release'), 'utf8')).trim();
    return new BuiltinKernel(dir, release);
  },
};

/** A kernel without loadable modules: every requested "module" is built in. */
export class BuiltinKernel {
  constructor(dir, release) {
    this.root = dir;
    this.release = release;
    this.vmlinuz = path.join(dir, 'vmlinuz');
    this.hasModules = false;
  }

  async loadOrder() {
    return [];
  }

  /**
   * Nothing to copy. DEST/lib/modules/<release>/ gets the kernel's modules.builtin* files so that a
   * `depmod` there works and `modprobe <built-in driver>` succeeds as a no-op. Returns [] (nothing to load).
   */
  async installModules(names, dest) {
    const out = path.join(dest, 'lib', 'modules', this.release);
    await fs.mkdir(out, { recursive: true });
    for (const f of ['modules.builtin', 'modules.builtin.modinfo', 'modules.order']) {
      const from = path.join(this.root, f);
      if (await exists(from)) await fs.copyFile(from, path.join(out, f));
      else await fs.writeFile(path.join(out, f), '');
    }
    return [];
  }
}

/** Run fn holding a lock directory (holder's pid inside); waits while a live process holds it. */
async function withLock(lock, fn) {
  await fs.mkdir(path.dirname(lock), { recursive: true });
  for (let waited = 0; ; waited++) {
    try {
      await fs.mkdir(lock);
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      const pid = Number(await fs.readFile(path.join(lock, 'pid'), 'utf8').catch(() => '0'));
      let alive = false;
      try {
        if (pid) alive = (process.kill(pid, 0), true);
      } catch {}
      if (!alive && waited > 1) {
        await fs.rm(lock, { recursive: true, force: true }); // stale (holder died)
        continue;
      }
      if (waited % 12 === 0) log('kernel', `waiting for another build of this kernel (pid ${pid || '?'})…`);
      await new Promise((r) => setTimeout(r, 5000));
    }
  }
  try {
    await fs.writeFile(path.join(lock, 'pid'), String(process.pid));
    return await fn();
  } finally {
    await fs.rm(lock, { recursive: true, force: true });
  }
}

/** Download linux-source-6.1 and unpack its tarball once (cached, with a .complete stamp). */
async function extractSource(apt, version, kernels) {
  const src = path.join(kernels, `${SOURCE_PKG}_${version}`);
  if (await exists(path.join(src, '.complete'))) return src;
  const deb = await apt.download(SOURCE_PKG, version);
  log('kernel', `extract ${path.basename(deb)} (1.5 GB tree)`);
  const tmp = `${src}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  await sh(`dpkg-deb --fsys-tarfile "${deb}" | tar -xO ./usr/src/${SOURCE_PKG}.tar.xz | tar -xJ -C "${tmp}"`);
  await fs.writeFile(path.join(tmp, SOURCE_PKG, '.complete'), new Date().toISOString() + '\n');
  await fs.rm(src, { recursive: true, force: true });
  await fs.rename(path.join(tmp, SOURCE_PKG), src);
  await fs.rm(tmp, { recursive: true, force: true });
  return src;
}

async function buildKernel({ src, dir, build }) {
  const jobs = String(os.availableParallelism?.() ?? os.cpus().length);
  // Reproducible-ish: no host name, user or build time baked into the banner.
  const env = { ARCH, KBUILD_BUILD_USER: 'linux-vm', KBUILD_BUILD_HOST: 'linux-vm', KBUILD_BUILD_TIMESTAMP: '2000-01-01', LC_ALL: 'C' };
  const make = (args, opts = {}) => run('make', ['-C', src, `O=${build}`, `ARCH=${ARCH}`, ...args], { env, quiet: true, ...opts });
  await fs.mkdir(build, { recursive: true });

  log('kernel', `configure: tinyconfig + ${path.relative(process.cwd(), FRAGMENT)}`);
  await make(['-s', 'tinyconfig']);
  await run(path.join(src, 'scripts/kconfig/merge_config.sh'), ['-m', '-O', build, path.join(build, '.config'), FRAGMENT],
    { cwd: build, env, quiet: true });
  await make(['-s', 'olddefconfig']);
  const problems = checkConfig(await fs.readFile(FRAGMENT, 'utf8'), await fs.readFile(path.join(build, '.config'), 'utf8'));
  if (problems.length) {
    throw new Error(`kernel config: ${problems.length} requested option(s) did not end up as asked ` +
      `(missing dependency or choice?):\n  ${problems.join('\n  ')}`);
  }
  log('kernel', 'config verified: every option of the fragment is set as requested');

  log('kernel', `make -j${jobs} ARCH=${ARCH} bzImage (several minutes)`);
  const t = Date.now();
  const timer = setInterval(() => log('kernel', `still compiling… ${((Date.now() - t) / 1000).toFixed(0)} s`), 60_000);
  try {
    await make([`-j${jobs}`, 'bzImage']);
  } finally {
    clearInterval(timer);
  }
  const seconds = Math.round((Date.now() - t) / 1000);
  // modules.builtin(.modinfo) lists the built-in drivers (for depmod/modprobe in the guest).
  await make(['-s', 'modules.builtin']).catch(() => {});
  const release = (await make(['-s', 'kernelrelease'], { capture: true })).trim();
  const bz = path.join(build, 'arch/x86/boot/bzImage');
  const size = (await fs.stat(bz)).size;
  log('kernel', `built ${release} in ${seconds} s: bzImage ${(size / 1024).toFixed(0)} KiB`);

  const tmp = `${dir}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  await fs.copyFile(bz, path.join(tmp, 'vmlinuz'));
  await fs.copyFile(path.join(build, '.config'), path.join(tmp, 'config'));
  await fs.copyFile(path.join(build, 'System.map'), path.join(tmp, 'System.map')).catch(() => {});
  for (const f of ['modules.builtin', 'modules.builtin.modinfo']) {
    await fs.copyFile(path.join(build, f), path.join(tmp, f)).catch(() => {});
  }
  await fs.writeFile(path.join(tmp, 'release'), release + '\n');
  await fs.writeFile(path.join(tmp, 'build.json'), JSON.stringify({ release, seconds, jobs: Number(jobs), bzImageBytes: size }, null, 2) + '\n');
  await fs.writeFile(path.join(tmp, '.complete'), new Date().toISOString() + '\n');
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rename(tmp, dir);
  if (!process.env.LINUX_VM_KEEP_KBUILD) await fs.rm(build, { recursive: true, force: true });
}

/**
 * Compare the fragment with the final .config: `CONFIG_X=v` must be present with that value,
 * `# CONFIG_X is not set` must be unset or absent. Returns one line per mismatch.
 */
export function checkConfig(fragment, config) {
  const parse = (text) => {
    const m = new Map();
    for (const line of text.split('\n')) {
      let r;
      if ((r = /^(CONFIG_\w+)=(.*)$/.exec(line.trim()))) m.set(r[1], r[2]);
      else if ((r = /^# (CONFIG_\w+) is not set$/.exec(line.trim()))) m.set(r[1], 'n');
    }
    return m;
  };
  const want = parse(fragment);
  const have = parse(config);
  const problems = [];
  for (const [k, v] of want) {
    const got = have.get(k) ?? 'n';
    if (got !== v) problems.push(`${k}: requested ${v}, got ${have.has(k) ? got : '(absent)'}`);
  }
  return problems;
}
