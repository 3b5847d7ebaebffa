// <linux-vm> behaviour that needs no booted guest: bad input, loading modes, teardown.
import { expect } from '@esm-bundle/chai';
import type { LinuxVm } from '../src/index.js';
import { VmError } from '../src/index.js';
import { TINY, createVm, nextEvent, trackWorkers, workerAnswers } from './helpers.js';

const fixture = (name: string) => `/test/fixtures/${name}`;

describe('<linux-vm> errors', () => {
  let vm: LinuxVm | undefined;
  afterEach(() => vm?.remove());

  const cases: [string, string, string][] = [
    ['a manifest that does not exist', fixture('no-such-manifest.json'), 'manifest-not-found'],
    ['a manifest that is not JSON', fixture('malformed.json'), 'manifest-invalid'],
    ['a manifest without a kernel', fixture('no-kernel-field.json'), 'manifest-invalid'],
    ['a kernel that does not exist', fixture('missing-kernel.json'), 'kernel-not-found'],
    ['too little memory for the initrd', fixture('small-memory.json'), 'memory-too-small'],
    ['a disk whose size differs from the manifest', fixture('disk-size-mismatch.json'), 'disk-size-mismatch'],
  ];
  for (const [what, image, code] of cases) {
    it(`reports ${what} as "${code}"`, async () => {
      vm = createVm({ image, loading: 'manual' });
      const errorEvent = nextEvent(vm, 'error');
      let rejection: unknown;
      await vm.start().catch((e) => (rejection = e));
      const event = await errorEvent;
      expect(event.detail.code).to.equal(code);
      expect(event.detail.message).to.be.a('string').and.not.empty;
      expect(rejection).to.be.instanceOf(VmError);
      expect((rejection as VmError).code).to.equal(code);
      expect(vm.state).to.equal('error');
      expect(vm.matches(':state(error)')).to.equal(true);
    });
  }

  it('reports a start without an image as "no-image"', async () => {
    vm = createVm({ loading: 'manual' });
    const event = nextEvent(vm, 'error');
    await vm.start().catch(() => {});
    expect((await event).detail.code).to.equal('no-image');
  });

  it('does not let the error event bubble to window error handlers', async () => {
    let reachedWindow = false;
    const onWindowError = () => (reachedWindow = true);
    window.addEventListener('error', onWindowError);
    try {
      vm = createVm({ image: fixture('malformed.json'), loading: 'manual' });
      const event = nextEvent(vm, 'error');
      await vm.start().catch(() => {});
      expect((await event).composed).to.equal(true);
      expect(reachedWindow).to.equal(false);
    } finally {
      window.removeEventListener('error', onWindowError);
    }
  });

  it('refuses type() when no VM runs', () => {
    vm = createVm({ image: TINY, loading: 'manual' });
    expect(() => vm!.type('ls\n')).to.throw(DOMException, /idle/);
  });
});

describe('<linux-vm> loading modes and teardown', () => {
  let vm: LinuxVm | undefined;
  let tracker: ReturnType<typeof trackWorkers>;
  beforeEach(() => (tracker = trackWorkers()));
  afterEach(() => {
    tracker.restore();
    vm?.remove();
  });

  it('with loading="manual" stays idle until start()', async () => {
    vm = createVm({ image: TINY, loading: 'manual' });
    await new Promise((r) => setTimeout(r, 300));
    expect(vm.state).to.equal('idle');
    expect(tracker.workers).to.have.length(0);
    const progress = nextEvent(vm, 'progress');
    void vm.start().catch(() => {});
    expect(vm.state).to.equal('loading');
    expect((await progress).detail.phase).to.equal('manifest');
  });

  it('with loading="lazy" starts only when scrolled into view', async () => {
    const spacer = document.createElement('div');
    spacer.style.height = '300vh';
    document.body.prepend(spacer);
    try {
      vm = createVm({ image: TINY, loading: 'lazy' });
      await new Promise((r) => setTimeout(r, 500));
      expect(vm.state).to.equal('idle');
      const progress = nextEvent(vm, 'progress');
      vm.scrollIntoView();
      await progress;
      expect(['loading', 'booting']).to.include(vm.state);
    } finally {
      spacer.remove();
      window.scrollTo(0, 0);
    }
  });

  it('loads eagerly by default and stops when removed, terminating its worker', async () => {
    vm = createVm({ image: TINY });
    await nextEvent(vm, 'progress');
    expect(tracker.workers).to.have.length(1);
    const worker = tracker.workers[0]!;
    expect(await workerAnswers(worker)).to.equal(true);
    const stopped = nextEvent(vm, 'stopped');
    vm.remove();
    await stopped;
    expect(vm.state).to.equal('stopped');
    expect(await workerAnswers(worker)).to.equal(false);
  });

  it('releases its terminal when removed, and starts afresh when added again', async () => {
    vm = createVm({ image: TINY });
    await nextEvent(vm, 'progress');
    const firstTerminal = vm.terminal;
    expect(firstTerminal).to.exist;
    const stopped = nextEvent(vm, 'stopped');
    vm.remove();
    await stopped;
    expect(vm.terminal).to.equal(undefined);
    const progress = nextEvent(vm, 'progress');
    document.body.append(vm);
    await progress;
    expect(vm.terminal).to.exist.and.not.equal(firstTerminal);
    expect(['loading', 'booting']).to.include(vm.state);
    expect(vm.shadowRoot!.querySelectorAll('.xterm')).to.have.length(1);
  });

  it('keeps its VM when moved within the document', async () => {
    vm = createVm({ image: TINY });
    await nextEvent(vm, 'progress');
    const holder = document.createElement('div');
    document.body.append(holder);
    holder.append(vm); // disconnect + reconnect in one task
    await new Promise((r) => setTimeout(r, 100));
    expect(['loading', 'booting']).to.include(vm.state);
    expect(await workerAnswers(tracker.workers[0]!)).to.equal(true);
    holder.remove();
  });

  it('stop() rejects a pending start() with AbortError and fires stopped once', async () => {
    vm = createVm({ image: TINY, loading: 'manual' });
    let stoppedEvents = 0;
    vm.addEventListener('stopped', () => stoppedEvents++);
    const started = vm.start();
    vm.stop();
    vm.stop();
    const error = await started.catch((e) => e);
    expect(error).to.be.instanceOf(DOMException);
    expect(error.name).to.equal('AbortError');
    expect(stoppedEvents).to.equal(1);
    expect(vm.state).to.equal('stopped');
  });
});
