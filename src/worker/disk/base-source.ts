import { VmError } from '../../errors.js';
import type { DiskSpec } from '../../manifest.js';
import { parseIndexList } from './index-list.js';

/** Block size for HTTP Range reads: a Debian boot reads ~13 MB in a few hundred requests. */
export const RANGE_BLOCK_SIZE = 64 * 1024;

/**
 * Where the base image's blocks come from. `read(i)` resolves with block `i` (blockSize bytes, the
 * last block may be shorter), validated: any server answer that could be the wrong bytes is a VmError.
 */
export interface BaseSource {
  readonly blockSize: number;
  read(index: number): Promise<Uint8Array>;
  /** Checks cheaply that the server can serve the image at all (called at every start). */
  probe(): Promise<void>;
}

/** Bytes fetched from the network, for progress and benchmarks. */
export type FetchCounter = (bytes: number) => void;

export function createBaseSource(spec: DiskSpec, onFetched: FetchCounter): BaseSource {
  return spec.chunks ? new ChunkSource(spec, onFetched) : new RangeSource(spec, onFetched);
}

function blockLength(spec: DiskSpec, blockSize: number, index: number): number {
  const length = Math.min(blockSize, spec.size - index * blockSize);
  if (length <= 0) throw new RangeError(`block ${index} is beyond the end of the disk`);
  return length;
}

async function fetchOrFail(url: string, init?: RequestInit): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, init);
  } catch (cause) {
    throw new VmError('disk-fetch-failed', `Could not fetch ${url}: ${String(cause)}`);
  }
  if (response.status === 404 || response.status === 410) {
    void response.body?.cancel();
    throw new VmError('disk-not-found', `The disk image was not found at ${url} (HTTP ${response.status})`);
  }
  return response;
}

/** Reads the image with HTTP Range requests and insists on exact 206 answers. */
export class RangeSource implements BaseSource {
  readonly blockSize = RANGE_BLOCK_SIZE;
  /** The image's strong ETag or Last-Modified, sent as If-Range: a changed image then answers 200. */
  private validator?: string;

  constructor(
    private readonly spec: DiskSpec,
    private readonly onFetched: FetchCounter,
  ) {}

  read(index: number): Promise<Uint8Array> {
    return this.fetchRange(index * this.blockSize, blockLength(this.spec, this.blockSize, index));
  }

  /** One byte: Range support, the image's size and its validator, even when every block is cached. */
  async probe(): Promise<void> {
    await this.fetchRange(0, 1);
  }

  private async fetchRange(start: number, length: number): Promise<Uint8Array> {
    const { url, size } = this.spec;
    const headers: Record<string, string> = { Range: `bytes=${start}-${start + length - 1}` };
    if (this.validator) headers['If-Range'] = this.validator;
    const response = await fetchOrFail(url, { headers });
    if (response.status !== 206) {
      // Never read a whole image from a server that ignored the Range header.
      void response.body?.cancel();
      if (response.ok && this.validator) {
        throw new VmError('disk-changed', `The disk image at ${url} was replaced on the server while this VM was reading it`);
      }
      if (response.ok) {
        throw new VmError(
          'disk-range-unsupported',
          `The server of ${url} ignores HTTP Range requests (answered ${response.status}, not 206); ` +
            'serve the image from a host with Range support or use the chunked form (disk.chunks)',
        );
      }
      throw new VmError('disk-fetch-failed', `Reading the disk image ${url} failed with HTTP ${response.status}`);
    }
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(response.headers.get('content-range')?.trim() ?? '');
    if (range?.[3] !== undefined && range[3] !== '*' && Number(range[3]) !== size) {
      void response.body?.cancel();
      throw new VmError('disk-size-mismatch', `The disk image at ${url} is ${range[3]} bytes; the manifest says ${size}`);
    }
    if (!range || Number(range[1]) !== start || Number(range[2]) !== start + length - 1) {
      void response.body?.cancel();
      throw new VmError(
        'disk-corrupt',
        `The server of ${url} answered bytes ${start}-${start + length - 1} with Content-Range "${response.headers.get('content-range')}"`,
      );
    }
    const bytes = await readBody(response, url);
    this.onFetched(bytes.byteLength);
    if (bytes.byteLength !== length) {
      throw new VmError('disk-corrupt', `The server of ${url} sent ${bytes.byteLength} bytes for a ${length}-byte range`);
    }
    const etag = response.headers.get('etag');
    this.validator ??= (etag && !etag.startsWith('W/') ? etag : response.headers.get('last-modified')) ?? undefined;
    return bytes;
  }
}

/** Reads the image as fixed-size chunk files (manifest `disk.chunks`); omitted chunks are zeros. */
export class ChunkSource implements BaseSource {
  readonly blockSize: number;
  private readonly zero: Set<number>;

  constructor(
    private readonly spec: DiskSpec,
    private readonly onFetched: FetchCounter,
  ) {
    this.blockSize = spec.chunks!.size;
    this.zero = parseIndexList(spec.chunks!.zero);
  }

  async probe(): Promise<void> {} // chunk files are validated as they are read

  async read(index: number): Promise<Uint8Array> {
    const length = blockLength(this.spec, this.blockSize, index);
    if (this.zero.has(index)) return new Uint8Array(length);
    const url = this.spec.chunks!.url.replaceAll('{index}', String(index));
    const response = await fetchOrFail(url);
    if (!response.ok) {
      void response.body?.cancel();
      throw new VmError('disk-fetch-failed', `Fetching disk chunk ${url} failed with HTTP ${response.status}`);
    }
    const bytes = await readBody(response, url);
    this.onFetched(bytes.byteLength);
    if (bytes.byteLength !== length) {
      throw new VmError('disk-corrupt', `Disk chunk ${url} is ${bytes.byteLength} bytes, not ${length}: it belongs to another image`);
    }
    return bytes;
  }
}

async function readBody(response: Response, url: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await response.arrayBuffer());
  } catch (cause) {
    throw new VmError('disk-fetch-failed', `The download of ${url} broke off: ${String(cause)}`);
  }
}
