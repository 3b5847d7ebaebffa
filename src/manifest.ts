/**
 * Guest image manifests: parsing, validation and URL resolution.
 *
 * A manifest is JSON written by `images/build.mjs`. Relative URLs in it resolve against
 * the manifest's own URL, so an image directory can be hosted anywhere as a unit.
 */

export interface DiskSpec {
  url: string;
  /** Exact size in bytes. */
  size: number;
  /** Lower-case hex SHA-256 of the whole image. */
  sha256: string;
  /** The same image as fixed-size chunk files, for static hosts without HTTP Range support. */
  chunks?: DiskChunks;
  /** What a resumed guest reads before its first prompt, fetched ahead of its reads. */
  prefetch?: DiskPrefetch;
}

/**
 * `disk.prefetch` in a manifest: `{ "blockSize": 65536, "blocks": [0, 2, 17, …] }` — the blocks of
 * `blockSize` bytes that a guest resumed from the boot snapshot reads before its first prompt, in the
 * order it first reads them (recorded by the image builder).
 */
export interface DiskPrefetch {
  /** A power of two, at least 4096. */
  blockSize: number;
  blocks: number[];
}

/**
 * `disk.chunks` in a manifest: `{ "size": 131072, "url": "disk.chunks/{index}", "zero": "0-3,9" }`.
 * Chunk `i` holds bytes [i·size, (i+1)·size) of the image (the last one may be shorter). Chunks listed
 * in `zero` (an index list, see src/worker/disk/index-list.ts) are all zeros and have no file.
 */
export interface DiskChunks {
  /** Bytes per chunk: a power of two, at least 4096. */
  size: number;
  /** URL template: `{index}` is replaced by the chunk's decimal index. Absolute after parsing. */
  url: string;
  /** Index list of the all-zero chunks that have no file ("" or absent: none). */
  zero: string;
}

/** A saved machine state at the guest's pause point (see WAIT_MARK), restored instead of booting. */
export interface SnapshotSpec {
  /** gzip-compressed v86 state. */
  url: string;
  /** Size in bytes of the compressed file. */
  size: number;
  /** Lower-case hex SHA-256 of the compressed file. */
  sha256: string;
  /** snapshotKey() of the machine it was saved from. */
  key: string;
}

export interface ImageManifest {
  format: 1;
  name: string;
  /** Identity of this build of the image (name + content hash). */
  id: string;
  description?: string;
  memoryMiB: number;
  bios: string;
  vgaBios: string;
  kernel: string;
  initrd?: string;
  cmdline: string;
  /** Where the interactive shell runs: v86's virtio console (resizable) or the first serial port. */
  console: 'virtio' | 'serial';
  /** Give the guest ACPI tables and a local APIC (its timer lets a tickless kernel sleep). */
  acpi: boolean;
  disk?: DiskSpec;
  snapshot?: SnapshotSpec;
}

/** Thrown for any manifest that does not describe a bootable image; `message` says what is wrong. */
export class ManifestError extends Error {
  override name = 'ManifestError';
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function requireString(o: Record<string, unknown>, key: string, where = ''): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0) {
    throw new ManifestError(`"${where}${key}" must be a non-empty string`);
  }
  return v;
}

function optionalString(o: Record<string, unknown>, key: string): string | undefined {
  return o[key] === undefined ? undefined : requireString(o, key);
}

function resolveUrl(relative: string, base: string, key: string): string {
  try {
    return new URL(relative, base).href;
  } catch {
    throw new ManifestError(`"${key}" is not a valid URL: ${relative}`);
  }
}

const MAX_PREFETCH_BLOCKS = 65536;

function parsePrefetch(prefetch: unknown, diskSize: number): DiskPrefetch {
  if (!isObject(prefetch)) throw new ManifestError('"disk.prefetch" must be an object');
  const { blockSize, blocks } = prefetch;
  if (typeof blockSize !== 'number' || !Number.isSafeInteger(blockSize) || blockSize < 4096 || (blockSize & (blockSize - 1)) !== 0) {
    throw new ManifestError('"disk.prefetch.blockSize" must be a power of two of at least 4096');
  }
  const count = Math.ceil(diskSize / blockSize);
  if (
    !Array.isArray(blocks) ||
    blocks.length > MAX_PREFETCH_BLOCKS ||
    !blocks.every((b): b is number => Number.isSafeInteger(b) && b >= 0 && b < count)
  ) {
    throw new ManifestError(`"disk.prefetch.blocks" must be a list of block indices below ${count} (at most ${MAX_PREFETCH_BLOCKS})`);
  }
  return { blockSize, blocks };
}

