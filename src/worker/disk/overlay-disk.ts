import { VmError } from '../../errors.js';
import type { BaseSource } from './base-source.js';
import { LruCache } from './lru.js';
import { isQuotaError, type DiskStore } from './store.js';

/** Overlay granularity: ext2's block size, so a guest write of whole fs blocks needs no base read. */
export const PAGE_SIZE = 4096;
const MiB = 1024 * 1024;
const BASE_CACHE_BYTES = 64 * MiB;
const PAGE_CACHE_BYTES = 32 * MiB;
/** Unflushed writes are committed together once the guest has not written for this long. */
const IDLE_COMMIT_MS = 1500;
/** ...or as soon as this much is waiting, so memory stays bounded. */
const MAX_DIRTY_BYTES = 48 * MiB;
const EXPORT_STEP = 1 * MiB;
/** Base blocks fetched at once by prefetch(): fewer than a browser's 6 connections per host, so the
 * guest's own reads are never stuck behind a full queue of prefetches. */
const PREFETCH_CONCURRENCY = 4;

export interface DiskHooks {
  /** Fatal errors end the VM: the guest's read cannot be answered truthfully. Others are reported only. */
  onError(error: VmError, fatal: boolean): void;
}

/** The overlay's home in IndexedDB; absent for a throw-away disk (persist="none"). */
export interface OverlayPlace {
  store: DiskStore;
  name: string;
  /** Pages the overlay already holds. */
  pages: Iterable<number>;
}

/** The base image's block cache in IndexedDB (content-addressed by image checksum and block size). */
export interface BaseCachePlace {
  store: DiskStore;
  key: string;
}

/** What v86 calls on a disk object (see DESIGN.md); v86 has no typings for it. */
export interface V86Disk {
  byteLength: number;
  onload?: (event: object) => void;
  onprogress?: (event: object) => void;
  load(): void;
  get(start: number, length: number, callback: (data: Uint8Array) => void): void;
  get_and_cache(start: number, length: number, callback: (data: Uint8Array) => void): void;
  get_from_cache(start: number, length: number): Uint8Array | undefined;
  set(start: number, data: Uint8Array, callback: () => void): void;
  get_buffer(callback: (buffer?: ArrayBuffer) => void): void;
  get_state(): unknown[];
  set_state(state: unknown[]): void;
}

/**
 * v86's hard disk: a read-only base image (streamed block by block, cached in memory and IndexedDB)
 * under a copy-on-write overlay of 4 KiB pages kept in IndexedDB. Writes land in memory ("dirty")
 * and are committed in batches; `flush()` (the guest's FLUSH CACHE) commits them durably.
 */
export class OverlayDisk implements V86Disk {
  readonly byteLength: number;
  onload?: (event: object) => void;
  onprogress?: (event: object) => void;

  /** Every page the overlay holds, committed or not. */
  private readonly overlayPages: Set<number>;
  private dirty = new Map<number, Uint8Array>();
  /** Pages of the commit in progress (still readable while IndexedDB writes them). */
  private committing = new Map<number, Uint8Array>();
  private commitChain: Promise<void> = Promise.resolve();
  private idleTimer?: ReturnType<typeof setTimeout>;
  private readonly cleanPages = new LruCache<number, Uint8Array>(PAGE_CACHE_BYTES);
  private readonly baseBlocks = new LruCache<number, Uint8Array>(BASE_CACHE_BYTES);
  private readonly baseInFlight = new Map<number, Promise<Uint8Array>>();
  /** Guest I/O runs one operation at a time, in order (a partial-page write reads before it writes). */
  private ioChain: Promise<unknown> = Promise.resolve();
  private failed = false;
  private storageFull = false;

  constructor(
    size: number,
    private readonly source: BaseSource,
    private readonly hooks: DiskHooks,
    private readonly overlay?: OverlayPlace,
    private readonly baseCache?: BaseCachePlace,
  ) {
    if (source.blockSize % PAGE_SIZE !== 0) throw new Error('the base block size must be a multiple of the page size');
    this.byteLength = size;
    this.overlayPages = new Set(overlay?.pages ?? []);
  }

  /** Bytes the overlay holds (committed and pending). */
  get overlayBytes(): number {
    return this.overlayPages.size * PAGE_SIZE;
  }

  // ---- v86's disk interface ----

  load(): void {
    this.onload?.({}); // everything asynchronous happened in openDisk(), where errors can be reported
  }

  get(start: number, length: number, callback: (data: Uint8Array) => void): void {
    this.enqueue(() => this.read(start, length, true)).then(callback, (error) => this.fail(error));
  }

  get_and_cache(start: number, length: number, callback: (data: Uint8Array) => void): void {
    this.get(start, length, callback); // every read is cached
  }

