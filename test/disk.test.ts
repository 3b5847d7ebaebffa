// The persistent disk in Chromium: real page reloads (iframes), a second tab, a worker terminated
// mid-write, overlays of another image, servers without Range, the chunked image, a full quota.
import { expect } from '@esm-bundle/chai';
import { executeServerCommand } from '@web/test-runner-commands';
import { DiskStore } from '../src/worker/disk/store.js';
import { DEBIAN, run } from './helpers.js';
import { VmPage } from './vm-page.js';

const MINUTE = 60_000;
// The image under test: /images/debian/, or a cached build named by LINUX_VM_DISK_IMAGE (test/disk-server.mjs).
const debianPath: string = (await executeServerCommand('disk-test-config', { key: 'image' })) ?? DEBIAN;
const debianUrl = new URL(debianPath, location.href).href;
/** The image's name in /test-disk/… paths: its dist name or its build id. */
const imageName = debianPath.split('/').at(-2)!;

const overlayName = (what: string) => `test-${what}-${Math.random().toString(36).slice(2, 8)}`;

/** The debian manifest, changed by `edit`, as a blob: URL (with every URL in it made absolute). */
async function debianManifestWith(edit: (manifest: Record<string, any>) => void): Promise<string> {
  const manifest = await (await fetch(debianUrl)).json();
  for (const key of ['bios', 'vgaBios', 'kernel', 'initrd']) manifest[key] = new URL(manifest[key], debianUrl).href;
  manifest.disk.url = new URL(manifest.disk.url, debianUrl).href;
  if (manifest.disk.chunks) manifest.disk.chunks.url = new URL(manifest.disk.chunks.url, debianUrl).href;
  delete manifest.disk.chunks;
  if (manifest.snapshot) manifest.snapshot.url = new URL(manifest.snapshot.url, debianUrl).href;
  edit(manifest);
  return URL.createObjectURL(new Blob([JSON.stringify(manifest)], { type: 'application/json' }));
}

/** The debian manifest without its chunk list, so the Range reader is what is tested. */
const rangeDebian = () => debianManifestWith(() => {});

async function bootedPage(attributes: Record<string, string>): Promise<VmPage> {
  const page = await new VmPage(attributes).open();
  await page.next('ready');
  return page;
}

