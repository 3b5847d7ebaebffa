// A private apt state for i386 bookworm packages: never touches /etc/apt or the host's dpkg database.
import fs from 'node:fs/promises';
import path from 'node:path';
import { exists, log, run } from './util.mjs';

export const MIRROR = 'http://deb.debian.org/debian';
export const SUITE = 'bookworm';
export const ARCH = 'i386';
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
const MAX_LIST_AGE_MS = 24 * 3600 * 1000;

export class Apt {
  /** @param {string} dir  cache directory (…/linux-vm/apt) */
  constructor(dir) {
    this.dir = dir;
    this.debs = path.join(dir, 'debs');
    this.opts = [
      `-o`, `APT::Architecture=${ARCH}`,
      `-o`, `APT::Architectures::=${ARCH}`,
      `-o`, `Dir::Etc::SourceList=${path.join(dir, 'sources.list')}`,
      `-o`, `Dir::Etc::SourceParts=/nonexistent`,
      `-o`, `Dir::State::Lists=${path.join(dir, 'lists')}`,
      `-o`, `Dir::State::status=${path.join(dir, 'status')}`,
      `-o`, `Dir::Cache=${path.join(dir, 'cache')}`,
      `-o`, `Debug::NoLocking=1`,
      `-o`, `APT::Sandbox::User=root`,
      `-o`, `Acquire::Languages=none`,
      `-o`, `Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false`,
      `-o`, `Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false`,
      `-o`, `Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false`,
      `-o`, `Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false`,
    ];
  }

  /** Write the private sources and refresh the package lists when missing or older than a day. */
  async init({ refresh = false } = {}) {
    for (const d of ['lists/partial', 'cache/archives/partial', 'debs']) {
      await fs.mkdir(path.join(this.dir, d), { recursive: true });
    }
    await fs.writeFile(path.join(this.dir, 'sources.list'),
      `deb [arch=${ARCH} signed-by=${KEYRING}] ${MIRROR} ${SUITE} main\n`);
    const status = path.join(this.dir, 'status');
    if (!(await exists(status))) await fs.writeFile(status, '');
    const stamp = path.join(this.dir, 'lists', '.updated');
    let age = Infinity;
    try {
      age = Date.now() - (await fs.stat(stamp)).mtimeMs;
    } catch {}
    if (refresh || age > MAX_LIST_AGE_MS) {
      log('apt', `update (private state in ${this.dir})`);
      try {
        await run('apt-get', [...this.opts, '-q', 'update'], { quiet: true });
        await fs.writeFile(stamp, new Date().toISOString() + '\n');
      } catch (e) {
        if (age === Infinity) throw e;
        log('apt', `update failed, using package lists from ${Math.round(age / 3600e3)} h ago`);
      }
    }
  }

  /** `apt-cache show PKG` fields of the candidate version. */
  async show(pkg) {
    const out = await run('apt-cache', [...this.opts, 'show', '--no-all-versions', pkg], { capture: true, quiet: true });
    const fields = {};
    let last = null;
    for (const line of out.split('\n')) {
      if (!line.trim()) break;
      const m = /^([\w-]+):\s?(.*)$/.exec(line);
      if (m) fields[(last = m[1])] = m[2];
      else if (last) fields[last] += '\n' + line;
    }
    return fields;
  }

  /** Download PKG=VERSION (or the candidate) into the deb cache; returns the .deb path. */
  async download(pkg, version) {
    if (!version) version = (await this.show(pkg)).Version;
    const file = path.join(this.debs, `${pkg}_${version.replace(/:/g, '%3a')}_${ARCH}.deb`);
    const fileAll = file.replace(/_i386\.deb$/, '_all.deb');
    for (const f of [file, fileAll]) if (await exists(f)) return f;
    log('apt', `download ${pkg}=${version}`);
    await run('apt-get', [...this.opts, '-q', 'download', `${pkg}=${version}`], { cwd: this.debs, quiet: true });
    for (const f of [file, fileAll]) if (await exists(f)) return f;
    throw new Error(`apt-get download ${pkg}=${version}: no .deb at ${file}`);
  }
}
