// The disk's building blocks, in Chromium's real IndexedDB: index lists, the LRU, the base sources'
// validation, and the copy-on-write overlay (reads, partial writes, commits, reopen, export).
import { expect } from '@esm-bundle/chai';
import { VmError } from '../../src/errors.js';
import { parseManifest, type DiskSpec } from '../../src/manifest.js';
import { ChunkSource, RangeSource, type BaseSource } from '../../src/worker/disk/base-source.js';
import { formatIndexList, parseIndexList } from '../../src/worker/disk/index-list.js';
import { LruCache } from '../../src/worker/disk/lru.js';
import { openDisk } from '../../src/worker/disk/open-disk.js';
import { OverlayDisk, PAGE_SIZE } from '../../src/worker/disk/overlay-disk.js';
import { DiskStore } from '../../src/worker/disk/store.js';

const BLOCK = 16 * 1024;
const SIZE = 8 * BLOCK + 3 * 512; // not a multiple of the block or page size

/** A base image whose byte i is (i * 7 + (i >> 12)) & 255, served from memory; counts reads. */
class FakeSource implements BaseSource {
  readonly blockSize = BLOCK;
  reads = 0;
  probe(): Promise<void> {
    return Promise.resolve();
  }
  read(index: number): Promise<Uint8Array> {
    this.reads++;
    const start = index * BLOCK;
    return Promise.resolve(baseBytes(start, Math.min(BLOCK, SIZE - start)));
  }
}
function baseBytes(start: number, length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, k) => ((start + k) * 7 + ((start + k) >> 12)) & 255);
}

const get = (disk: OverlayDisk, start: number, length: number) =>
  new Promise<Uint8Array>((resolve) => disk.get(start, length, resolve));
const set = (disk: OverlayDisk, start: number, data: Uint8Array) => new Promise<void>((resolve) => disk.set(start, data, resolve));
/** Compares bytes without printing megabytes on failure. */
function expectBytes(actual: Uint8Array, expected: Uint8Array, what = 'bytes'): void {
  expect(actual.byteLength, `${what}: length`).to.equal(expected.byteLength);
  const at = actual.findIndex((b, i) => b !== expected[i]);
  expect(at, `${what}: first difference at`).to.equal(-1);
}
const noErrors = { onError: (e: VmError) => expect.fail(`unexpected disk error ${e.code}: ${e.message}`) };

describe('disk: index lists', () => {
  it('round-trips ranges and singles', () => {
    expect(formatIndexList([0, 1, 2, 3, 7, 9, 10])).to.equal('0-3,7,9-10');
    expect([...parseIndexList('0-3,7,9-10')]).to.deep.equal([0, 1, 2, 3, 7, 9, 10]);
    expect(parseIndexList('').size).to.equal(0);
  });
  it('rejects malformed and unordered lists', () => {
    for (const bad of ['a', '3-1', '5,2', '1,,2', '-1']) expect(() => parseIndexList(bad), bad).to.throw();
  });
});

describe('disk: LRU cache', () => {
  it('keeps the most recently used entries within its byte budget', () => {
    const lru = new LruCache<number, Uint8Array>(3000);
    lru.set(1, new Uint8Array(1000));
    lru.set(2, new Uint8Array(1000));
    lru.set(3, new Uint8Array(1000));
    lru.get(1);
    lru.set(4, new Uint8Array(1000));
    expect([lru.has(1), lru.has(2), lru.has(3), lru.has(4)]).to.deep.equal([true, false, true, true]);
  });
});

describe('disk: manifest chunks', () => {
  const base = { format: 1, name: 'x', id: 'x-1', memoryMiB: 128, bios: 'b', vgaBios: 'v', kernel: 'k' };
  const disk = { url: 'disk.img', size: 1 << 20, sha256: 'a'.repeat(64) };
  it('resolves the chunk URL template against the manifest', () => {
    const m = parseManifest({ ...base, disk: { ...disk, chunks: { size: 131072, url: 'disk.chunks/{index}', zero: '2-5' } } }, 'https://h/img/manifest.json');
    expect(m.disk!.chunks).to.deep.equal({ size: 131072, url: 'https://h/img/disk.chunks/{index}', zero: '2-5' });
  });
  it('accepts a boot read set and rejects one outside the disk or with a bad block size', () => {
    const m = parseManifest({ ...base, disk: { ...disk, prefetch: { blockSize: 65536, blocks: [3, 0, 15] } } }, 'https://h/m.json');
    expect(m.disk!.prefetch).to.deep.equal({ blockSize: 65536, blocks: [3, 0, 15] });
    for (const prefetch of [{ blockSize: 65536, blocks: [16] }, { blockSize: 1000, blocks: [] }, { blockSize: 65536, blocks: [-1] }, { blockSize: 65536, blocks: '0-3' }]) {
      expect(() => parseManifest({ ...base, disk: { ...disk, prefetch } }, 'https://h/m.json'), JSON.stringify(prefetch)).to.throw(/disk\.prefetch/);
    }
  });
  it('rejects a bad chunk size, template or zero list', () => {
    for (const chunks of [{ size: 1000, url: 'c/{index}' }, { size: 4096, url: 'c/x' }, { size: 4096, url: 'c/{index}', zero: '3-1,x' }]) {
      expect(() => parseManifest({ ...base, disk: { ...disk, chunks } }, 'https://h/m.json'), JSON.stringify(chunks)).to.throw(/disk\.chunks/);
    }
  });
});

