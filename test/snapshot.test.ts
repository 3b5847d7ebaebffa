// Boot snapshots that cannot be used never fail a start: the VM cold-boots and says why.
import { expect } from '@esm-bundle/chai';
import type { LinuxVm } from '../src/index.js';
import { TINY, createVm, run } from './helpers.js';

const MINUTE = 60_000;

/** The tiny manifest, changed by `edit`, served from a blob: URL (so every URL in it is made absolute). */
async function tinyManifestWith(edit: (manifest: Record<string, any>) => void): Promise<string> {
  const base = new URL(TINY, location.href).href;
  const manifest = await (await fetch(base)).json();
  for (const key of ['bios', 'vgaBios', 'kernel', 'initrd']) manifest[key] = new URL(manifest[key], base).href;
  manifest.snapshot.url = new URL(manifest.snapshot.url, base).href;
  edit(manifest);
  return URL.createObjectURL(new Blob([JSON.stringify(manifest)], { type: 'application/json' }));
}

describe('<linux-vm> boot snapshot fallbacks', () => {
  let vm: LinuxVm | undefined;
  afterEach(() => vm?.remove());

  async function bootAndCollectNotes(attributes: Record<string, string>): Promise<string[]> {
    vm = createVm({ loading: 'manual', ...attributes });
    const notes: string[] = [];
    vm.addEventListener('progress', (e) => e.detail.note && notes.push(e.detail.note));
    await vm.start();
    await run(vm, 'echo cold-$((5*5))', /cold-25/);
    return notes;
  }

  it('cold-boots when the snapshot is corrupt', async () => {
    const image = await tinyManifestWith((m) => (m.snapshot.sha256 = '0'.repeat(64)));
    const notes = await bootAndCollectNotes({ image });
    expect(notes.join('\n')).to.match(/cold boot: the snapshot is corrupt \(SHA-256 mismatch\)/);
  }).timeout(10 * MINUTE);

  it('cold-boots when the snapshot is missing', async () => {
    const image = await tinyManifestWith((m) => (m.snapshot.url += '.missing'));
    const notes = await bootAndCollectNotes({ image });
    expect(notes.join('\n')).to.match(/cold boot: the snapshot could not be downloaded: .*HTTP 404/);
  }).timeout(10 * MINUTE);

  it('cold-boots when the snapshot is for another machine (here: a different memory size)', async () => {
    const notes = await bootAndCollectNotes({ image: TINY, memory: '112' });
    expect(notes.join('\n')).to.match(/cold boot: the snapshot was saved from a different machine/);
  }).timeout(10 * MINUTE);

  it('resumes the snapshot when nothing is wrong with it', async () => {
    vm = createVm({ image: TINY, loading: 'manual' });
    const notes: string[] = [];
    vm.addEventListener('progress', (e) => e.detail.note && notes.push(e.detail.note));
    await vm.start();
    expect(notes).to.deep.equal(['restoring the boot snapshot']);
  });
});