describe('<linux-vm> persistent disk', function () {
  this.timeout(30 * MINUTE);
  let pages: VmPage[] = [];
  const track = (page: VmPage) => (pages.push(page), page);
  afterEach(() => {
    for (const page of pages) page.close();
    pages = [];
  });

  it('keeps a synced file across a real page reload (restored from the boot snapshot if the image has one)', async () => {
    const image = await rangeDebian();
    const manifest = await (await fetch(image)).json();
    const page = track(await bootedPage({ image, persist: overlayName('reload') }));
    // The drive announces a volatile write cache (advertiseWriteCache): Linux then sends FLUSH CACHE on sync.
    await run(page.vm, 'cat /sys/block/sda/queue/write_cache', /^write back$/m);
    const token = Math.random().toString(36).slice(2);
    await run(page.vm, `echo ${token} > /root/kept && sync && echo wrote-ok`, /^wrote-ok$/m);
    await page.reload();
    await page.next('ready');
    if (manifest.snapshot) expect(page.notes()).to.include('restoring the boot snapshot');
    await run(page.vm, 'cat /root/kept', new RegExp(`^${token}$`, 'm'));

    const usage = await page.vm.storageUsage();
    expect(usage.overlayBytes).to.be.greaterThan(0);
    expect(usage.cacheBytes).to.be.greaterThan(0);
    const exported = await page.vm.exportDisk();
    expect(exported.size).to.equal(manifest.disk.size);
    const superblock = new DataView(await exported.slice(1024, 2048).arrayBuffer());
    expect(superblock.getUint16(56, true), 'ext2 magic').to.equal(0xef53);
  });

  it('reports storage-full and keeps running, without losing committed writes', async () => {
    const persist = overlayName('quota');
    const image = await rangeDebian();
    // The quota is lowered before the VM opens IndexedDB (Chromium may hold on to the quota it saw then), and
    // again once it runs: room for the blocks the boot caches and a small file, not for the random data
    // written afterwards (zeros would compress). Chromium's usage accounting lags behind, so the data goes
    // in 32 MiB steps until the element reports storage-full (at most 256 MiB; the guest has ~590 MiB free).
    const quota = async () => {
      const { usage = 0 } = await navigator.storage.estimate();
      await executeServerCommand('set-storage-quota', { quota: usage + 64 * 1024 * 1024 });
      return usage;
    };
    const usage = await quota();
    try {
      const page = track(await bootedPage({ image, persist }));
      await run(page.vm, 'echo committed > /root/before && sync && echo ok1', /^ok1$/m);
      await quota();
      const storageFull = () => page.events.some((e) => e.type === 'error' && e.detail.code === 'storage-full');
      let written = 0;
      while (!storageFull() && written < 256) {
        written += 32;
        await run(page.vm, `dd if=/dev/urandom of=/root/big${written} bs=1M count=32 conv=fsync 2>&1; echo dd-done`, /^dd-done$/m, 10 * MINUTE);
      }
      const errors = page.events.filter((e) => e.type === 'error').map((e) => `${e.detail.code}: ${e.detail.message}`);
      const estimate = await page.window.navigator.storage.estimate();
      expect(storageFull(), `quota ${usage} + 64 MiB, ${written} MiB written, now ${JSON.stringify(estimate)}; errors: ${JSON.stringify(errors)}`).to.equal(true);
      expect(page.vm.state).to.equal('ready');
      await run(page.vm, 'echo still-$((2+2))', /^still-4$/m);
      await executeServerCommand('set-storage-quota', {});
      await page.reload();
      await page.next('ready');
      await run(page.vm, 'cat /root/before', /^committed$/m);
    } finally {
      await executeServerCommand('set-storage-quota', {});
    }
  });

  it('loses nothing over repeated reloads with writes', async () => {
    const cycles = Number(await executeServerCommand('disk-test-config', { key: 'cycles' })) || 20;
    const page = track(await bootedPage({ image: await rangeDebian(), persist: overlayName('cycles') }));
    for (let i = 1; i <= cycles; i++) {
      await run(page.vm, `head -c 65536 /dev/urandom > /root/c${i} && md5sum /root/c${i} >> /root/sums && sync && echo cycle-${i}-ok`, new RegExp(`^cycle-${i}-ok$`, 'm'));
      await page.reload();
      await page.next('ready');
      await run(page.vm, 'md5sum -c --quiet /root/sums && echo "sums=$(wc -l < /root/sums)"', /^sums=(\d+)$/m).then((m) =>
        expect(Number(m[1]), `after reload ${i}`).to.equal(i),
      );
    }
  });

  it('survives a worker terminated mid-write: the filesystem checks clean and synced writes are there', async () => {
    const persist = overlayName('crash');
    const page = track(await bootedPage({ image: await rangeDebian(), persist }));
    await run(page.vm, 'for i in 1 2 3; do head -c 200000 /dev/urandom > /root/s$i; done; md5sum /root/s? > /root/sums; sync; echo synced', /^synced$/m);
    // Direct I/O reaches the disk at once, without a flush: the worker dies with writes under way.
    page.vm.type('dd if=/dev/urandom of=/root/big bs=64k count=2000 oflag=direct 2>/dev/null &\n');
    await new Promise((r) => setTimeout(r, 3000));
    page.vm.stop(); // terminates the worker
    await page.reload();
    await page.next('ready');
    await run(page.vm, 'md5sum -c --quiet /root/sums && echo sums-ok', /^sums-ok$/m);
    await run(page.vm, 'cd / && mount -o remount,ro / && e2fsck -fn /dev/sda >/tmp/fsck.log 2>&1; echo "fsck=$?"', /^fsck=(\d+)$/m).then(
      async (m) => {
        if (m[1] !== '0') await run(page.vm, 'cat /tmp/fsck.log; echo log-end', /^log-end$/m);
        expect(m[1], 'e2fsck -fn exit status').to.equal('0');
      },
    );
  });

  it('never applies an overlay made for another image: overlay-mismatch, until reset()', async () => {
    const persist = overlayName('mismatch');
    const manifest = await (await fetch(debianUrl)).json();
    const store = await DiskStore.open();
    const url = new URL(manifest.disk.url, debianUrl).href;
    await store.createOverlay({ name: persist, image: { url, size: manifest.disk.size, sha256: 'f'.repeat(64) }, pageSize: 4096, created: 0 });
    store.close();
    const page = track(await new VmPage({ image: await rangeDebian(), persist }).open());
    const error = await page.next('error');
    expect(error.detail.code).to.equal('overlay-mismatch');
    expect(page.vm.state).to.equal('error');
    await page.vm.reset();
    await run(page.vm, 'echo after-reset-$((6*7))', /^after-reset-42$/m);
  });

  it('lets one tab write an overlay: a second one gets disk-locked', async () => {
    const persist = overlayName('tabs');
    const image = await rangeDebian();
    const first = track(await new VmPage({ image, persist }).open());
    // The lock is taken before the guest boots.
    while (!['booting', 'ready'].includes(first.vm.state)) await new Promise((r) => setTimeout(r, 100));
    const second = track(await new VmPage({ image, persist }).open());
    const error = await second.next('error', MINUTE);
    expect(error.detail.code).to.equal('disk-locked');
    expect(first.vm.state).to.be.oneOf(['booting', 'ready']);
    first.close();
    // Once the first tab is gone, the overlay is free again.
    await second.reload();
    await second.next('ready');
  });

  it('reports a server that ignores Range as disk-range-unsupported', async () => {
    const image = await debianManifestWith((m) => (m.disk.url = new URL(`/test-disk/norange/${imageName}/disk.img`, location.href).href));
    // (Blocks cached by earlier tests do not hide the server: every start probes it.)
    const page = track(await new VmPage({ image, persist: 'none' }).open());
    expect((await page.next('error', MINUTE)).detail.code).to.equal('disk-range-unsupported');
  });

  it('boots the chunked image from a server without Range', async () => {
    const page = track(await bootedPage({ image: `/test-disk/chunked/${imageName}/manifest.json`, persist: 'none' }));
    await run(page.vm, 'cat /etc/hostname', /^linux-vm$/m);
    await run(page.vm, 'echo throwaway > /root/t && sync && cat /root/t', /^throwaway$/m);
  });
});
