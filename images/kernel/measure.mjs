#!/usr/bin/env node
// Kernel comparison bench: boots an image with v86 in Node (fresh boot, never the snapshot) and measures
//   - time to the first prompt (OSC 133;A on hvc0), median of --runs boots (one child process per boot),
//   - host CPU used by the process while the guest sits idle at the prompt (--idle S, default 10),
//     v86 wake-ups in that window (setImmediate / setTimeout calls) and the guest's interrupt counts,
//   - a gzip workload (--gzip): `seq 1 400000 > /tmp/d; time gzip -c /tmp/d > /dev/null`,
//   - timer diagnostics (--diag): clocksource, clockevent device, /proc/timer_list tick mode, dmesg lines.
//
//   node images/kernel/measure.mjs <tiny|debian|IMAGE_DIR> [--acpi on|off] [--runs 3] [--idle 10] [--gzip] [--diag] [--yield-fix]
//
// Prints one JSON summary line on stdout (progress on stderr).
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? dflt : args[i + 1];
};
const flag = (name) => args.includes(`--${name}`);
const name = args.find((a, i) => !a.startsWith('--') && !(i > 0 && ['--acpi', '--runs', '--idle'].includes(args[i - 1])));
if (!name) {
  console.error('usage: node images/kernel/measure.mjs <tiny|debian|IMAGE_DIR> [--acpi on|off] [--runs 3] [--idle 10] [--gzip] [--diag]');
  process.exit(2);
}
const dir = fs.existsSync(path.join(name, 'manifest.json')) ? name : path.join(HERE, '..', 'dist', name);
const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
const acpi = opt('acpi') ? opt('acpi') === 'on' : !!manifest.acpi;

if (!flag('one')) {
  // Parent: one child process per boot; the first one also does the idle / gzip / diag extras.
  const runs = Number(opt('runs', 3));
  const results = [];
  for (let i = 0; i < runs; i++) {
    const always = flag('yield-fix') ? ['--yield-fix'] : [];
    const extra = i === 0 ? args.filter((a) => ['--gzip', '--diag', '--yield-fix'].includes(a)).concat(['--idle', opt('idle', '10')]) : ['--idle', '0'];
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), dir, '--one', '--acpi', acpi ? 'on' : 'off', ...new Set([...always, ...extra])],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    // (--yield-fix is passed to every boot so that the prompt times are comparable)
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const code = await new Promise((r) => child.on('close', r));
    if (code !== 0) throw new Error(`boot ${i + 1} failed (exit ${code})`);
    results.push(JSON.parse(out));
  }
  const prompts = results.map((r) => r.firstPromptS).sort((a, b) => a - b);
  const summary = { image: manifest.id, acpi, firstPromptS: prompts, medianFirstPromptS: prompts[Math.floor(prompts.length / 2)], ...results[0], firstPromptS_run1: results[0].firstPromptS };
  delete summary.firstPromptS_run1;
  summary.firstPromptS = prompts;
  console.log(JSON.stringify(summary));
  process.exit(0);
}

// ---- child: one boot ----------------------------------------------------------------------------------
// Count v86's wake-ups: it yields with global.setImmediate (next timer < 1 ms away) or setTimeout.
const wakes = { immediate: 0, timeout: 0 };
const realImmediate = globalThis.setImmediate;
const realTimeout = globalThis.setTimeout;
globalThis.setImmediate = (...a) => (wakes.immediate++, realImmediate(...a));
globalThis.setTimeout = (...a) => (wakes.timeout++, realTimeout(...a));
const sleep = (ms) => new Promise((r) => realTimeout(r, ms));