describe('disk: base sources', () => {
  // Any file served by the test server with Range support will do as an "image".
  const url = new URL('/images/tiny/bios.bin', location.href).href;
  let size = 0;
  before(async () => {
    size = Number((await fetch(url, { method: 'HEAD' })).headers.get('content-length'));
  });
  const spec = (over: Partial<DiskSpec> = {}): DiskSpec => ({ url, size, sha256: '0'.repeat(64), ...over });
  const code = (promise: Promise<unknown>) => promise.then(() => 'resolved', (e: VmError) => e.code);

  it('reads exact blocks with Range requests', async () => {
    let fetched = 0;
    const source = new RangeSource(spec(), (n) => (fetched += n));
    const whole = new Uint8Array(await (await fetch(url)).arrayBuffer());
    const block = await source.read(1);
    expectBytes(block, whole.subarray(source.blockSize, 2 * source.blockSize));
    expect(fetched).to.equal(source.blockSize);
  });
  it('reports an image replaced on the server while being read as disk-changed (If-Range)', async () => {
    const source = new RangeSource(spec(), () => {});
    await source.read(0);
    (source as unknown as { validator: string }).validator = 'Thu, 01 Jan 1970 00:00:00 GMT'; // as if the file changed since
    expect(await code(source.read(1))).to.equal('disk-changed');
  });
  it('reports a server that ignores Range as disk-range-unsupported', async () => {
    const source = new RangeSource(spec({ url: url.replace('/images/', '/test-disk/norange/') }), () => {});
    expect(await code(source.read(0))).to.equal('disk-range-unsupported');
  });
  it('reports an image of another size as disk-size-mismatch', async () => {
    expect(await code(new RangeSource(spec({ size: size * 2 }), () => {}).read(0))).to.equal('disk-size-mismatch');
  });
  it('reports a missing image as disk-not-found', async () => {
    expect(await code(new RangeSource(spec({ url: url + '.missing' }), () => {}).read(0))).to.equal('disk-not-found');
  });
  it('reads chunk files, makes listed zero chunks up, and rejects chunks of the wrong size', async () => {
    const chunked = (zero: string) =>
      new ChunkSource(spec({ size: 3 * 65536, chunks: { size: 65536, url: url.replace('bios.bin', '{index}'), zero } }), () => {});
    expectBytes(await chunked('0-2').read(1), new Uint8Array(65536));
    // "bios.bin" is 128 KiB: as chunk 0 of a 64 KiB-chunked image it has the wrong size.
    const wrongName = new ChunkSource(spec({ size: 3 * 65536, chunks: { size: 65536, url: url.replace('bios', '{index}'), zero: '' } }), () => {});
    expect(await code(wrongName.read(0))).to.equal('disk-not-found');
    const wrongSize = new ChunkSource(spec({ size: 3 * 65536, chunks: { size: 65536, url: url.replace('bios.bin', 'bios.bin?{index}'), zero: '' } }), () => {});
    expect(await code(wrongSize.read(0))).to.equal('disk-corrupt');
  });
});

