// bench/cpu: how fast guest code runs in <linux-vm> (v86 in headless Chromium, through the element), compared
// with the same i386 binaries natively on this host and in qemu-system-i386 (TCG), and what an idle guest
// costs the host. Prints a table and JSON.
//
//   npm run bench:cpu [-- --images tiny,debian --runs 3 --native-runs 5 --ways native,qemu,v86 --settle 15 --idle 10 --no-build]
//
// Each workload is one shell command typed at the guest's prompt (in v86 with the element's type(), in QEMU on
// the virtio console, natively via chroot + the image's shell) inside the same wrapper:
//   linux-vm-spin now; <command>; s=$?; linux-vm-spin now; echo "@@E""ND:<tag>:$s"
// `linux-vm-spin now` (images/guest/spin.c) prints CLOCK_MONOTONIC in ns (busybox's date has no %N), so
// times are measured inside the guest, the same way in all three; they include one exec of that static
// binary (the "timer overhead" row). Host wall time (typing to marker) goes into the JSON too.
// Idle: after the first prompt, wait --settle seconds, then host CPU over --idle seconds: the whole Chromium process
// tree (browser, renderer, GPU, … : the page's cost) for v86, the QEMU process for QEMU. As % of one core. The
// settling time lets what follows a boot end first (the guest's DHCP client, file agent and 9p mount start after
// the prompt; Chromium optimises v86's wasm in the background): measured, that costs 80 % of a core in the first
// 5 s after debian's prompt and ~15 % in the next 10 s.
//
// Needs root (chroot, loop mount), the Debian packages chromium, qemu-system-x86, gcc (for the image), cpio.
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildBundle, buildImage, launchBrowser, median, root, startBenchServer } from './lib/setup.mjs';
import { NativeRoot } from './lib/native.mjs';
import { idleCpuPercent } from './lib/proc.mjs';
import { QemuVm } from './lib/qemu.mjs';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: 'tiny,debian' },
    // Timed runs per workload in v86 and QEMU (median): the first also pays for translating the code (v86's JIT,
    // QEMU's TCG) and, in debian, for streaming the program from the disk image (gcc's cc1 is ~25 MB).
    runs: { type: 'string', default: '3' },
    'native-runs': { type: 'string', default: '5' },
    ways: { type: 'string', default: 'native,qemu,v86' },
    settle: { type: 'string', default: '15' }, // seconds from the first prompt to the idle measurement
    idle: { type: 'string', default: '10' }, // seconds of idle measurement
    'no-build': { type: 'boolean', default: false }, // use images/dist/* and dist/ as they are
  },
});
const runs = Number(values.runs);
const nativeRuns = Number(values['native-runs']);
const ways = values.ways.split(',');
const settleMs = Number(values.settle) * 1000;
const idleSeconds = Number(values.idle);
const COMMAND_TIMEOUT_MS = 600_000;

// The C file of the gcc workload: ~100 lines, generated in the guest (the command stays short to type).
const GEN_C = String.raw`{ echo '#include <stdio.h>'; echo '#include <string.h>'; for i in $(seq 1 48); do echo "static unsigned f$i(const char *s, unsigned n) { unsigned h = $i; for (unsigned k = 0; k < n; k++) h = (h * 31u + (unsigned char)s[k]) ^ (h >> 7); return h; }"; done; echo 'int main(int argc, char **argv) { unsigned h = 0; (void)argc;'; for i in $(seq 1 48); do echo "  h += f$i(argv[0], (unsigned)strlen(argv[0]));"; done; echo '  printf("%u\n", h); return 0; }'; } > /tmp/bench.c`;

/**
 * Workloads per image. `setup` and then `warmup` run untimed before the timed runs. The warm-up loads the
 * same programs and files (v86 streams the debian disk over HTTP on first access, QEMU and native read it
 * from the host's page cache): the timed runs then measure computation, not first disk access.
 */
const WORKLOADS = {
  tiny: [
    { id: 'overhead', title: 'timer overhead (empty command)', command: ':' },
    { id: 'gzip', title: 'gzip -c of 2 MB', setup: 'seq 1 300000 > /tmp/bench.txt', command: 'gzip -c /tmp/bench.txt > /dev/null' },
    { id: 'ash-loop', title: 'busybox ash loop, 20000 iterations', command: 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done' },
    { id: 'spin', title: 'static C loop, 200 M iterations', command: 'linux-vm-spin 200' },
  ],
  debian: [
    { id: 'overhead', title: 'timer overhead (empty command)', command: ':' },
    { id: 'python3', title: 'python3 sum of 300000 squares', warmup: 'python3 -c pass', command: "python3 -c 'print(sum(i*i for i in range(300000)))'" },
    { id: 'gcc', title: 'gcc -O2 -c of a 100-line C file', setup: GEN_C, command: 'gcc -O2 -c -o /tmp/bench.o /tmp/bench.c',
      warmup: String.raw`printf '#include <stdio.h>\n#include <string.h>\nint x;\n' > /tmp/warm.c && gcc -O2 -c -o /tmp/warm.o /tmp/warm.c` },
  ],
};

let tagCounter = 0;
/** The wrapped command line and the marker that ends its output. */
function wrap(command) {
  const tag = `${++tagCounter}`;
  return { line: `linux-vm-spin now; ${command}; s=$?; linux-vm-spin now; echo "@@E""ND:${tag}:$s"`, marker: `@@END:${tag}:` };
}

const stripAnsi = (text) => text.replace(/\x1b\][^\x07]*\x07/g, '').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');

