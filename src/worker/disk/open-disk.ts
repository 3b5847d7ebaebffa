import { VmError } from '../../errors.js';
import { holdLock } from '../../web-lock.js';
import type { DiskSpec } from '../../manifest.js';
import { createBaseSource } from './base-source.js';
import { OverlayDisk, PAGE_SIZE, type DiskHooks } from './overlay-disk.js';
import { DiskStore, isQuotaError, type ImageIdentity } from './store.js';

export interface OpenDiskOptions {
  spec: DiskSpec;
  /** Overlay name; undefined = derived from the image URL; "none" = a throw-away disk. */
  persist?: string;
  /** Wipe the overlay before use (element `reset()`). */
  reset?: boolean;
  /** Bytes of the base image fetched from the network so far. */
  onFetched(total: number): void;
  hooks: DiskHooks;
}

export interface OpenedDisk {
  disk: OverlayDisk;
  /** The overlay's name, or undefined for a throw-away disk. */
  overlayName?: string;
  store?: DiskStore;
  baseCacheKey: string;
}

/** The overlay a `<linux-vm>` uses by default: one per disk image URL. */
export function defaultOverlayName(spec: DiskSpec): string {
  return `image:${spec.url}`;
}

/** How long to wait for an overlay's lock before reporting `disk-locked`. */
const LOCK_WAIT_MS = 2000;

const sameImage = (a: ImageIdentity, b: ImageIdentity) => a.url === b.url && a.size === b.size && a.sha256 === b.sha256;

/**
 * Opens the guest's disk: the base source, the IndexedDB store and — unless persist="none" — the
 * named overlay, which this worker then holds a Web Lock on until it ends (one writer per overlay).
 */
export async function openDisk(options: OpenDiskOptions): Promise<OpenedDisk> {
  const { spec } = options;
  const image: ImageIdentity = { url: spec.url, size: spec.size, sha256: spec.sha256 };
  const name = options.persist === 'none' ? undefined : options.persist || defaultOverlayName(spec);
  let store: DiskStore | undefined;
  try {
    store = await DiskStore.open();
  } catch (cause) {
    if (name) throw new VmError('storage-unavailable', `IndexedDB cannot be opened, so the disk cannot persist: ${String(cause)}`);
  }

  let fetched = 0;
  const source = createBaseSource(spec, (bytes) => options.onFetched((fetched += bytes)));
  const baseCacheKey = `${spec.sha256}:${source.blockSize}`;
  // A server that cannot serve this image fails the start, not the boot (even if every block is cached).
  await source.probe();

  let pages: number[] = [];
  if (name && store) {
    const release = await holdOverlayLock(name);
    if (!release) {
      throw new VmError(
        'disk-locked',
        `The disk "${name}" is in use by another tab or window: close it there, or give this VM another \`persist\` name`,
      );
    }
    try {
      if (options.reset) await store.deleteOverlay(name);
      const meta = await store.getOverlay(name);
      if (meta && !sameImage(meta.image, image)) {
        throw new VmError(
          'overlay-mismatch',
          `The saved disk "${name}" was made for another image (${meta.image.url}, ${meta.image.size} bytes, ` +
            `sha256 ${meta.image.sha256.slice(0, 12)}…); call reset() to discard it and start from this image`,
        );
      }
      if (!meta) await store.createOverlay({ name, image, pageSize: PAGE_SIZE, created: Date.now() });
      pages = await store.pageIndices(name);
    } catch (error) {
      release();
      if (isQuotaError(error)) throw new VmError('storage-full', `The browser storage quota is exhausted: ${String(error)}`);
      throw error;
    }
  }

  const disk = new OverlayDisk(
    spec.size,
    source,
    options.hooks,
    name && store ? { store, name, pages } : undefined,
    store ? { store, key: baseCacheKey } : undefined,
  );
  return { disk, overlayName: name, store, baseCacheKey };
}

/**
 * The overlay's lock, held until this worker ends (terminating a worker releases its locks, but not
 * synchronously: a VM restarted in the same page may have to wait a moment for its predecessor's).
 * Undefined if another tab still holds it after LOCK_WAIT_MS.
 */
function holdOverlayLock(name: string): Promise<(() => void) | undefined> {
  if (!navigator.locks) return Promise.resolve(() => {}); // no Web Locks: nothing to coordinate with
  return holdLock(navigator.locks, `linux-vm-disk:${name}`, LOCK_WAIT_MS).catch(() => undefined);
}
