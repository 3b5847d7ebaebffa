// Boot snapshots: boot a built image once with v86 in Node, stop it at the guest's pause point
// (WAIT_MARK, printed by guest/initramfs-init before any disk is mounted) and save the machine
// state, gzip'd. The element restores it instead of cold-booting. The machine options and the
// snapshot key come from the worker's own module (src/worker/machine.ts), so the snapshot
// matches the machine the element builds, by construction.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { build } from 'esbuild';
import { V86 } from 'v86';
import { sha256 } from './util.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MACHINE_SOURCE = path.join(REPO, 'src/worker/machine.ts');
const V86_WASM = path.join(REPO, 'node_modules/v86/build/v86.wasm');
const TIMEOUT_S = 300;

/** src/worker/machine.ts, compiled for Node. */
async function loadMachineModule() {
  const { outputFiles } = await build({ entryPoints: [MACHINE_SOURCE], bundle: true, format: 'esm', platform: 'node', write: false });
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'linux-vm-machine-')), 'machine.mjs');
  fs.writeFileSync(file, outputFiles[0].text);
  try {
    return await import(pathToFileURL(file).href);
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
}

/** Unit of the boot read set (manifest `disk.prefetch.blockSize`): the worker maps it onto its own blocks. */
const PREFETCH_BLOCK_SIZE = 64 * 1024;
const SECTOR = 512;

/**
 * The disk as v86's own HTTP-streamed disk presents itself to a saved state: read on demand, and
 * a state of "no blocks written". Nothing writes before the pause point (no filesystem is mounted).
 * After the snapshot, `resume()` lets the guest go on to its first prompt: writes then land in memory
 * and the blocks it reads are recorded, in order (the boot read set the worker prefetches).
 */
class SnapshotFileDisk {
  constructor(file, size) {
    this.fd = fs.openSync(file, 'r');
    this.byteLength = size;
    this.written = undefined; // sector -> bytes, once resumed
    this.readBlocks = new Set(); // insertion order = first read
  }
  load() {
    this.onload?.({});
  }
  resume() {
    this.written = new Map();
  }
  read(start, length) {
    const out = new Uint8Array(length);
    fs.readSync(this.fd, out, 0, length, start);
    if (!this.written) return out;
    for (let block = Math.floor(start / PREFETCH_BLOCK_SIZE); block * PREFETCH_BLOCK_SIZE < start + length; block++) {
      this.readBlocks.add(block);
    }
    for (let sector = Math.floor(start / SECTOR); sector * SECTOR < start + length; sector++) {
      const bytes = this.written.get(sector);
      if (!bytes) continue;
      const from = Math.max(start, sector * SECTOR);
      const to = Math.min(start + length, (sector + 1) * SECTOR);
      out.set(bytes.subarray(from - sector * SECTOR, to - sector * SECTOR), from - start);
    }
    return out;
  }
  get(start, length, callback) {
    callback(this.read(start, length));
  }
  get_and_cache(start, length, callback) {
    callback(this.read(start, length));
  }
  get_from_cache() {
    return undefined;
  }
  set(start, data, callback) {
    if (!this.written) throw new Error('the guest wrote to its disk before the snapshot point');
    if (start % SECTOR || data.length % SECTOR) throw new Error(`unaligned disk write ${start}+${data.length}`);
    for (let offset = 0; offset < data.length; offset += SECTOR) {
      this.written.set((start + offset) / SECTOR, data.slice(offset, offset + SECTOR));
    }
    callback();
  }
  get_buffer(callback) {
    callback(undefined);
  }
  get_state() {
    return [[]]; // the layout of v86's AsyncXHRBuffer state: [written blocks]
  }
  set_state() {}
  close() {
    fs.closeSync(this.fd);
  }
}

/**
 * Saves `snapshot.bin.gz` in `dir` for the image described by `manifest` (files already in `dir`)
 * and returns the manifest's `snapshot` entry and, for an image with a disk, its boot read set
 * (`disk.prefetch`: the blocks a resumed guest reads before its first prompt, in the order it reads them).
 */
export async function saveBootSnapshot({ dir, manifest, log }) {
  const { advertiseWriteCache, goLine, machineOptions, snapshotKey, PROMPT_MARK, WAIT_MARK } = await loadMachineModule();
  const file = (name) => {
    const bytes = fs.readFileSync(path.join(dir, name));
    return { buffer: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) };
  };
  const spec = { memoryMiB: manifest.memoryMiB, acpi: manifest.acpi === true, console: manifest.console, diskSize: manifest.disk?.size };
  const disk = manifest.disk && new SnapshotFileDisk(path.join(dir, manifest.disk.url), manifest.disk.size);
  const emulator = new V86(
    machineOptions(spec, {
      bios: file(manifest.bios),
      vgaBios: file(manifest.vgaBios),
      kernel: file(manifest.kernel),
      initrd: manifest.initrd && file(manifest.initrd),
      cmdline: manifest.cmdline,
      disk,
    }, V86_WASM),
  );
  const started = Date.now();
  try {
    await new Promise((resolve) => emulator.add_listener('emulator-loaded', resolve));
    advertiseWriteCache(emulator); // the guest reads IDENTIFY before the pause point: same drive as in the worker
    const consoleEvent = manifest.console === 'virtio' ? 'virtio-console0-output-bytes' : 'serial0-output-byte';
    /** Resolves when the guest's console prints `mark` (from now on). */
    const printed = (mark, what) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the guest did not reach ${what} within ${TIMEOUT_S} s`)), TIMEOUT_S * 1000);
        let seen = '';
        const listener = (data) => {
          seen = (seen + Buffer.from(typeof data === 'number' ? [data] : data).toString('latin1')).slice(-64);
          if (!seen.includes(mark)) return;
          clearTimeout(timer);
          emulator.remove_listener(consoleEvent, listener);
          resolve();
        };
        emulator.add_listener(consoleEvent, listener);
      });
    const paused = printed(WAIT_MARK, 'its pause point');
    await emulator.run();
    await paused;
    await emulator.stop();
    const state = new Uint8Array(await emulator.save_state());
    const compressed = await promisify(zlib.gzip)(state, { level: 9 });
    fs.writeFileSync(path.join(dir, 'snapshot.bin.gz'), compressed);
    log(`snapshot after ${((Date.now() - started) / 1000).toFixed(1)} s of boot: ` +
      `${(state.byteLength / 1048576).toFixed(1)} MiB state, ${(compressed.byteLength / 1048576).toFixed(1)} MiB gzip`);
    const snapshot = {
      url: 'snapshot.bin.gz',
      size: compressed.byteLength,
      sha256: sha256(compressed),
      key: await snapshotKey(manifest.id, spec),
    };
    if (!disk) return { snapshot };

    // Let the resumed guest go on to its first prompt, recording the disk blocks it reads on the way.
    disk.resume();
    const prompt = printed(PROMPT_MARK, 'its first prompt after the pause point');
    await emulator.run();
    const line = new TextEncoder().encode(goLine());
    if (manifest.console === 'virtio') emulator.bus.send('virtio-console0-input-bytes', line);
    else for (const byte of line) emulator.bus.send('serial0-input', byte);
    await prompt;
    await emulator.stop();
    const blocks = [...disk.readBlocks];
    log(`boot read set: ${blocks.length} blocks of ${PREFETCH_BLOCK_SIZE / 1024} KiB read from the pause point to the first prompt`);
    return { snapshot, prefetch: { blockSize: PREFETCH_BLOCK_SIZE, blocks } };
  } finally {
    await emulator.destroy();
    disk?.close();
  }
}
