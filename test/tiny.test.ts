// The `tiny` image (Debian kernel + busybox initramfs) booted once in <linux-vm>, then exercised.
import { expect } from '@esm-bundle/chai';
import { sendKeys } from '@web/test-runner-commands';
import type { LinuxVm } from '../src/index.js';
import { TINY, createVm, nextEvent, run, terminalText, trackWorkers, waitForOutput, workerAnswers } from './helpers.js';

const MINUTE = 60_000;

describe('<linux-vm image=tiny>', () => {
  let vm: LinuxVm;
  let tracker: ReturnType<typeof trackWorkers>;
  const phases: string[] = [];

  before(async () => {
    tracker = trackWorkers();
    vm = createVm({ image: TINY });
    vm.addEventListener('progress', (e) => {
      if (phases.at(-1) !== e.detail.phase) phases.push(e.detail.phase);
    });
    await nextEvent(vm, 'ready', 12 * MINUTE);
  });

  after(() => {
    tracker.restore();
    vm.remove();
  });

  it('resumes its boot snapshot to a shell prompt, reporting each loading phase in order', () => {
    expect(vm.state).to.equal('ready');
    expect(phases).to.deep.equal(['manifest', 'bios', 'vga-bios', 'snapshot', 'boot']);
    expect(terminalText(vm)).to.match(/root@linux-vm:~#$/);
  });

  it('runs a command typed as keystrokes into the terminal', async () => {
    vm.focus();
    const since = terminalText(vm).length;
    await sendKeys({ type: 'echo $((6*7))' });
    await sendKeys({ press: 'Enter' });
    await waitForOutput(vm, /^42$/m, MINUTE, since);
  });

  it('has the host clock after resuming its snapshot', async () => {
    const [, guestSeconds] = await run(vm, 'echo "now=$(date +%s)"', /now=(\d+)/);
    expect(Math.abs(Number(guestSeconds) - Date.now() / 1000)).to.be.lessThan(2);
  });

  it('runs commands sent with type()', async () => {
    await run(vm, 'echo "sum=$((40+2))"; uname -s', /sum=42\s+Linux/);
  });

  it('tells the guest tty the terminal size, and follows element resizes', async () => {
    const before = await run(vm, 'stty size', /^(\d+) (\d+)\s*$/m);
    expect([Number(before[1]), Number(before[2])]).to.deep.equal([vm.terminal!.rows, vm.terminal!.cols]);

    const oldSize = [vm.terminal!.rows, vm.terminal!.cols];
    vm.style.width = '520px';
    vm.style.height = '300px';
    const deadline = performance.now() + 5000;
    while (vm.terminal!.cols === oldSize[1] && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const { rows, cols } = vm.terminal!;
    expect([rows, cols]).to.not.deep.equal(oldSize);
    const after = await run(vm, 'stty size', /^(\d+) (\d+)\s*$/m);
    expect([Number(after[1]), Number(after[2])]).to.deep.equal([rows, cols]);
  });

  it('keeps the page responsive while the guest is busy', async () => {
    // About six seconds of guest CPU work; meanwhile measure main-thread timer lateness.
    const since = terminalText(vm).length;
    vm.type('end=$(($(date +%s)+6)); n=0; while [ $(date +%s) -lt $end ]; do n=$((n+1)); done; echo "spun $n"\n');
    const gaps: number[] = [];
    let last = performance.now();
    let done = false;
    const finished = waitForOutput(vm, /spun (\d+)/, 2 * MINUTE, since).finally(() => (done = true));
    while (!done) {
      await new Promise((r) => setTimeout(r, 10));
      const now = performance.now();
      gaps.push(now - last);
      last = now;
    }
    const iterations = Number((await finished)[1]);
    expect(iterations, 'the guest loop ran').to.be.greaterThan(0);
    gaps.sort((a, b) => a - b);
    const median = gaps[Math.floor(gaps.length / 2)]!;
    const worst = gaps.at(-1)!;
    // A 10 ms timer on an idle main thread fires every ~10 ms; the emulator in the worker must not stretch it.
    expect(gaps.length, 'timer ticks during the busy loop').to.be.greaterThan(100);
    expect(median, `median gap (worst ${worst.toFixed(1)} ms)`).to.be.lessThan(30);
    expect(worst, 'worst gap').to.be.lessThan(500);
  });

  it('replaces the guest when image changes, terminating the old worker; the new guest has fresh randomness', async () => {
    const randomBytes = /^ ?((?:[0-9a-f]{2} ){15}[0-9a-f]{2})$/m;
    const [, firstRandom] = await run(vm, 'head -c 16 /dev/urandom | od -An -tx1', randomBytes);
    const oldWorker = tracker.workers.at(-1)!;
    const stopped = nextEvent(vm, 'stopped');
    const ready = nextEvent(vm, 'ready', 12 * MINUTE);
    vm.image = `${TINY}?second-boot`;
    await stopped;
    expect(await workerAnswers(oldWorker)).to.equal(false);
    await ready;
    expect(tracker.workers.at(-1)).to.not.equal(oldWorker);
    await run(vm, 'echo again-$((3*3))', /again-9/);
    // Both guests resumed the same snapshot; the host's entropy in the `go` line must set them apart.
    const [, secondRandom] = await run(vm, 'head -c 16 /dev/urandom | od -An -tx1', randomBytes);
    expect(secondRandom).to.not.equal(firstRandom);
  });

  it('stops and terminates its worker when removed from the page', async () => {
    const worker = tracker.workers.at(-1)!;
    expect(await workerAnswers(worker)).to.equal(true);
    const stopped = nextEvent(vm, 'stopped');
    vm.remove();
    await stopped;
    expect(vm.state).to.equal('stopped');
    expect(await workerAnswers(worker)).to.equal(false);
  });
});