function parseChunks(chunks: unknown, manifestUrl: string): DiskChunks {
  if (!isObject(chunks)) throw new ManifestError('"disk.chunks" must be an object');
  const { size, zero = '' } = chunks;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 4096 || (size & (size - 1)) !== 0) {
    throw new ManifestError('"disk.chunks.size" must be a power of two of at least 4096');
  }
  const template = requireString(chunks, 'url', 'disk.chunks.');
  if (!template.includes('{index}')) throw new ManifestError('"disk.chunks.url" must contain {index}');
  if (typeof zero !== 'string' || !/^$|^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(zero)) {
    throw new ManifestError('"disk.chunks.zero" must be an index list like "0-3,7"');
  }
  // Resolve with a placeholder that URL parsing leaves alone, then put {index} back.
  const url = resolveUrl(template.replaceAll('{index}', '__chunk_index__'), manifestUrl, 'disk.chunks.url').replaceAll('__chunk_index__', '{index}');
  return { size, url, zero };
}

/**
 * Validates parsed JSON as a manifest and returns it with every URL made absolute.
 * @param json the parsed manifest body
 * @param manifestUrl absolute URL the manifest was fetched from
 */
export function parseManifest(json: unknown, manifestUrl: string): ImageManifest {
  if (!isObject(json)) throw new ManifestError('the manifest must be a JSON object');
  if (json.format !== 1) {
    throw new ManifestError(`unsupported manifest format ${JSON.stringify(json.format)} (expected 1)`);
  }
  const memoryMiB = json.memoryMiB;
  if (typeof memoryMiB !== 'number' || !Number.isInteger(memoryMiB) || memoryMiB < 16 || memoryMiB > 3072) {
    throw new ManifestError('"memoryMiB" must be an integer between 16 and 3072');
  }
  const consoleKind = json.console ?? 'serial';
  if (consoleKind !== 'virtio' && consoleKind !== 'serial') {
    throw new ManifestError('"console" must be "virtio" or "serial"');
  }
  if (json.acpi !== undefined && typeof json.acpi !== 'boolean') throw new ManifestError('"acpi" must be true or false');
  const url = (key: string) => resolveUrl(requireString(json, key), manifestUrl, key);

  let disk: DiskSpec | undefined;
  if (json.disk !== undefined) {
    if (!isObject(json.disk)) throw new ManifestError('"disk" must be an object');
    const size = json.disk.size;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0 || size % 512 !== 0) {
      throw new ManifestError('"disk.size" must be a positive multiple of 512 bytes');
    }
    const sha256 = requireString(json.disk, 'sha256', 'disk.');
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new ManifestError('"disk.sha256" must be 64 lower-case hex digits');
    disk = { url: resolveUrl(requireString(json.disk, 'url', 'disk.'), manifestUrl, 'disk.url'), size, sha256 };
    if (json.disk.chunks !== undefined) disk.chunks = parseChunks(json.disk.chunks, manifestUrl);
    if (json.disk.prefetch !== undefined) disk.prefetch = parsePrefetch(json.disk.prefetch, size);
  }

  let snapshot: SnapshotSpec | undefined;
  if (json.snapshot !== undefined) {
    if (!isObject(json.snapshot)) throw new ManifestError('"snapshot" must be an object');
    const { size } = json.snapshot;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) {
      throw new ManifestError('"snapshot.size" must be a positive integer');
    }
    const sha256 = requireString(json.snapshot, 'sha256', 'snapshot.');
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new ManifestError('"snapshot.sha256" must be 64 lower-case hex digits');
    snapshot = {
      url: resolveUrl(requireString(json.snapshot, 'url', 'snapshot.'), manifestUrl, 'snapshot.url'),
      size,
      sha256,
      key: requireString(json.snapshot, 'key', 'snapshot.'),
    };
  }

  const initrd = optionalString(json, 'initrd');
  return {
    format: 1,
    name: requireString(json, 'name'),
    id: requireString(json, 'id'),
    description: optionalString(json, 'description'),
    memoryMiB,
    bios: url('bios'),
    vgaBios: url('vgaBios'),
    kernel: url('kernel'),
    initrd: initrd === undefined ? undefined : resolveUrl(initrd, manifestUrl, 'initrd'),
    cmdline: typeof json.cmdline === 'string' ? json.cmdline : '',
    console: consoleKind,
    acpi: json.acpi === true,
    disk,
    snapshot,
  };
}
