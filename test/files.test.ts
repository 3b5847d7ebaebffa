// upload() and download(): files in and out of the running guest through the 9p share and the guest's
// file agent (images/guest/linux-vm-agent), checked by SHA-256 inside the guest; a real page reload for
// the persistent debian disk; every input error with its code.
import { expect } from '@esm-bundle/chai';
import type { LinuxVm } from '../src/index.js';
import { VmError } from '../src/errors.js';
import { MAX_TRANSFER_BYTES } from '../src/protocol.js';
import { DEBIAN, TINY, createVm, nextEvent, randomBytes, run, sha256 } from './helpers.js';
import { VmPage } from './vm-page.js';

const MINUTE = 60_000;
const MiB = 1024 * 1024;

/** The guest's sha256sum of `path`. */
async function guestSha256(vm: LinuxVm, path: string): Promise<string> {
  const match = await run(vm, `sha256sum ${path} | cut -c1-64`, /^([0-9a-f]{64})$/m, 5 * MINUTE);
  return match[1]!;
}

/** The VmError code a promise rejects with (fails the test if it resolves, or rejects with something else). */
async function rejectionCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error, String(error)).to.be.instanceOf(VmError);
    return (error as VmError).code;
  }
  throw new Error('expected a rejection');
}

/** Uploads 5 MiB of random bytes and downloads 5 MiB the guest made; both compared by SHA-256. */
async function roundTrip(vm: LinuxVm, dir: string): Promise<void> {
  const bytes = randomBytes(5 * MiB);
  let started = performance.now();
  await vm.upload(new File([bytes], 'up.bin'), `${dir}/up.bin`);
  const uploadMs = performance.now() - started;
  expect(await guestSha256(vm, `${dir}/up.bin`)).to.equal(await sha256(bytes));

  await run(vm, `head -c ${5 * MiB} /dev/urandom > ${dir}/gen.bin && echo made-gen`, /^made-gen$/m, 5 * MINUTE);
  const guestHash = await guestSha256(vm, `${dir}/gen.bin`);
  started = performance.now();
  const blob = await vm.download(`${dir}/gen.bin`);
  const downloadMs = performance.now() - started;
  expect(blob.size).to.equal(5 * MiB);
  expect(await sha256(blob)).to.equal(guestHash);
  console.log(`5 MiB: upload ${(uploadMs / 1000).toFixed(1)} s, download ${(downloadMs / 1000).toFixed(1)} s`);
}