const require = createRequire(import.meta.url);
const { V86 } = await import('v86');
const v86dir = path.dirname(require.resolve('v86'));
const file = (rel) => {
  const b = fs.readFileSync(path.join(dir, rel));
  return { buffer: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) };
};
/** Read-only file disk with an in-memory write overlay (as images/smoke.mjs). */
class FileDisk {
  constructor(f, size) { this.fd = fs.openSync(f, 'r'); this.byteLength = size; this.overlay = new Map(); }
  load() { this.onload?.({}); }
  read(start, len) {
    const out = new Uint8Array(len);
    fs.readSync(this.fd, out, 0, len, start);
    for (let s = Math.floor(start / 512); this.overlay.size && s * 512 < start + len; s++) {
      const o = this.overlay.get(s);
      if (!o) continue;
      const from = Math.max(start, s * 512), to = Math.min(start + len, s * 512 + 512);
      out.set(o.subarray(from - s * 512, to - s * 512), from - start);
    }
    return out;
  }
  get(start, len, fn) { fn(this.read(start, len)); }
  get_and_cache(start, len, fn) { fn(this.read(start, len)); }
  get_from_cache(start, len) { return this.read(start, len); }
  set(start, data, fn) {
    for (let off = 0; off < data.length;) {
      const s = Math.floor((start + off) / 512), within = start + off - s * 512, n = Math.min(512 - within, data.length - off);
      let sec = this.overlay.get(s);
      if (!sec) { sec = new Uint8Array(512); fs.readSync(this.fd, sec, 0, 512, s * 512); this.overlay.set(s, sec); }
      sec.set(data.subarray(off, off + n), within);
      off += n;
    }
    fn();
  }
  get_buffer(fn) { fn(undefined); }
  get_state() { return [this.byteLength, []]; }
  set_state() {}
}

const MARK = '\x1b]133;A\x07';
const WAIT_MARK = '\x1b]7701;wait\x07';
const t0 = Date.now();
const secs = () => (Date.now() - t0) / 1000;
const emulator = new V86({
  wasm_path: path.join(v86dir, 'v86.wasm'),
  bios: file(manifest.bios), vga_bios: file(manifest.vgaBios), bzimage: file(manifest.kernel), initrd: file(manifest.initrd),
  cmdline: manifest.cmdline, memory_size: manifest.memoryMiB * 1024 * 1024, vga_memory_size: 2 * 1024 * 1024,
  virtio_console: true, acpi, disable_keyboard: true, disable_mouse: true, disable_speaker: true, autostart: true,
  ...(manifest.disk ? { hda: new FileDisk(path.join(dir, manifest.disk.url), manifest.disk.size) } : {}),
});
// --yield-fix: v86 (Node) polls with setImmediate whenever its next timer is < 1 ms away, i.e. it spins
// through the last millisecond before every guest timer interrupt. Sleep >= 1 ms instead unless the
// guest is actually runnable (main_loop returned 0).
const yieldFix = flag('yield-fix');
if (yieldFix) {
  const patch = realTimeout(function again() {
    const v = emulator.v86;
    if (!v) return realTimeout(again, 5);
    v.yield = function (t, tick) {
      if (t <= 0) realImmediate(() => this.yield_callback(tick));
      else realTimeout(() => this.yield_callback(tick), Math.max(1, t));
    };
  }, 0);
}
let out = '';
let answered = false;
const dec = new TextDecoder();
const enc = new TextEncoder();
const send = (s) => emulator.bus.send('virtio-console0-input-bytes', enc.encode(s));
emulator.add_listener('virtio-console0-output-bytes', (b) => {
  out += dec.decode(b, { stream: true });
  if (!answered && out.includes(WAIT_MARK)) {
    answered = true;
    send(`go ${Math.floor(Date.now() / 1000)} ${crypto.randomBytes(32).toString('hex')}\n`);
  }
});
let serial = '';
emulator.add_listener('serial0-output-byte', (c) => (serial += String.fromCharCode(c)));
async function waitFor(pred, what, timeoutS) {
  const end = Date.now() + timeoutS * 1000;
  while (Date.now() < end) {
    if (pred()) return;
    await sleep(50);
  }
  throw new Error(`timeout waiting for ${what}\n--- hvc0 ---\n${JSON.stringify(out.slice(-800))}\n--- serial ---\n${serial.slice(-2000)}`);
}
async function cmd(line, timeoutS = 300) {
  const from = out.length;
  send(`echo @@""B; ${line}; echo @@""E\n`);
  await waitFor(() => /\n@@E\r?\n/.test(out.slice(from)) && out.slice(from).split(/\n@@E/)[1].includes(MARK), JSON.stringify(line), timeoutS);
  const text = out.slice(from).replace(/\x1b\][^\x07]*\x07|\x1b\[[?\d;]*[A-Za-z]|\r/g, '');
  return text.slice(text.indexOf('\n@@B\n') + 5, text.indexOf('\n@@E'));
}
const interrupts = (text) => {
  const m = {};
  for (const l of text.split('\n')) {
    const r = /^\s*(\w+):\s+(\d+)\s*(.*)$/.exec(l);
    if (r) m[`${r[1]} ${r[3].trim().split(/\s+/).slice(-1)[0] || ''}`.trim()] = Number(r[2]);
  }
  return m;
};

