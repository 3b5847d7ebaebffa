import { openDB, type DBSchema, type IDBPDatabase } from 'idb';

/** The image an overlay was made for; an overlay is only ever applied to the same image. */
export interface ImageIdentity {
  url: string;
  size: number;
  sha256: string;
}

export interface OverlayMeta {
  name: string;
  image: ImageIdentity;
  pageSize: number;
  created: number;
}

interface DiskDb extends DBSchema {
  /** Validated base-image blocks, by [image key, block index]: a second visit does not fetch them again. */
  base: { key: [string, number]; value: Uint8Array };
  /** One record per overlay, by name. */
  overlays: { key: string; value: OverlayMeta };
  /** Pages the guest wrote, by [overlay name, page index]. */
  pages: { key: [string, number]; value: Uint8Array };
}

const DB_NAME = 'linux-vm-disk';
const DB_VERSION = 1;

const range = (prefix: string) => IDBKeyRange.bound([prefix, 0], [prefix, Infinity]);

/** True for the error IndexedDB raises when the origin's storage quota is exhausted. */
export function isQuotaError(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'QuotaExceededError';
}

/** The disk's IndexedDB: a cache of base blocks and the copy-on-write overlays. */
export class DiskStore {
  private constructor(private readonly db: IDBPDatabase<DiskDb>) {}

  static async open(): Promise<DiskStore> {
    const db = await openDB<DiskDb>(DB_NAME, DB_VERSION, {
      upgrade(db) {
        db.createObjectStore('base');
        db.createObjectStore('overlays');
        db.createObjectStore('pages');
      },
    });
    return new DiskStore(db);
  }

  close(): void {
    this.db.close();
  }

  // ---- base block cache (best effort: failures only cost a refetch) ----

  getBase(image: string, index: number): Promise<Uint8Array | undefined> {
    return this.db.get('base', [image, index]);
  }

  async putBase(image: string, index: number, block: Uint8Array): Promise<void> {
    const tx = this.db.transaction('base', 'readwrite', { durability: 'relaxed' });
    void tx.store.put(block, [image, index]);
    await tx.done;
  }

  countBase(image: string): Promise<number> {
    return this.db.count('base', range(image));
  }

  // ---- overlays ----

  getOverlay(name: string): Promise<OverlayMeta | undefined> {
    return this.db.get('overlays', name);
  }

  async createOverlay(meta: OverlayMeta): Promise<void> {
    await this.db.put('overlays', meta, meta.name);
  }

  /** Removes an overlay and all its pages in one transaction. */
  async deleteOverlay(name: string): Promise<void> {
    const tx = this.db.transaction(['overlays', 'pages'], 'readwrite', { durability: 'strict' });
    void tx.objectStore('overlays').delete(name);
    void tx.objectStore('pages').delete(range(name));
    await tx.done;
  }

  /** Indices of the pages an overlay holds. */
  async pageIndices(name: string): Promise<number[]> {
    const keys = await this.db.getAllKeys('pages', range(name));
    return keys.map(([, index]) => index);
  }

  getPage(name: string, index: number): Promise<Uint8Array | undefined> {
    return this.db.get('pages', [name, index]);
  }

  /**
   * Writes pages in one transaction: all of them or (on any error, e.g. quota) none. `strict`
   * durability asks the browser to have them on disk before the promise resolves.
   */
  async putPages(name: string, pages: Map<number, Uint8Array>, durability: 'strict' | 'relaxed'): Promise<void> {
    const tx = this.db.transaction('pages', 'readwrite', { durability });
    for (const [index, page] of pages) void tx.store.put(page, [name, index]).catch(() => {});
    await tx.done;
  }
}