describe('<linux-vm> file transfer (tiny)', function () {
  this.timeout(15 * MINUTE);
  let vm: LinuxVm;

  before(async () => {
    vm = createVm({ image: TINY });
    // Before the first prompt there is no guest to talk to.
    expect(await rejectionCode(vm.download('/etc/hostname'))).to.equal('vm-not-ready');
    await nextEvent(vm, 'ready', 12 * MINUTE);
  });

  after(() => vm.remove());

  it('moves a 5 MiB file in and out intact', async () => {
    await roundTrip(vm, '/root');
  });

  it('replaces an existing file and downloads an empty one', async () => {
    await vm.upload(new Blob(['first version, longer\n']), '/root/my note.txt');
    await vm.upload(new Blob(['second\n']), '/root/my note.txt');
    await run(vm, 'cat "/root/my note.txt"', /^second$/m);
    await run(vm, ': > /root/empty && echo made-empty', /^made-empty$/m);
    expect((await vm.download('/root/empty')).size).to.equal(0);
    await vm.upload(new Blob([]), '/root/empty-up');
    await run(vm, 'echo "size=$(wc -c < /root/empty-up)"', /^size=0$/m);
  });

  it('runs transfers asked for at the same time one after another, each intact', async () => {
    const files = ['a', 'b', 'c'].map((name) => ({ name, bytes: randomBytes(256 * 1024 + name.charCodeAt(0)) }));
    await Promise.all(files.map((f) => vm.upload(new Blob([f.bytes]), `/root/par-${f.name}`)));
    const back = await Promise.all(files.map((f) => vm.download(`/root/par-${f.name}`)));
    for (const [i, f] of files.entries()) expect(await sha256(back[i]!), f.name).to.equal(await sha256(f.bytes));
  });

  it('keeps working when the agent is killed in the guest (init restarts it; a request in flight is sent again)', async () => {
    await run(vm, "kill $(ps | awk '/[l]inux-vm-agent/ { print $1 }') && echo killed-agent", /^killed-agent$/m);
    const bytes = randomBytes(MiB);
    await vm.upload(new Blob([bytes]), '/root/after-kill');
    expect(await guestSha256(vm, '/root/after-kill')).to.equal(await sha256(bytes));
  });

  it('rejects bad paths with specific codes', async () => {
    const file = new Blob(['x']);
    expect(await rejectionCode(vm.upload(file, 'root/relative'))).to.equal('path-invalid');
    expect(await rejectionCode(vm.upload(file, ''))).to.equal('path-invalid');
    expect(await rejectionCode(vm.download('/root/a\nb'))).to.equal('path-invalid');
    expect(await rejectionCode(vm.upload(file, '/root'))).to.equal('path-is-directory');
    expect(await rejectionCode(vm.download('/root'))).to.equal('path-is-directory');
    expect(await rejectionCode(vm.download('/root/no-such-file'))).to.equal('path-not-found');
    expect(await rejectionCode(vm.upload(file, '/no-such-dir/x'))).to.equal('path-not-found');
    expect(await rejectionCode(vm.download('/dev/null'))).to.equal('transfer-failed');
    // The guest is still fine, and nothing half-written was left behind.
    const leftovers = await run(vm, 'echo "leftovers=$(ls -a /root | grep -c linux-vm-upload)"', /^leftovers=(\d+)$/m);
    expect(leftovers[1]).to.equal('0');
  });

  it('rejects files over the limit, on the way in and on the way out', async () => {
    const chunk = new Uint8Array(MiB);
    const tooBig = new Blob(Array.from({ length: MAX_TRANSFER_BYTES / MiB + 1 }, () => chunk));
    expect(await rejectionCode(vm.upload(tooBig, '/root/big'))).to.equal('file-too-large');
    // A sparse guest file larger than the limit: the agent refuses it before copying a byte.
    await run(vm, `truncate -s ${MAX_TRANSFER_BYTES + 1} /root/sparse && echo made-sparse`, /^made-sparse$/m);
    expect(await rejectionCode(vm.download('/root/sparse'))).to.equal('file-too-large');
  });

  it('reports a guest that cannot store the upload (full disk) as transfer-failed', async () => {
    // tiny's root is a tmpfs of half its 96 MiB of RAM.
    const code = await rejectionCode(vm.upload(new Blob([randomBytes(64 * MiB)]), '/root/too-much'));
    expect(code).to.equal('transfer-failed');
    const left = await run(vm, 'echo "left=$(ls -a /root | grep -c too-much)"', /^left=(\d+)$/m);
    expect(left[1], 'no partial file').to.equal('0');
  });

  it('rejects calls on a stopped VM with vm-not-ready', async () => {
    vm.stop();
    expect(await rejectionCode(vm.upload(new Blob(['x']), '/root/x'))).to.equal('vm-not-ready');
  });
});

describe('<linux-vm> file transfer (debian, persistent disk)', function () {
  this.timeout(30 * MINUTE);
  let page: VmPage;

  after(() => page?.close());

  it('moves a 5 MiB file in and out intact, and an upload survives a real page reload', async () => {
    page = await new VmPage({ image: DEBIAN, persist: `test-files-${Math.random().toString(36).slice(2, 8)}` }).open();
    await page.next('ready');
    await roundTrip(page.vm, '/root');
    const uploaded = await guestSha256(page.vm, '/root/up.bin');
    // upload() resolves once the guest has synced the file: no `sync` typed here.
    await page.reload();
    await page.next('ready');
    expect(await guestSha256(page.vm, '/root/up.bin')).to.equal(uploaded);
  });
});
