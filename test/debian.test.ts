// The `debian` image: a bookworm i386 root on an ext2 disk streamed over HTTP Range requests.
import { expect } from '@esm-bundle/chai';
import type { LinuxVm } from '../src/index.js';
import { DEBIAN, createVm, nextEvent, run, terminalText } from './helpers.js';

const MINUTE = 60_000;

describe('<linux-vm image=debian>', () => {
  let vm: LinuxVm;

  before(async () => {
    vm = createVm({ image: DEBIAN });
    await nextEvent(vm, 'ready', 14 * MINUTE);
  });

  after(() => vm.remove());

  it('gives a root bash prompt', async () => {
    expect(vm.state).to.equal('ready');
    await run(vm, 'echo "$(id -un) $BASH_VERSION"', /^root \d+\.\d+/m);
  });

  it('runs python3', async () => {
    await run(vm, "python3 -c 'print(6*7)'", /^42\s*$/m, 5 * MINUTE);
  });

  it('has the promised tools installed', async () => {
    const tools = ['gcc', 'make', 'git', 'ssh', 'curl', 'ip', 'less', 'vi'];
    const since = terminalText(vm).length;
    // The marker is matched at the start of a line, so the echoed command line itself cannot match.
    await run(vm, `for t in ${tools.join(' ')}; do command -v $t >/dev/null && echo "have-$t"; done; echo tools-done`, /^tools-done$/m);
    const lines = terminalText(vm).slice(since).split('\n');
    for (const t of tools) expect(lines, `have-${t}`).to.include(`have-${t}`);
  });

  // PID 1 is our static init (images/guest/init.c): orphans are re-parented to it, and it must reap them.
  it('runs our init as PID 1, which reaps orphaned processes', async () => {
    await run(vm, 'echo "init=$(cat /proc/1/comm)"', /^init=linux-vm-init\s*$/m);
    // Each orphan's parent (the subshell) exits at once; the orphan ends 0.2 s later and must not stay a zombie.
    await run(
      vm,
      'for i in 1 2 3; do (sleep 0.2 &); done; sleep 1.5; echo "zombies=$(ps -eo stat= | grep -c "^Z")"',
      /^zombies=0\s*$/m,
    );
  });
});
