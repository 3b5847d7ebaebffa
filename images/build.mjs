#!/usr/bin/env node
// Builds the <linux-vm> guest images from Debian bookworm i386 packages.
//
//   node images/build.mjs [tiny|debian|all] [--force] [--refresh]
//
//   --force    rebuild even if a complete image with the same inputs is cached
//   --refresh  refresh the private apt package lists now (otherwise at most once a day)
//
// Output: ${XDG_CACHE_HOME:-~/.cache}/linux-vm/images/<name>-<hash12>/ (manifest.json, bios.bin, vgabios.bin,
// vmlinuz, initrd.img, [disk.img]) and the symlink images/dist/<name> pointing at it. See images/README.md.
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Apt } from './lib/apt.mjs';
import { kernelCustom } from './lib/kernel-custom.mjs';
import { kernelDebian686 } from './lib/kernel-debian.mjs';
import { writeDiskChunks } from './lib/chunks.mjs';
import { imagesToPrune } from './lib/prune.mjs';
import { MACHINE_SOURCE, saveBootSnapshot } from './lib/snapshot.mjs';
import { MiB, cacheRoot, duBytes, exists, log, run, sh, sha256, sha256File, symlinkAtomic } from './lib/util.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const GUEST = path.join(HERE, 'guest');
const FORMAT = 1;

/**
 * The kernel step (interface: see lib/kernel-debian.mjs), chosen per image (`kernel` below) or for all
 * images by `LINUX_VM_KERNEL`: `custom`, a module-less kernel built from linux-source-6.1 for v86
 * (lib/kernel-custom.mjs, kernel/v86.config), or `debian`, Debian's stock linux-image-686 with modules.
 */
const KERNELS = { custom: kernelCustom, debian: kernelDebian686 };
if (process.env.LINUX_VM_KERNEL && !KERNELS[process.env.LINUX_VM_KERNEL]) {
  throw new Error(`LINUX_VM_KERNEL must be one of: ${Object.keys(KERNELS).join(', ')}`);
}
const kernelOf = (spec) => KERNELS[process.env.LINUX_VM_KERNEL || spec.kernel];

const BASE_CMDLINE = 'console=ttyS0 loglevel=4 cryptomgr.notests noisapnp tsc=reliable mitigations=off';
const SEABIOS = { bios: '/usr/share/seabios/bios.bin', vgaBios: '/usr/share/seabios/vgabios-stdvga.bin' };

