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
});