/** From a wrapped command's output: guest seconds, exit status, and the command's own output lines. */
function parseRun(text, marker) {
  const lines = stripAnsi(text).split('\n');
  const end = lines.findIndex((l) => l.includes(marker));
  const status = Number(new RegExp(`${marker}(\\d+)`).exec(lines[end] ?? '')?.[1]);
  const stamps = [];
  lines.slice(0, end).forEach((l, i) => {
    const m = /^spin-now (\d+)\.(\d{9})\s*$/.exec(l.trim());
    if (m) stamps.push({ i, ns: BigInt(m[1]) * 1_000_000_000n + BigInt(m[2]) });
  });
  if (end < 0 || stamps.length < 2) throw new Error(`cannot parse the output of a run:\n${text}`);
  const [a, b] = stamps.slice(-2);
  return {
    seconds: Number(b.ns - a.ns) / 1e9,
    status,
    output: lines.slice(a.i + 1, b.i).map((l) => l.trim()).filter(Boolean).join('\n'),
  };
}

/** Runs an image's workloads on one "way" (an object with runCommand(line, marker) → { hostMs, text }). */
async function runWorkloads(way, image, vm, count) {
  const results = {};
  for (const w of WORKLOADS[image]) {
    const exec = async (command) => {
      const { line, marker } = wrap(command);
      const { hostMs, text } = await vm.runCommand(line, marker, COMMAND_TIMEOUT_MS);
      const r = parseRun(text, marker);
      if (r.status !== 0) throw new Error(`${way}/${image}/${w.id}: exit status ${r.status}:\n${stripAnsi(text)}`);
      return { ...r, hostSeconds: hostMs / 1000 };
    };
    if (w.setup) await exec(w.setup);
    if (w.warmup) await exec(w.warmup);
    const samples = [];
    for (let i = 0; i < count; i++) samples.push(await exec(w.command));
    const seconds = median(samples.map((s) => s.seconds));
    results[w.id] = {
      seconds: round(seconds),
      hostSeconds: round(median(samples.map((s) => s.hostSeconds))),
      samples: samples.map((s) => round(s.seconds)),
      output: samples[0].output,
    };
    console.error(`${way.padEnd(6)} ${image}/${w.id}: ${seconds.toFixed(3)} s${samples[0].output ? `  (${samples[0].output.split('\n')[0]})` : ''}`);
  }
  return results;
}

const round = (x, digits = 4) => Number(x.toPrecision(digits));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------------------

const notes = [];
const imageDir = (name) => path.join(root, 'images', 'dist', name);
// tiny must build; any other image that fails to build (or is unknown) is skipped with a note.
const images = values.images.split(',').filter((name) => {
  if (!WORKLOADS[name]) return notes.push(`${name}: no workloads defined, skipped`) && false;
  if ((values['no-build'] || buildImage(name)) && existsSync(path.join(imageDir(name), 'manifest.json'))) return true;
  if (name === 'tiny') process.exit(1);
  notes.push(`${name}: image not built (images/build.mjs ${name} failed), skipped`);
  return false;
});
if (!values['no-build'] && !buildBundle()) process.exit(1);

const results = {}; // image → way → { workloads, bootSeconds?, idleCpuPercent? }
for (const image of images) results[image] = {};

// 1. native
if (ways.includes('native') && process.getuid?.() !== 0) notes.push('native: needs root (chroot, mount), skipped');
else if (ways.includes('native')) {
  for (const image of images) {
    const native = new NativeRoot(imageDir(image)).open();
    try {
      results[image].native = { workloads: await runWorkloads('native', image, native, nativeRuns) };
    } finally {
      native.close();
    }
  }
}

// 2. QEMU
if (ways.includes('qemu')) {
  for (const image of images) {
    const qemu = new QemuVm(imageDir(image), { serialLog: path.join(os.tmpdir(), `linux-vm-bench-qemu-${image}.log`) });
    try {
      const bootSeconds = await qemu.boot();
      console.error(`qemu   ${image}: prompt after ${bootSeconds.toFixed(1)} s`);
      await sleep(settleMs);
      const idle = await idleCpuPercent(qemu.pid, idleSeconds);
      console.error(`qemu   ${image}: idle ${idle} % of a core`);
      results[image].qemu = { bootSeconds: round(bootSeconds, 3), idleCpuPercent: idle, workloads: await runWorkloads('qemu', image, qemu, runs) };
    } finally {
      await qemu.stop();
    }
  }
}

