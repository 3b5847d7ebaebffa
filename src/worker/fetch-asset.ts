import { VmError } from '../errors.js';
import type { AssetKind } from '../protocol.js';

export type ByteProgress = (loaded: number, total: number) => void;

/** Fetches a whole guest file, reporting byte progress; failures become specific VmErrors. */
export async function fetchAsset(kind: AssetKind, url: string, onProgress: ByteProgress): Promise<ArrayBuffer> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (cause) {
    throw new VmError(`${kind}-fetch-failed`, `Could not fetch the ${kind} from ${url}: ${String(cause)}`);
  }
  if (response.status === 404 || response.status === 410) {
    throw new VmError(`${kind}-not-found`, `The ${kind} was not found at ${url} (HTTP ${response.status})`);
  }
  if (!response.ok || !response.body) {
    throw new VmError(`${kind}-fetch-failed`, `Fetching the ${kind} from ${url} failed with HTTP ${response.status}`);
  }
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
    throw new VmError(`${kind}-fetch-failed`, `The download of the ${kind} from ${url} broke off: ${String(cause)}`);
  }
  if (total && loaded !== total) {
    throw new VmError(`${kind}-fetch-failed`, `The ${kind} at ${url} is ${loaded} bytes, not the announced ${total}`);
  }
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes.buffer;
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