  get_from_cache(start: number, length: number): Uint8Array | undefined {
    const out = new Uint8Array(length);
    for (const { page, from, to } of this.pagesOf(start, length)) {
      const source = this.overlayPages.has(page) ? this.memoryPage(page) : this.baseBlocks.get(this.blockOf(page));
      if (!source) return undefined;
      const sourceStart = this.overlayPages.has(page) ? page * PAGE_SIZE : this.blockOf(page) * this.source.blockSize;
      out.set(source.subarray(from - sourceStart, to - sourceStart), from - start);
    }
    return out;
  }

  set(start: number, data: Uint8Array, callback: () => void): void {
    const copy = data.slice(); // v86 reuses its PIO buffer
    this.enqueue(() => this.write(start, copy)).then(callback, (error) => this.fail(error));
  }

  get_buffer(callback: (buffer?: ArrayBuffer) => void): void {
    callback(undefined); // the whole image is never in memory; see exportStream()
  }

  /**
   * v86's AsyncXHRBuffer layout, `[written 256-byte blocks]`. Our writes live in the overlay, not in
   * machine states: boot snapshots are taken before the root is mounted, with nothing written.
   */
  get_state(): unknown[] {
    return [[]];
  }

  set_state(state: unknown[]): void {
    const written = (state?.[0] ?? []) as [number, Uint8Array][];
    for (const [index, block] of written) this.set(index * 256, block, () => {});
  }

  // ---- for the worker ----

  /**
   * Commits every write the guest has completed, durably. Rejects if IndexedDB cannot take them.
   * v86 completes a write command without waiting for set()'s callback, so writes the guest thinks
   * done may still be queued here (a partial page waits for its old contents): the flush queues
   * behind them. Without that, a write just before `sync` could miss the commit.
   */
  flush(): Promise<void> {
    return this.enqueue(() => this.commit('strict'));
  }

  /**
   * Loads base blocks into memory ahead of the guest's reads (from IndexedDB, else the network), in
   * the given order: the boot read set of the manifest, so a resumed guest does not wait for its blocks
   * one by one. `blocks` counts in units of `blockSize` bytes. Best effort: a block that fails here is
   * simply read again when the guest asks for it. Resolves with the number of base blocks loaded.
   */
  async prefetch(blockSize: number, blocks: readonly number[]): Promise<number> {
    const wanted = new Set<number>();
    for (const block of blocks) {
      const first = Math.floor((block * blockSize) / this.source.blockSize);
      const last = Math.floor((Math.min((block + 1) * blockSize, this.byteLength) - 1) / this.source.blockSize);
      for (let b = first; b <= last; b++) wanted.add(b);
    }
    // Stay well inside the memory cache, or the first prefetched blocks would be evicted by the last.
    const queue = [...wanted].slice(0, Math.floor(BASE_CACHE_BYTES / 2 / this.source.blockSize));
    let loaded = 0;
    const worker = async () => {
      for (let block = queue.shift(); block !== undefined; block = queue.shift()) {
        if (await this.baseBlock(block, true).then(() => true, () => false)) loaded++;
      }
    };
    await Promise.all(Array.from({ length: PREFETCH_CONCURRENCY }, worker));
    return loaded;
  }