// Kernel modules, in load order (dependencies are added automatically from modules.dep).
const CONSOLE_MODULES = ['virtio', 'virtio_ring', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', 'virtio_console'];
const DISK_MODULES = [
  'scsi_common', 'scsi_mod', 'libata', 'ata_piix', 'ata_generic', 'crc64', 'crct10dif_common', 'crc-t10dif',
  'crc64-rocksoft', 't10-pi', 'sd_mod', 'crc16', 'crc32c_generic', 'mbcache', 'jbd2', 'ext4',
];
const EXTRA_MODULES = ['failover', 'net_failover', 'virtio_net', 'virtio_blk', '9pnet', '9pnet_virtio', '9p'];

const IMAGES = {
  tiny: {
    description: 'Linux 6.1 (Debian source) + busybox initramfs; root busybox shell on hvc0 (no disk).',
    kernel: 'custom',
    memoryMiB: 96,
    cmdline: BASE_CMDLINE,
    initrdModules: CONSOLE_MODULES,
    packages: ['busybox-static'],
  },
  debian: {
    description: 'Debian bookworm i386 (minbase + bash, python3, gcc, make, git, …) on an ext3 disk (ext2 + journal); root bash on hvc0.',
    // The custom kernel (fast boot, quiet idle) needs the journal of buildRootDisk(): without it, writes
    // synced just before a reload could be lost (EXT4-fs "block bitmap and bg descriptor inconsistent").
    kernel: 'custom',
    memoryMiB: 512,
    cmdline: `${BASE_CMDLINE} root=/dev/sda rw`,
    initrdModules: [...DISK_MODULES, ...CONSOLE_MODULES],
    rootModules: [...DISK_MODULES, ...CONSOLE_MODULES, ...EXTRA_MODULES],
    packages: ['busybox-static'], // for the initramfs
    debootstrap: {
      suite: 'bookworm',
      variant: 'minbase',
      include: ['bash', 'coreutils', 'python3', 'gcc', 'make', 'libc6-dev', 'git', 'openssh-client', 'curl',
        'ca-certificates', 'iproute2', 'less', 'vim-tiny', 'procps', 'kmod'],
    },
    diskFreeMiB: 512,
    diskSlack: 1.2,
  },
};

// ---------------------------------------------------------------------------------------------------------

async function main() {
  const args = process.argv.slice(2);
  const force = args.includes('--force');
  const refresh = args.includes('--refresh');
  const which = args.filter((a) => !a.startsWith('--'));
  const unknown = which.filter((a) => a !== 'all' && !IMAGES[a]);
  if (unknown.length || which.length > 1) {
    console.error(`usage: node images/build.mjs [${Object.keys(IMAGES).join('|')}|all] [--force] [--refresh]`);
    process.exit(2);
  }
  const names = !which.length || which[0] === 'all' ? Object.keys(IMAGES) : which;
  if (process.getuid?.() !== 0) log('warning', 'not root: debootstrap, chroot and mke2fs -d with root-owned files need root');

  const cache = cacheRoot();
  await removeAbandonedWork(cache);
  const apt = new Apt(path.join(cache, 'apt'));
  await apt.init({ refresh });
  const builderFiles = await hashBuilderFiles();

  for (const name of names) {
    const spec = IMAGES[name];
    const kernel = await kernelOf(spec).resolve(apt);
    log('kernel', `${name}: ${kernel.package} ${kernel.version}`);
    const inputs = { format: FORMAT, name, spec, kernel, builderFiles };
    const hash12 = sha256(JSON.stringify(inputs)).slice(0, 12);
    const id = `${name}-${hash12}`;
    const outDir = path.join(cache, 'images', id);
    if (!force && (await exists(path.join(outDir, '.complete')))) {
      log(name, `up to date: ${outDir}`);
    } else {
      const t = Date.now();
      log(name, `building ${id}`);
      await buildImage(name, spec, { id, outDir, apt, kernel, cache });
      log(name, `built in ${((Date.now() - t) / 1000).toFixed(0)} s`);
    }
    const link = path.join(HERE, 'dist', name);
    await symlinkAtomic(outDir, link);
    await fs.writeFile(path.join(outDir, '.last-used'), `${new Date().toISOString()}\n`);
    await printSummary(name, outDir, link);
  }
  await pruneImages(cache);
}

/** Removes the least recently used image builds (lib/prune.mjs); each records its last use in `.last-used`. */
async function pruneImages(cache) {
  const dir = path.join(cache, 'images');
  const images = [];
  for (const entry of await fs.readdir(dir).catch(() => [])) {
    const name = /^([a-z0-9]+)-[0-9a-f]{12}$/.exec(entry)?.[1];
    const mtime = (file) => fs.stat(path.join(dir, entry, file)).then((s) => s.mtimeMs, () => undefined);
    const complete = name && (await mtime('.complete'));
    if (!complete) continue;
    images.push({ dir: path.join(dir, entry), name, lastUsedMs: (await mtime('.last-used')) ?? complete });
  }
  for (const old of imagesToPrune(images, Date.now())) {
    log('cache', `removing the old image ${old}`);
    await removeTree(old);
  }
}

/** sha256 of every file the build depends on (this script, lib/, guest/, the machine the snapshot is for). */
async function hashBuilderFiles() {
  const files = [path.join(HERE, 'build.mjs'), MACHINE_SOURCE, path.join(HERE, '../node_modules/v86/package.json')];
  for (const d of ['lib', 'guest']) {
    for (const f of (await fs.readdir(path.join(HERE, d))).sort()) files.push(path.join(HERE, d, f));
  }
  const out = {};
  for (const f of files) out[path.relative(HERE, f)] = sha256(await fs.readFile(f));
  return out;
}

async function buildImage(name, spec, { id, outDir, apt, kernel: resolved, cache }) {
  const tmpOut = path.join(cache, 'images', `.tmp-${id}-${process.pid}`);
  const work = path.join(cache, 'work', `${id}-${process.pid}`);
  await fs.rm(tmpOut, { recursive: true, force: true });
  await fs.mkdir(tmpOut, { recursive: true });
  await fs.mkdir(work, { recursive: true });
  try {
    // 1. kernel
    log(name, 'kernel');
    const kernelStep = kernelOf(spec);
    const kernel = await kernelStep.prepare(apt, resolved, cache);
    await fs.copyFile(kernel.vmlinuz, path.join(tmpOut, 'vmlinuz'));

    // 2. BIOS
    await fs.copyFile(SEABIOS.bios, path.join(tmpOut, 'bios.bin'));
    await fs.copyFile(SEABIOS.vgaBios, path.join(tmpOut, 'vgabios.bin'));

    // 3. initramfs
    log(name, 'initramfs');
    const debs = {};
    for (const p of spec.packages) debs[p] = await apt.download(p);
    const initrd = path.join(tmpOut, 'initrd.img');
    await buildInitramfs({ name, kernel, modules: spec.initrdModules, busyboxDeb: debs['busybox-static'], work, out: initrd });
    const initrdSize = (await fs.stat(initrd)).size;
    log(name, `initrd.img ${(initrdSize / MiB).toFixed(2)} MiB`);
    if (64 * MiB + initrdSize >= spec.memoryMiB * MiB) throw new Error(`memoryMiB ${spec.memoryMiB} too small for the initrd (v86 loads it at 64 MiB)`);

    // 4. root disk
    let disk;
    if (spec.debootstrap) {
      const root = path.join(work, 'rootfs');
      await buildDebianRoot({ name, spec, kernel, root, cache, busyboxDeb: debs['busybox-static'], work });
      disk = await buildRootDisk({ name, spec, root, out: path.join(tmpOut, 'disk.img') });
      // The same image as 128 KiB chunk files, for static hosts without HTTP Range (lib/chunks.mjs).
      log(name, 'disk.chunks/');
      disk.chunks = await writeDiskChunks(tmpOut);
    }

    // 5. manifest
    const manifest = {
      format: FORMAT,
      name,
      id,
      description: spec.description,
      memoryMiB: spec.memoryMiB,
      bios: 'bios.bin',
      vgaBios: 'vgabios.bin',
      kernel: 'vmlinuz',
      initrd: 'initrd.img',
      cmdline: spec.cmdline,
      console: 'virtio',
      // The custom kernel runs tickless on v86's local APIC timer, which v86 only offers with ACPI on.
      ...(kernelStep === kernelCustom ? { acpi: true } : {}),
      ...(disk ? { disk: { url: 'disk.img', size: disk.size, sha256: disk.sha256, chunks: disk.chunks } } : {}),
    };
    await fs.writeFile(path.join(tmpOut, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');

    // 6. boot snapshot at the guest's pause point (lib/snapshot.mjs)
    log(name, 'boot snapshot (boots the image once in v86)');
    const { snapshot, prefetch } = await saveBootSnapshot({ dir: tmpOut, manifest, log: (message) => log(name, message) });
    manifest.snapshot = snapshot;
    if (prefetch) manifest.disk.prefetch = prefetch;
    await fs.writeFile(path.join(tmpOut, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    await fs.writeFile(path.join(tmpOut, '.complete'), new Date().toISOString() + '\n');
    await fs.rm(outDir, { recursive: true, force: true });
    await fs.rename(tmpOut, outDir);
  } finally {
    await removeTree(work);
    await fs.rm(tmpOut, { recursive: true, force: true });
  }
}

/** A busybox initramfs: /init (guest/initramfs-init) + the listed modules, gzip'd newc cpio. */
async function buildInitramfs({ name, kernel, modules, busyboxDeb, work, out }) {
  const tree = path.join(work, 'initramfs');
  const bbx = path.join(work, 'busybox-deb');
  await fs.mkdir(tree, { recursive: true });
  await run('dpkg-deb', ['-x', busyboxDeb, bbx]);
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc/linux-vm', 'root', 'dev', 'proc', 'sys', 'run', 'tmp', 'newroot']) {
    await fs.mkdir(path.join(tree, d), { recursive: true });
  }
  const busybox = path.join(tree, 'bin', 'busybox');
  await fs.copyFile(path.join(bbx, 'bin', 'busybox'), busybox);
  await fs.chmod(busybox, 0o755);
  // Applet links. The binary is static i386: it runs on an x86-64 host with IA32 emulation; if it
  // cannot, /init installs the links at boot instead.
  let applets = [];
  try {
    applets = (await run(busybox, ['--list-full'], { capture: true, quiet: true })).split('\n').filter(Boolean);
  } catch {
    log(name, 'cannot run the i386 busybox here; applet links will be created at boot');
  }
  for (const a of applets) {
    const link = path.join(tree, a);
    if (await exists(link)) continue;
    await fs.mkdir(path.dirname(link), { recursive: true });
    await fs.symlink(path.relative(path.dirname(link), busybox), link);
  }
  let init = await fs.readFile(path.join(GUEST, 'initramfs-init'), 'utf8');
  if (!applets.length) init = init.replace('\n', '\n/bin/busybox --install -s\n');
  await fs.writeFile(path.join(tree, 'init'), init, { mode: 0o755 });

  const order = await kernel.installModules(modules, tree);
  await fs.writeFile(path.join(tree, 'etc/linux-vm/modules'), order.join('\n') + '\n');
  await installGuestTools(tree);
  await installNetworkScripts(tree);
  log(name, `initramfs modules: ${order.map((f) => path.basename(f, '.ko')).join(' ')}`);

  await fs.copyFile(path.join(GUEST, 'tiny-profile'), path.join(tree, 'etc/profile'));
  await fs.writeFile(path.join(tree, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await fs.writeFile(path.join(tree, 'etc/group'), 'root:x:0:\ntty:x:5:\n');
  await fs.writeFile(path.join(tree, 'etc/hostname'), 'linux-vm\n');
  await fs.writeFile(path.join(tree, 'etc/hosts'), '127.0.0.1\tlocalhost\n127.0.1.1\tlinux-vm\n');

  await sh(`cd "${tree}" && find . -print0 | LC_ALL=C sort -z | cpio --quiet --null -o -H newc -R 0:0 --reproducible | gzip -9n > "${out}"`);
}

/** debootstrap minbase + packages, then make it bootable by our initramfs and small. */
async function buildDebianRoot({ name, spec, kernel, root, cache, busyboxDeb, work }) {
  const ds = spec.debootstrap;
  const dsCache = path.join(cache, 'apt', 'debootstrap');
  await fs.mkdir(dsCache, { recursive: true });
  log(name, `debootstrap ${ds.suite} (${ds.variant} + ${ds.include.length} packages; a few minutes)`);
  const t = Date.now();
  await runProgress(name, 'debootstrap', [
    '--arch=i386', `--variant=${ds.variant}`, `--cache-dir=${dsCache}`, `--include=${ds.include.join(',')}`,
    ds.suite, root, 'http://deb.debian.org/debian',
  ]);
  log(name, `debootstrap done in ${((Date.now() - t) / 1000).toFixed(0)} s`);

  log(name, 'customize root');
  const order = await kernel.installModules(spec.rootModules, root);
  await run('chroot', [root, '/sbin/depmod', kernel.release]); // the root's own kmod: modprobe works in the guest
  log(name, `root modules (${order.length}) in /lib/modules/${kernel.release}`);
  await installGuestTools(root);
  await installNetworkScripts(root);
  // The DHCP client: busybox's udhcpc (the static busybox of the initramfs, linked under its applet name).
  const bbx = path.join(work, 'busybox-root');
  await run('dpkg-deb', ['-x', busyboxDeb, bbx]);
  await fs.mkdir(path.join(root, 'usr/lib/linux-vm'), { recursive: true });
  await fs.copyFile(path.join(bbx, 'bin', 'busybox'), path.join(root, 'usr/lib/linux-vm/busybox'));
  await fs.chmod(path.join(root, 'usr/lib/linux-vm/busybox'), 0o755);
  await fs.symlink('../lib/linux-vm/busybox', path.join(root, 'usr/sbin/udhcpc'));
  // PID 1 (guest/init.c) where the initramfs looks for it, /sbin/linux-vm-init (merged /usr: sbin -> usr/sbin). A
  // relative link: the initramfs checks it before it switches into this root.
  await fs.symlink('../bin/linux-vm-init', path.join(root, 'usr/sbin/linux-vm-init'));
  // The prompt marker: /etc/bash.bashrc is read by every interactive bash (login shells via /etc/profile).
  await fs.appendFile(path.join(root, 'etc/bash.bashrc'), '\n' + (await fs.readFile(path.join(GUEST, 'linux-vm-prompt.sh'), 'utf8')));
  await fs.writeFile(path.join(root, 'etc/hostname'), 'linux-vm\n');
  await fs.writeFile(path.join(root, 'etc/hosts'), '127.0.0.1\tlocalhost\n127.0.1.1\tlinux-vm\n::1\t\tlocalhost ip6-localhost ip6-loopback\n');
  await fs.writeFile(path.join(root, 'etc/fstab'), '/dev/sda\t/\text3\trw\t0\t1\n');
  await fs.writeFile(path.join(root, 'etc/resolv.conf'), '');
  await run('chroot', [root, '/usr/bin/passwd', '-d', 'root'], { quiet: true });
  await run('chroot', [root, '/usr/bin/apt-get', 'clean'], { quiet: true });
  // Trim: package lists, docs (keeping copyright files), man pages, logs.
  await sh(`cd "${root}" && rm -rf var/lib/apt/lists/* var/cache/apt/*.bin var/cache/debconf/*-old var/lib/dpkg/*-old \
    usr/share/man/* usr/share/info/* usr/share/lintian var/log/*.log tmp/* && \
    find usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete && \
    find usr/share/doc -mindepth 1 -type d -empty -delete`);
}

/** Run a long command, printing a heartbeat so it is visibly moving. Output only on failure. */
async function runProgress(name, cmd, args) {
  const timer = setInterval(() => log(name, `${cmd} still running…`), 30_000);
  try {
    await run(cmd, args, { quiet: true });
  } finally {
    clearInterval(timer);
  }
}

/**
 * ext3 (ext2 + a 4 MiB journal), 4 KiB blocks, populated from ROOT; sparse file of used×slack + free MiB.
 * The journal is what makes the guest's `sync` durable in the browser: without one, Linux's sync()
 * sends its cache flush before it writes the metadata buffers (ksys_sync: sync_fs, then sync_bdevs), so
 * inodes and bitmaps could still sit uncommitted in the overlay when the page goes away (measured:
 * a file lost after ~15 write+sync+reload cycles). With a journal, sync waits for a commit that ends
 * in a flush, and whatever is written after it is replayed from the journal at the next mount.
 */
async function buildRootDisk({ name, spec, root, out }) {
  const used = await duBytes(root);
  const size = Math.ceil((used * spec.diskSlack + spec.diskFreeMiB * MiB) / MiB) * MiB;
  log(name, `mke2fs: ${(used / MiB).toFixed(0)} MiB used -> ${(size / MiB).toFixed(0)} MiB ext3 image`);
  await fs.rm(out, { force: true });
  await run('truncate', ['-s', String(size), out]);
  await run('mke2fs', ['-q', '-F', '-t', 'ext3', '-J', 'size=4', '-b', '4096', '-m', '0', '-L', 'linux-vm', '-d', root, out]);
  log(name, 'sha256 disk.img');
  return { size, sha256: await sha256File(out) };
}

// --- guest tools: guest/<tool>.c -> /usr/bin/linux-vm-<tool> -----------------------------------------------
// spin.c: the C workload of bench/cpu.mjs; resume.c: the pause point and a resumed guest's way into its root;
// init.c: PID 1 of the debian image. Also linux-vm-agent (a shell script): the guest half of upload()/download().
// Freestanding i386 (no libc, raw system calls via guest/sys.h), so the host's plain gcc builds them: no
// gcc-multilib. Their sources are in guest/, hence in the image hash.
async function installGuestTools(destRoot) {
  await fs.mkdir(path.join(destRoot, 'usr/bin'), { recursive: true });
  // The file agent of upload()/download() (a POSIX sh script: busybox ash in tiny, dash in debian).
  await fs.copyFile(path.join(GUEST, 'linux-vm-agent'), path.join(destRoot, 'usr/bin/linux-vm-agent'));
  await fs.chmod(path.join(destRoot, 'usr/bin/linux-vm-agent'), 0o755);
  for (const source of (await fs.readdir(GUEST)).filter((f) => f.endsWith('.c')).sort()) {
    const out = path.join(destRoot, 'usr/bin', `linux-vm-${path.basename(source, '.c')}`);
    await run('gcc', ['-m32', '-static', '-nostdlib', '-ffreestanding', '-O2', '-fno-pie', '-no-pie', '-fno-stack-protector',
      '-fno-tree-loop-distribute-patterns', '-Wall', '-Werror', '-s', '-o', out, path.join(GUEST, source)]);
  }
}

/** The guest's background services (guest/linux-vm-services), network start-up (guest/linux-vm-net) and DHCP hook
 * (guest/udhcpc-script), in both images. */
async function installNetworkScripts(destRoot) {
  const dir = path.join(destRoot, 'usr/share/linux-vm');
  await fs.mkdir(dir, { recursive: true });
  await fs.copyFile(path.join(GUEST, 'linux-vm-net'), path.join(dir, 'net-up'));
  await fs.copyFile(path.join(GUEST, 'udhcpc-script'), path.join(dir, 'udhcpc-script'));
  await fs.chmod(path.join(dir, 'net-up'), 0o755);
  await fs.chmod(path.join(dir, 'udhcpc-script'), 0o755);
  await fs.copyFile(path.join(GUEST, 'linux-vm-services'), path.join(dir, 'services'));
  await fs.chmod(path.join(dir, 'services'), 0o755);
}

/** Work and temp directories are named …-<pid>: remove those whose build process is gone (killed builds). */
async function removeAbandonedWork(cache) {
  const candidates = [];
  for (const dir of [path.join(cache, 'work'), path.join(cache, 'images')]) {
    for (const entry of await fs.readdir(dir).catch(() => [])) candidates.push([dir, entry]);
  }
  for (const [dir, entry] of candidates) {
    const pid = Number(/-(\d+)$/.exec(entry)?.[1]);
    if (!pid || (dir.endsWith('images') && !entry.startsWith('.tmp-'))) continue;
    try {
      process.kill(pid, 0); // still running
    } catch {
      log('cache', `removing abandoned ${path.join(dir, entry)}`);
      await removeTree(path.join(dir, entry));
    }
  }
}

/** rm -rf that never crosses into a mount point left behind (e.g. a chroot's /proc). */
async function removeTree(dir) {
  if (!(await exists(dir))) return;
  const mounts = (await fs.readFile('/proc/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1]).filter(Boolean)
    .filter((m) => m.startsWith(dir + '/')).sort().reverse();
  for (const m of mounts) await run('umount', ['-l', m], { quiet: true }).catch(() => {});
  await run('rm', ['-rf', '--one-file-system', dir]);
}

async function printSummary(name, dir, link) {
  const m = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8'));
  const sz = async (f) => ((await fs.stat(path.join(dir, f))).size / MiB).toFixed(1) + ' MiB';
  let line = `${m.id}: vmlinuz ${await sz('vmlinuz')}, initrd ${await sz('initrd.img')}, ${m.memoryMiB} MiB RAM`;
  if (m.disk) {
    const used = await duBytes(path.join(dir, 'disk.img'));
    line += `, disk.img ${(m.disk.size / MiB).toFixed(0)} MiB (${(used / MiB).toFixed(0)} MiB allocated)`;
  }
  log(name, line);
  log(name, `${path.relative(process.cwd(), link) || link} -> ${dir}`);
}

main().catch((e) => {
  log('error', e.stack || String(e));
  process.exit(1);
});
