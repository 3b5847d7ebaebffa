// Kernel step: Debian bookworm's stock i386 kernel (linux-image-6.1.0-*-686, via the linux-image-686
// metapackage). Any other kernel (e.g. a custom one built from linux-source-6.1) can replace this module
// if it offers the same three things: `resolve` (hash inputs), `prepare` (vmlinuz + a modules tree) and
// the module helpers returned by `prepare`.
import fs from 'node:fs/promises';
import path from 'node:path';
import { exists, log, run } from './util.mjs';

const META = 'linux-image-686';

export const kernelDebian686 = {
  id: 'debian-686',

  /** Resolve the current kernel package; everything returned goes into the image hash. */
  async resolve(apt) {
    const meta = await apt.show(META);
    const m = /(linux-image-[\w.+-]+-686)\s*\(=\s*([^)]+)\)/.exec(meta.Depends || '');
    if (!m) throw new Error(`cannot resolve the kernel from ${META} Depends: ${meta.Depends}`);
    const [, pkg, version] = m;
    return { kernel: this.id, package: pkg, version, release: pkg.replace(/^linux-image-/, '') };
  },

  /**
   * Download and extract the kernel (cached under cacheDir/kernels/).
   * @returns {Promise<Kernel>}
   */
  async prepare(apt, resolved, cacheDir) {
    const dir = path.join(cacheDir, 'kernels', `${resolved.package}_${resolved.version}`);
    if (!(await exists(path.join(dir, '.complete')))) {
      const deb = await apt.download(resolved.package, resolved.version);
      log('kernel', `extract ${path.basename(deb)}`);
      const tmp = `${dir}.tmp-${process.pid}`;
      await fs.rm(tmp, { recursive: true, force: true });
      await fs.mkdir(tmp, { recursive: true });
      await run('dpkg-deb', ['-x', deb, tmp]);
      await fs.writeFile(path.join(tmp, '.complete'), '');
      await fs.rm(dir, { recursive: true, force: true });
      await fs.rename(tmp, dir);
    }
    return new Kernel(dir, resolved.release);
  },
};

/** An extracted kernel: `vmlinuz` plus `lib/modules/<release>`. */
export class Kernel {
  constructor(root, release) {
    this.root = root;
    this.release = release;
    this.vmlinuz = path.join(root, 'boot', `vmlinuz-${release}`);
    this.modDir = path.join(root, 'lib', 'modules', release);
  }

  /** name -> module file (relative to lib/modules/<release>), from a walk of the tree. */
  async #files() {
    if (this.files) return this.files;
    this.files = new Map();
    for (const rel of await fs.readdir(this.modDir, { recursive: true })) {
      if (/\.ko(\.\w+)?$/.test(rel)) this.files.set(modName(rel), rel);
    }
    return this.files;
  }

  /** Hard dependencies of a module (its .modinfo `depends=`); no depmod needed on the host. */
  async #depends(rel) {
    const info = modinfo(await fs.readFile(path.join(this.modDir, rel)));
    return (info.depends || '').split(',').filter(Boolean);
  }

  /**
   * Module files (relative to lib/modules/<release>) for `names` plus all their dependencies, in a valid
   * load order (dependencies first; otherwise the order of `names`). Built-in modules are skipped.
   */
  async loadOrder(names) {
    const files = await this.#files();
    const builtin = new Set(
      (await fs.readFile(path.join(this.modDir, 'modules.builtin'), 'utf8').catch(() => ''))
        .split('\n').filter(Boolean).map(modName));
    const order = [];
    const seen = new Set();
    const visit = async (name) => {
      name = modName(name);
      if (seen.has(name)) return;
      seen.add(name);
      const rel = files.get(name);
      if (!rel) {
        if (builtin.has(name)) return;
        throw new Error(`kernel ${this.release} has no module ${name}`);
      }
      for (const d of await this.#depends(rel)) await visit(d);
      order.push(rel);
    };
    for (const n of names) await visit(n);
    return order;
  }

  /**
   * Copy modules `names` (+ dependencies) into DEST/lib/modules/<release>/, with the kernel's
   * modules.order/builtin files (run depmod for DEST afterwards if modprobe should work). Returns the load order.
   */
  async installModules(names, dest) {
    const order = await this.loadOrder(names);
    const out = path.join(dest, 'lib', 'modules', this.release);
    for (const rel of order) {
      await fs.mkdir(path.dirname(path.join(out, rel)), { recursive: true });
      await fs.copyFile(path.join(this.modDir, rel), path.join(out, rel));
    }
    for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) {
      if (await exists(path.join(this.modDir, f))) await fs.copyFile(path.join(this.modDir, f), path.join(out, f));
    }
    return order;
  }
}

const modName = (f) => path.basename(f).replace(/\.ko(\.\w+)?$/, '').replace(/-/g, '_');

/** The key=value strings of an ELF module's .modinfo section (ELF32 or ELF64, little-endian). */
export function modinfo(buf) {
  if (buf.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file (compressed module?)');
  const is64 = buf[4] === 2;
  const shoff = is64 ? Number(buf.readBigUInt64LE(0x28)) : buf.readUInt32LE(0x20);
  const shentsize = buf.readUInt16LE(is64 ? 0x3a : 0x2e);
  const shnum = buf.readUInt16LE(is64 ? 0x3c : 0x30);
  const shstrndx = buf.readUInt16LE(is64 ? 0x3e : 0x32);
  const sec = (i) => {
    const o = shoff + i * shentsize;
    return is64
      ? { name: buf.readUInt32LE(o), off: Number(buf.readBigUInt64LE(o + 0x18)), size: Number(buf.readBigUInt64LE(o + 0x20)) }
      : { name: buf.readUInt32LE(o), off: buf.readUInt32LE(o + 0x10), size: buf.readUInt32LE(o + 0x14) };
  };
  const strtab = sec(shstrndx);
  const info = {};
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    const end = buf.indexOf(0, strtab.off + s.name);
    if (buf.toString('latin1', strtab.off + s.name, end) !== '.modinfo') continue;
    for (const kv of buf.toString('latin1', s.off, s.off + s.size).split('\0')) {
      const eq = kv.indexOf('=');
      if (eq > 0) info[kv.slice(0, eq)] = info[kv.slice(0, eq)] ? info[kv.slice(0, eq)] + ' ' + kv.slice(eq + 1) : kv.slice(eq + 1);
    }
  }
  return info;
}