// 3. v86 through <linux-vm> in headless Chromium
if (ways.includes('v86')) {
  const server = await startBenchServer();
  const browser = await launchBrowser({ protocolTimeout: 2 * COMMAND_TIMEOUT_MS }); // a cold debian boot can take minutes
  try {
    for (const image of images) {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      try {
        await page.goto(`${server.origin}/bench/cpu-page.html`);
        await page.waitForFunction('window.benchPageReady === true');
        const { msToReady } = await page.evaluate((url) => window.boot(url), `/images/${image}/manifest.json`);
        console.error(`v86    ${image}: prompt after ${(msToReady / 1000).toFixed(1)} s`);
        await sleep(settleMs);
        const idle = await idleCpuPercent(browser.process().pid, idleSeconds);
        console.error(`v86    ${image}: idle ${idle} % of a core (all Chromium processes)`);
        const vm = {
          runCommand: async (line, marker, timeoutMs) => {
            const { hostMs, lines } = await page.evaluate((l, m, t) => window.runCommand(l, m, t), line, marker, timeoutMs);
            return { hostMs, text: lines.join('\n') };
          },
        };
        results[image].v86 = { bootSeconds: round(msToReady / 1000, 3), idleCpuPercent: idle, workloads: await runWorkloads('v86', image, vm, runs) };
      } finally {
        await page.evaluate(() => window.stopVm()).catch(() => {});
        await context.close();
      }
    }
  } finally {
    await browser.close();
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------

const rows = [];
for (const image of images) {
  for (const w of WORKLOADS[image]) {
    const get = (way) => results[image][way]?.workloads[w.id];
    const [native, qemu, v86] = ['native', 'qemu', 'v86'].map(get);
    const ratio = (a, b) => (a && b && b.seconds > 0 ? round(a.seconds / b.seconds, 3) : null);
    const outputs = [native, qemu, v86].filter(Boolean).map((r) => r.output);
    if (new Set(outputs).size > 1) notes.push(`${image}/${w.id}: outputs differ between ways: ${JSON.stringify(outputs)}`);
    rows.push({
      image, workload: w.id, title: w.title, command: w.command,
      nativeSeconds: native?.seconds ?? null, qemuSeconds: qemu?.seconds ?? null, v86Seconds: v86?.seconds ?? null,
      v86OverNative: ratio(v86, native), v86OverQemu: ratio(v86, qemu), qemuOverNative: ratio(qemu, native),
      hostSeconds: { native: native?.hostSeconds ?? null, qemu: qemu?.hostSeconds ?? null, v86: v86?.hostSeconds ?? null },
      samples: { native: native?.samples ?? null, qemu: qemu?.samples ?? null, v86: v86?.samples ?? null },
      output: outputs[0] ?? '',
    });
  }
}

const fmt = (x, digits = 3) => (x == null ? '-' : x.toFixed(digits));
console.log(`\nguest-timed seconds (median; native ${nativeRuns} runs, QEMU/v86 ${runs}); ratios = v86 time / other time`);
console.log('image   workload   native s   QEMU s    v86 s  v86/native  v86/QEMU  QEMU/native  what');
for (const r of rows) {
  console.log(`${r.image.padEnd(7)} ${r.workload.padEnd(9)} ${fmt(r.nativeSeconds).padStart(9)} ${fmt(r.qemuSeconds).padStart(8)} ${fmt(r.v86Seconds).padStart(8)}` +
    ` ${fmt(r.v86OverNative, 1).padStart(11)} ${fmt(r.v86OverQemu, 1).padStart(9)} ${fmt(r.qemuOverNative, 1).padStart(12)}  ${r.title}`);
}
console.log('\nimage   boot to prompt: QEMU s   v86 s    idle host CPU (% of one core): QEMU   v86 (all Chromium processes)');
for (const image of images) {
  const { qemu, v86 } = results[image];
  console.log(`${image.padEnd(7)} ${fmt(qemu?.bootSeconds, 1).padStart(22)} ${fmt(v86?.bootSeconds, 1).padStart(7)}` +
    ` ${fmt(qemu?.idleCpuPercent, 1).padStart(41)} ${fmt(v86?.idleCpuPercent, 1).padStart(7)}`);
}
for (const n of notes) console.log(`note: ${n}`);
console.log(JSON.stringify({
  benchmark: 'cpu',
  date: new Date().toISOString(),
  host: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, settleSeconds: settleMs / 1000, idleSeconds, runs, nativeRuns },
  results: rows,
  vms: Object.fromEntries(images.map((image) => [image, Object.fromEntries(['qemu', 'v86'].filter((w) => results[image][w]).map((w) =>
    [w, { bootSeconds: results[image][w].bootSeconds, idleCpuPercent: results[image][w].idleCpuPercent }]))])),
  notes,
}, null, 2));
