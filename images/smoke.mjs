#!/usr/bin/env node
// Boots a built image with v86 in Node and checks the guest contract:
// prompt marker (OSC 133;A) on hvc0, a shell command, (debian) python3, and a virtio-console resize.
//
//   node images/smoke.mjs <tiny|debian|path/to/image-dir> [--verbose]
//
// The disk is served from the file lazily; guest writes stay in memory (the image file is never modified).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { V86 } from 'v86';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const verbose = args.includes('--verbose');
const name = args.find((a) => !a.startsWith('--'));
if (!name) {
  console.error('usage: node images/smoke.mjs <tiny|debian|IMAGE_DIR> [--verbose]');
  process.exit(2);
}
const dir = fs.existsSync(path.join(name, 'manifest.json')) ? name : path.join(HERE, 'dist', name);
const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
const TIMEOUT_S = manifest.disk ? 600 : 300;
const STEP_TIMEOUT_S = 120;
const MARK = '\x1b]133;A\x07';

const file = (rel) => {
  const b = fs.readFileSync(path.join(dir, rel));
  return { buffer: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) };
};

/** A v86 disk object reading the image file on demand; writes go to an in-memory sector overlay. */
class FileDisk {
  constructor(file, size) {
    this.fd = fs.openSync(file, 'r');
    this.byteLength = size;
    this.overlay = new Map(); // sector -> Uint8Array(512)
    this.reads = 0;
    this.onload = this.onprogress = undefined;
  }
  load() {
    this.onload?.({});
  }
  read(start, len) {
    const out = new Uint8Array(len);
    fs.readSync(this.fd, out, 0, len, start);
    this.reads++;
    if (this.overlay.size) {
      for (let s = Math.floor(start / 512); s * 512 < start + len; s++) {
        const o = this.overlay.get(s);
        if (!o) continue;
        const from = Math.max(start, s * 512), to = Math.min(start + len, s * 512 + 512);
        out.set(o.subarray(from - s * 512, to - s * 512), from - start);
      }
    }
    return out;
  }
  get(start, len, fn) { fn(this.read(start, len)); }
  get_and_cache(start, len, fn) { fn(this.read(start, len)); }
  get_from_cache(start, len) { return this.read(start, len); }
  set(start, data, fn) {
    for (let off = 0; off < data.length;) {
      const s = Math.floor((start + off) / 512);
      const within = (start + off) - s * 512;
      const n = Math.min(512 - within, data.length - off);
      let sec = this.overlay.get(s);
      if (!sec) {
        sec = new Uint8Array(512);
        fs.readSync(this.fd, sec, 0, 512, s * 512);
        this.overlay.set(s, sec);
      }
      sec.set(data.subarray(off, off + n), within);
      off += n;
    }
    fn();
  }
  get_buffer(fn) { fn(undefined); }
  get_state() { return [this.byteLength, []]; }
  set_state() {}
}

const v86dir = path.dirname(require.resolve('v86'));
const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1);
const opts = {
  wasm_path: path.join(v86dir, 'v86.wasm'),
  bios: file(manifest.bios),
  vga_bios: file(manifest.vgaBios),
  bzimage: file(manifest.kernel),
  initrd: file(manifest.initrd),
  cmdline: manifest.cmdline,
  memory_size: manifest.memoryMiB * 1024 * 1024,
  vga_memory_size: 2 * 1024 * 1024,
  virtio_console: true,
  acpi: manifest.acpi === true, // as the element does (local APIC timer + ACPI tables)
  disable_keyboard: true,
  disable_mouse: true,
  disable_speaker: true,
  autostart: true,
};
let disk;
if (manifest.disk) {
  disk = new FileDisk(path.join(dir, manifest.disk.url), manifest.disk.size);
  opts.hda = disk;
}

