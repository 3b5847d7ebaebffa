import { VmError } from '../errors.js';
import type { AssetKind } from '../protocol.js';

export type ByteProgress = (loaded: number, total: number) => void;

/** A download that failed; `status` is the HTTP status if the server answered. */
export class FetchError extends Error {
  override name = 'FetchError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Fetches a whole file, reporting byte progress as it streams in. */
export async function fetchBytes(url: string, onProgress: ByteProgress): Promise<ArrayBuffer> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (cause) {
    throw new FetchError(`could not fetch ${url}: ${String(cause)}`);
  }
  if (!response.ok || !response.body) throw new FetchError(`fetching ${url} failed with HTTP ${response.status}`, response.status);
  const total = Number(response.headers.get('content-length')) || 0;
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  onProgress(0, total);
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      chunks.push(chunk);
      loaded += chunk.byteLength;
      onProgress(loaded, total);
    }
  } catch (cause) {
    throw new FetchError(`the download of ${url} broke off: ${String(cause)}`);
  }
  if (total && loaded !== total) throw new FetchError(`${url} is ${loaded} bytes, not the announced ${total}`);
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes.buffer;
}

/** Fetches a guest file the VM cannot start without; failures become specific VmErrors. */
export async function fetchAsset(kind: AssetKind, url: string, onProgress: ByteProgress): Promise<ArrayBuffer> {
  try {
    return await fetchBytes(url, onProgress);
  } catch (error) {
    if (!(error instanceof FetchError)) throw error;
    if (error.status === 404 || error.status === 410) {
      throw new VmError(`${kind}-not-found`, `The ${kind} was not found at ${url} (HTTP ${error.status})`);
    }
    throw new VmError(`${kind}-fetch-failed`, `The ${kind} could not be loaded: ${error.message}`);
  }
}

/**
 * Checks that the disk image is there, is served with HTTP Range support, and has the
 * size the manifest declares: v86 reads it block by block, so a mismatch would only show
 * later as a corrupt filesystem.
 */
export async function probeDisk(url: string, expectedSize: number): Promise<void> {
  let response: Response;
  try {
    response = await fetch(url, { headers: { Range: 'bytes=0-511' } });
  } catch (cause) {
    throw new VmError('disk-fetch-failed', `Could not reach the disk image at ${url}: ${String(cause)}`);
  }
  if (response.status === 404 || response.status === 410) {
    throw new VmError('disk-not-found', `The disk image was not found at ${url} (HTTP ${response.status})`);
  }
  // Don't download a whole image from a server that ignored the Range header.
  void response.body?.cancel();
  if (response.status !== 206) {
    throw new VmError(
      'disk-fetch-failed',
      `The server of ${url} answered a Range request with HTTP ${response.status}; block streaming needs 206 Partial Content`,
    );
  }
  const total = /\/(\d+)\s*$/.exec(response.headers.get('content-range') ?? '')?.[1];
  if (total === undefined || Number(total) !== expectedSize) {
    throw new VmError(
      'disk-size-mismatch',
      `The disk image at ${url} is ${total ?? 'of unknown size'} bytes; the manifest says ${expectedSize}`,
    );
  }
}