describe('disk: copy-on-write overlay', () => {
  let store: DiskStore;
  const name = `unit-${Math.random().toString(36).slice(2)}`;
  before(async () => (store = await DiskStore.open()));
  after(async () => {
    await store.deleteOverlay(name);
    store.close();
  });

  const open = async (source = new FakeSource()) =>
    new OverlayDisk(SIZE, source, noErrors, { store, name, pages: await store.pageIndices(name) });

  it('reads the base image through any alignment', async () => {
    const disk = await open();
    expectBytes(await get(disk, 512, 3 * BLOCK), baseBytes(512, 3 * BLOCK));
    expectBytes(await get(disk, SIZE - 1024, 1024), baseBytes(SIZE - 1024, 1024));
  });

  it('overlays whole and partial page writes, and serves them from memory', async () => {
    const disk = await open();
    const whole = new Uint8Array(2 * PAGE_SIZE).fill(0xaa);
    await set(disk, 4 * PAGE_SIZE, whole);
    await set(disk, 9 * PAGE_SIZE + 512, new Uint8Array(512).fill(0xbb)); // partial page: read-modify-write
    const expected = baseBytes(0, 12 * PAGE_SIZE);
    expected.fill(0xaa, 4 * PAGE_SIZE, 6 * PAGE_SIZE);
    expected.fill(0xbb, 9 * PAGE_SIZE + 512, 9 * PAGE_SIZE + 1024);
    expectBytes(await get(disk, 0, 12 * PAGE_SIZE), expected);
    expectBytes(disk.get_from_cache(4 * PAGE_SIZE, 512)!, new Uint8Array(512).fill(0xaa));
    expect(disk.overlayBytes).to.equal(3 * PAGE_SIZE);
    await disk.flush();
  });

  it('commits on flush: a reopened disk sees the writes, and only reads base blocks it needs', async () => {
    const first = await open();
    await set(first, SIZE - 512, new Uint8Array(512).fill(0xcc)); // the odd-sized last page
    await set(first, 20 * PAGE_SIZE, new Uint8Array(PAGE_SIZE).fill(0xdd));
    await first.flush();
    const source = new FakeSource();
    const second = await open(source);
    expectBytes(await get(second, SIZE - 512, 512), new Uint8Array(512).fill(0xcc));
    expectBytes(await get(second, 20 * PAGE_SIZE, PAGE_SIZE), new Uint8Array(PAGE_SIZE).fill(0xdd));
    expectBytes(await get(second, 4 * PAGE_SIZE, 512), new Uint8Array(512).fill(0xaa));
    expect(source.reads).to.equal(0); // every page read was in the overlay
  });

  it('keeps writes of a throw-away disk in memory only', async () => {
    const before = (await store.pageIndices(name)).length;
    const disk = new OverlayDisk(SIZE, new FakeSource(), noErrors);
    await set(disk, 0, new Uint8Array(PAGE_SIZE).fill(1));
    await disk.flush();
    expectBytes(await get(disk, 0, 512), new Uint8Array(512).fill(1));
    expect((await store.pageIndices(name)).length).to.equal(before);
  });

  it('prefetches the boot read set in its own unit, once per base block, so later reads fetch nothing', async () => {
    const source = new FakeSource();
    const disk = new OverlayDisk(SIZE, source, noErrors);
    // 4 KiB units: 0 and 1 share base block 0; 9 is in block 2; 32 is in block 8 (the short last one).
    expect(await disk.prefetch(4096, [9, 0, 1, 32])).to.equal(3);
    expect(source.reads).to.equal(3);
    expectBytes(await get(disk, 0, 4096), baseBytes(0, 4096));
    expectBytes(await get(disk, 2 * BLOCK, BLOCK), baseBytes(2 * BLOCK, BLOCK));
    expectBytes(await get(disk, 8 * BLOCK, SIZE - 8 * BLOCK), baseBytes(8 * BLOCK, SIZE - 8 * BLOCK));
    expect(source.reads).to.equal(3);
    await get(disk, BLOCK, 512); // block 1 was not in the set
    expect(source.reads).to.equal(4);
  });

  it('accepts the empty AsyncXHRBuffer state of a boot snapshot and reports the same', async () => {
    const disk = await open();
    disk.set_state([[]]);
    expect(disk.get_state()).to.deep.equal([[]]);
  });

  it('exports the merged image as a stream', async () => {
    const disk = await open();
    const bytes = new Uint8Array(await new Response(disk.exportStream()).arrayBuffer());
    expect(bytes.byteLength).to.equal(SIZE);
    expectBytes(bytes.subarray(20 * PAGE_SIZE, 21 * PAGE_SIZE), new Uint8Array(PAGE_SIZE).fill(0xdd));
    expectBytes(bytes.subarray(0, PAGE_SIZE), baseBytes(0, PAGE_SIZE));
  });
});

describe('disk: opening overlays', () => {
  const url = new URL('/images/tiny/bios.bin', location.href).href;
  let size = 0;
  before(async () => {
    size = Number((await fetch(url, { method: 'HEAD' })).headers.get('content-length'));
  });
  const spec = (sha: string): DiskSpec => ({ url, size, sha256: sha.repeat(64) });
  const options = (sha: string, extra = {}) => ({ spec: spec(sha), persist: `open-${sha}-${size}`, onFetched: () => {}, hooks: noErrors, ...extra });

  it('refuses an overlay made for another image, until reset', async () => {
    const name = `mismatch-${Math.random()}`;
    const store = await DiskStore.open();
    await store.createOverlay({ name, image: { url, size, sha256: '1'.repeat(64) }, pageSize: PAGE_SIZE, created: 0 });
    const error = await openDisk({ ...options('2'), persist: name }).then(() => undefined, (e: VmError) => e);
    expect(error?.code).to.equal('overlay-mismatch');
    const reset = await openDisk({ ...options('2'), persist: name, reset: true });
    expect(reset.overlayName).to.equal(name);
    expect((await store.getOverlay(name))?.image.sha256).to.equal('2'.repeat(64));
    store.close();
  });

  it('refuses a second writer of the same overlay (Web Locks)', async () => {
    const name = `locked-${Math.random()}`;
    await openDisk({ ...options('3'), persist: name });
    const error = await openDisk({ ...options('3'), persist: name }).then(() => undefined, (e: VmError) => e);
    expect(error?.code).to.equal('disk-locked');
  });
});
