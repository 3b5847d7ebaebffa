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
  // With a Content-Encoding, Content-Length counts the compressed bytes, not those the body yields.
  const encoded = (response.headers.get('content-encoding') ?? 'identity') !== 'identity';
  const total = encoded ? 0 : Number(response.headers.get('content-length')) || 0;
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