console.error(`smoke: booting ${manifest.id} (${manifest.memoryMiB} MiB) …`);
const emulator = new V86(opts);
let out = ''; // hvc0 output, decoded
const dec = new TextDecoder();
const WAIT_MARK = '\x1b]7701;wait\x07'; // the guest's pause point (src/worker/machine.ts)
let answeredWait = false;
emulator.add_listener('virtio-console0-output-bytes', (b) => {
  const s = dec.decode(b, { stream: true });
  out += s;
  if (verbose) process.stderr.write(s);
  if (!answeredWait && out.includes(WAIT_MARK)) {
    answeredWait = true;
    send(`go ${Math.floor(Date.now() / 1000)} ${crypto.randomBytes(32).toString('hex')}\n`);
  }
});
let serial = '';
emulator.add_listener('serial0-output-byte', (byte) => {
  const c = String.fromCharCode(byte);
  serial += c;
  if (verbose) process.stderr.write(c);
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(pred, what, timeoutS) {
  const end = Date.now() + timeoutS * 1000;
  while (Date.now() < end) {
    if (pred()) return;
    await sleep(100);
  }
  throw new Error(`timeout (${timeoutS} s) waiting for ${what}`);
}
const enc = new TextEncoder();
const send = (s) => emulator.bus.send('virtio-console0-input-bytes', enc.encode(s));
/** Run a command, return the hvc0 output up to the next prompt marker. */
async function cmd(line, re) {
  const from = out.length;
  send(line + '\n');
  // CSI sequences (bash's bracketed-paste toggles, readline redraws) are stripped before matching.
  const plain = () => out.slice(from).replace(/\x1b\[[?\d;]*[A-Za-z]|\r/g, '');
  await waitFor(() => re.test(plain()) && out.slice(from).includes(MARK), `${JSON.stringify(line)} -> ${re}`, STEP_TIMEOUT_S);
  const text = plain();
  console.error(`smoke: [${secs()} s] ${line} -> ${JSON.stringify(text.slice(0, 200))}`);
  return text;
}

let ok = false;
const results = {};
try {
  await waitFor(() => out.includes(MARK), 'the first prompt (OSC 133;A on hvc0)', TIMEOUT_S);
  results.firstPromptS = Number(secs());
  console.error(`smoke: first prompt after ${results.firstPromptS} s`);
  await cmd('echo $((6*7))', /(^|\n)42\r?\n/);
  if (manifest.disk) {
    await cmd(`python3 -c 'print(6*7)'`, /(^|\n)42\r?\n/);
    await cmd('uname -r; id -u; hostname; echo "$TERM $HOME"', /\n0\r?\nlinux-vm\r?\nxterm-256color \/root/);
  } else {
    await cmd('id -u; hostname; echo "$TERM $HOME"', /(^|\n)0\r?\nlinux-vm\r?\nxterm-256color \/root/);
  }
  if (manifest.disk) {
    // virtio_net is a loadable module (Debian kernel) or built in (custom kernel: modprobe is a no-op).
    await cmd('modprobe virtio_net && grep -c -e ^virtio_net -e /virtio_net.ko /proc/modules /lib/modules/$(uname -r)/modules.builtin | grep -c :1$', /(^|\n)1\n/);
    await cmd('touch /root/.rw && grep -c " / ext[234] rw" /proc/mounts', /(^|\n)1\n/);
    const t = Date.now();
    await cmd(`printf 'int main(void){return 42;}\\n' >/tmp/t.c && gcc -o /tmp/t /tmp/t.c; /tmp/t; echo "rc=$?"`, /(^|\n)rc=42\n/);
    results.gccS = (Date.now() - t) / 1000;
  }
  // Ctrl-C reaches the foreground job (the shell owns hvc0 as its controlling tty).
  {
    const from = out.length;
    send('sleep 60\n');
    await sleep(1500);
    send('\x03');
    await waitFor(() => out.slice(from).includes(MARK), 'a prompt after Ctrl-C on sleep 60', 30);
    results.ctrlC = 'ok';
    console.error(`smoke: [${secs()} s] sleep 60 + Ctrl-C -> prompt`);
  }
  // Resize. v86 0.5.462 marshals the resize as (rows, cols) while Linux (6.1.176 here) reads (cols, rows),
  // so the natural [cols, rows] arrives swapped. Record that, then check the workaround [rows, cols].
  const sttySize = async () =>
    /(?:^|\n)(\d+ \d+)\r?\n/.exec(await cmd('stty size', /(^|\n)\d+ \d+\r?\n/))[1];
  emulator.bus.send('virtio-console0-resize', [100, 30]);
  await sleep(500);
  results.sttyAfterResizeColsRows = await sttySize();
  emulator.bus.send('virtio-console0-resize', [30, 100]);
  await sleep(500);
  results.sttyAfterResizeRowsCols = await sttySize();
  if (results.sttyAfterResizeColsRows !== '30 100' && results.sttyAfterResizeRowsCols !== '30 100') {
    throw new Error(`resize did not reach the tty: ${JSON.stringify(results)}`);
  }
  if (results.sttyAfterResizeColsRows !== '30 100') {
    console.error('smoke: NOTE v86 swaps the resize fields: send [rows, cols] to virtio-console0-resize');
  }
  results.totalS = Number(secs());
  ok = true;
} catch (e) {
  console.error(`smoke: FAIL after ${secs()} s: ${e.message}`);
  console.error('--- last hvc0 output ---\n' + JSON.stringify(out.slice(-1500)));
  console.error('--- last serial output ---\n' + serial.slice(-3000));
} finally {
  if (disk) results.diskReads = disk.reads;
  console.error(`smoke: ${ok ? 'PASS' : 'FAIL'} ${manifest.id} ${JSON.stringify(results)}`);
  try {
    emulator.destroy();
  } catch {}
  process.exit(ok ? 0 : 1);
}