  /** The merged image (base + overlay) as a stream, read in steps without caching what passes by. */
  exportStream(): ReadableStream<Uint8Array> {
    let offset = 0;
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          if (offset >= this.byteLength) return controller.close();
          const length = Math.min(EXPORT_STEP, this.byteLength - offset);
          const bytes = await this.enqueue(() => this.read(offset, length, false));
          offset += length;
          controller.enqueue(bytes);
        },
      },
      { highWaterMark: 2 },
    );
  }

  // ---- reads and writes ----

  private enqueue<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.ioChain.then(operation);
    this.ioChain = result.catch(() => {});
    return result;
  }

  private *pagesOf(start: number, length: number) {
    const end = start + length;
    for (let page = Math.floor(start / PAGE_SIZE); page * PAGE_SIZE < end; page++) {
      yield { page, from: Math.max(start, page * PAGE_SIZE), to: Math.min(end, (page + 1) * PAGE_SIZE, this.byteLength) };
    }
  }

  private blockOf(page: number): number {
    return Math.floor((page * PAGE_SIZE) / this.source.blockSize);
  }

  private memoryPage(page: number): Uint8Array | undefined {
    return this.dirty.get(page) ?? this.committing.get(page) ?? this.cleanPages.get(page);
  }

  private async read(start: number, length: number, cache: boolean): Promise<Uint8Array> {
    if (start < 0 || start + length > this.byteLength) throw new RangeError(`read ${start}+${length} outside the disk`);
    const out = new Uint8Array(length);
    const pending: Promise<void>[] = [];
    for (const { page, from, to } of this.pagesOf(start, length)) {
      const copy = (source: Uint8Array, sourceStart: number) =>
        out.set(source.subarray(from - sourceStart, to - sourceStart), from - start);
      if (this.overlayPages.has(page)) {
        const inMemory = this.memoryPage(page);
        if (inMemory) copy(inMemory, page * PAGE_SIZE);
        else pending.push(this.storedPage(page).then((p) => copy(p, page * PAGE_SIZE)));
      } else {
        const block = this.blockOf(page);
        pending.push(this.baseBlock(block, cache).then((b) => copy(b, block * this.source.blockSize)));
      }
    }
    await Promise.all(pending);
    return out;
  }

  /** One page as the guest sees it now (for read-modify-write of a partial page). */
  private async readPage(page: number): Promise<Uint8Array> {
    const start = page * PAGE_SIZE;
    return this.read(start, Math.min(PAGE_SIZE, this.byteLength - start), true);
  }

  private async storedPage(page: number): Promise<Uint8Array> {
    const stored = await this.overlay?.store.getPage(this.overlay.name, page);
    if (!stored) throw new VmError('disk-corrupt', `Page ${page} of the disk overlay is missing from IndexedDB`);
    // A write may have landed while IndexedDB answered; the newer copy wins.
    const newer = this.memoryPage(page);
    if (newer) return newer;
    this.cleanPages.set(page, stored);
    return stored;
  }

  private baseBlock(block: number, cache: boolean): Promise<Uint8Array> {
    const cached = this.baseBlocks.get(block);
    if (cached) return Promise.resolve(cached);
    let loading = this.baseInFlight.get(block);
    if (!loading) {
      loading = this.loadBaseBlock(block, cache).finally(() => this.baseInFlight.delete(block));
      this.baseInFlight.set(block, loading);
    }
    return loading;
  }

  private async loadBaseBlock(block: number, cache: boolean): Promise<Uint8Array> {
    const place = this.baseCache;
    let bytes = await place?.store.getBase(place.key, block).catch(() => undefined);
    if (!bytes) {
      bytes = await this.source.read(block);
      // Best effort: a full or failing cache only means fetching the block again next time.
      if (cache && place) void place.store.putBase(place.key, block, bytes).catch(() => {});
    }
    if (cache) this.baseBlocks.set(block, bytes);
    return bytes;
  }

  private async write(start: number, data: Uint8Array): Promise<void> {
    if (start < 0 || start + data.byteLength > this.byteLength) throw new RangeError(`write ${start}+${data.byteLength} outside the disk`);
    for (const { page, from, to } of this.pagesOf(start, data.byteLength)) {
      const pageStart = page * PAGE_SIZE;
      const pageEnd = Math.min(pageStart + PAGE_SIZE, this.byteLength);
      let bytes: Uint8Array;
      if (from === pageStart && to === pageEnd) {
        bytes = data.slice(from - start, to - start);
      } else {
        bytes = (await this.readPage(page)).slice();
        bytes.set(data.subarray(from - start, to - start), from - pageStart);
      }
      this.dirty.set(page, bytes);
      this.overlayPages.add(page);
      this.cleanPages.delete(page);
    }
    if (!this.overlay) return; // throw-away disk: writes live in memory only
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => void this.commit('relaxed').catch(() => {}), IDLE_COMMIT_MS);
    if (this.dirty.size * PAGE_SIZE >= MAX_DIRTY_BYTES) await this.commit('relaxed').catch(() => {});
  }

  // ---- commits ----

  /** Writes the dirty pages to IndexedDB in one transaction; commits run one after another. */
  private commit(durability: 'strict' | 'relaxed'): Promise<void> {
    const run = this.commitChain.then(() => this.commitNow(durability));
    this.commitChain = run.catch(() => {});
    return run;
  }

  private async commitNow(durability: 'strict' | 'relaxed'): Promise<void> {
    const overlay = this.overlay;
    if (!overlay || this.dirty.size === 0) return;
    clearTimeout(this.idleTimer);
    const batch = this.dirty;
    this.dirty = new Map();
    this.committing = batch;
    try {
      await overlay.store.putPages(overlay.name, batch, durability);
    } catch (error) {
      // Nothing of the batch was written (one transaction): keep it pending, newer writes first.
      for (const [page, bytes] of batch) if (!this.dirty.has(page)) this.dirty.set(page, bytes);
      this.committing = new Map();
      if (isQuotaError(error)) {
        if (!this.storageFull) {
          this.storageFull = true;
          this.hooks.onError(
            new VmError('storage-full', 'The browser storage quota is exhausted: recent disk writes are kept in memory only until space is freed'),
            false,
          );
        }
      } else {
        this.hooks.onError(new VmError('disk-write-failed', `Saving disk writes to IndexedDB failed: ${String(error)}`), false);
      }
      throw error;
    }
    this.storageFull = false;
    for (const [page, bytes] of batch) if (!this.dirty.has(page)) this.cleanPages.set(page, bytes);
    this.committing = new Map();
  }

  private fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    const vmError = error instanceof VmError ? error : new VmError('disk-fetch-failed', `Reading the disk failed: ${String(error)}`);
    this.hooks.onError(vmError, true);
  }
}
