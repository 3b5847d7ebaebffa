import type { SnapshotSpec } from '../manifest.js';
import { fetchBytes, type ByteProgress } from './fetch-asset.js';
import { snapshotKey, toHex, type MachineSpec } from './machine.js';

/**
 * Downloads, verifies and decompresses a boot snapshot. Throws an Error whose message says why
 * the snapshot cannot be used (the caller then cold-boots and reports that reason).
 */
export async function loadSnapshot(
  snapshot: SnapshotSpec,
  imageId: string,
  spec: MachineSpec,
  onProgress: ByteProgress,
): Promise<ArrayBuffer> {
  if (snapshot.key !== (await snapshotKey(imageId, spec))) {
    throw new Error('the snapshot was saved from a different machine (v86 release, memory size or image build)');
  }
  let compressed: ArrayBuffer;
  try {
    compressed = await fetchBytes(snapshot.url, onProgress);
  } catch (error) {
    throw new Error(`the snapshot could not be downloaded: ${(error as Error).message}`);
  }
  if (compressed.byteLength !== snapshot.size) {
    throw new Error(`the snapshot is ${compressed.byteLength} bytes, not the ${snapshot.size} the manifest says`);
  }
  const digest = toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', compressed)));
  if (digest !== snapshot.sha256) throw new Error('the snapshot is corrupt (SHA-256 mismatch)');
  try {
    const stream = new Blob([compressed]).stream().pipeThrough(new DecompressionStream('gzip'));
    return await new Response(stream).arrayBuffer();
  } catch (error) {
    throw new Error(`the snapshot is corrupt (gzip: ${(error as Error).message})`);
  }
}