const res = { image: manifest.id, acpi, yieldFix };
emulator.bus.send('virtio-console0-resize', [50, 200]); // rows, cols (v86 swaps them): no wrapped echo
try {
  await waitFor(() => out.includes(MARK), 'the first prompt', 600);
  res.firstPromptS = Number(secs().toFixed(2));
  console.error(`measure: ${manifest.id} acpi=${acpi}: first prompt after ${res.firstPromptS} s`);
  const idle = Number(opt('idle', '10'));
  if (idle > 0) {
    await sleep(2000); // let the boot settle (background module loads etc.)
    const before = interrupts(await cmd('cat /proc/interrupts'));
    const c0 = process.cpuUsage();
    const w0 = { ...wakes };
    const t = Date.now();
    await sleep(idle * 1000);
    const wall = (Date.now() - t) / 1000;
    const c = process.cpuUsage(c0);
    const after = interrupts(await cmd('cat /proc/interrupts'));
    res.idle = {
      seconds: wall,
      hostCpuPercent: Number((((c.user + c.system) / 1e6 / wall) * 100).toFixed(1)),
      wakeupsPerS: Number((((wakes.immediate - w0.immediate) + (wakes.timeout - w0.timeout)) / wall).toFixed(0)),
      setImmediatePerS: Number(((wakes.immediate - w0.immediate) / wall).toFixed(0)),
      guestIrqsPerS: Object.fromEntries(Object.keys(after).map((k) => [k, Number(((after[k] - (before[k] || 0)) / wall).toFixed(1))]).filter(([, v]) => v > 0)),
    };
    console.error(`measure: idle ${JSON.stringify(res.idle)}`);
  }
  if (flag('gzip')) {
    await cmd('seq 1 400000 > /tmp/d');
    const t = Date.now();
    const text = await cmd('time gzip -c /tmp/d > /dev/null');
    res.gzip = { hostWallS: (Date.now() - t) / 1000, guestTime: text.replace(/\s+/g, ' ').trim() };
    console.error(`measure: gzip ${JSON.stringify(res.gzip)}`);
  }
  if (flag('diag')) {
    res.diag = await cmd('uname -r; cat /sys/devices/system/clocksource/clocksource0/current_clocksource ' +
      '/sys/devices/system/clockevents/clockevent0/current_device 2>&1; grep -E "^Tick Device|^ mode:|^Clock Event Device:|event_handler" /proc/timer_list 2>&1 | head -12; ' +
      'dmesg | grep -iE "clocksource|clockevent|hpet|apic|tsc|nohz|hrtimer|acpi:|tick|Switched" | head -40');
    console.error(`measure: diag\n${res.diag}`);
  }
} catch (e) {
  console.error(`measure: FAIL ${e.message}`);
  process.exit(1);
}
console.log(JSON.stringify(res));
process.exit(0);
