// The chunked form of a disk image, for static hosts without HTTP Range support: disk.img split into
// fixed-size files `disk.chunks/<index>`, all-zero chunks omitted and listed in the manifest instead.
// Manifest entry (images/README.md): disk.chunks = { size, url: "disk.chunks/{index}", zero: "0-3,9" }.
import fs from 'node:fs/promises';
import path from 'node:path';

export const CHUNK_SIZE = 128 * 1024;

/** "0-3,7": ascending indices as ranges (the format src/worker/disk/index-list.ts parses). */
export function formatIndexList(indices) {
  const parts = [];
  let start = -1;
  let end = -2;
  const flush = () => start >= 0 && parts.push(start === end ? `${start}` : `${start}-${end}`);
  for (const i of indices) {
    if (i === end + 1) end = i;
    else {
      flush();
      start = end = i;
    }
  }
  flush();
  return parts.join(',');
}

/** Writes `<dir>/disk.chunks/<index>` for `<dir>/<image>`; returns the manifest's `disk.chunks`. */
export async function writeDiskChunks(dir, image = 'disk.img', chunkSize = CHUNK_SIZE) {
  const out = path.join(dir, 'disk.chunks');
  await fs.rm(out, { recursive: true, force: true });
  await fs.mkdir(out);
  const file = await fs.open(path.join(dir, image), 'r');
  const zero = [];
  try {
    const { size } = await file.stat();
    const buffer = Buffer.alloc(chunkSize);
    for (let index = 0; index * chunkSize < size; index++) {
      const length = Math.min(chunkSize, size - index * chunkSize);
      const { bytesRead } = await file.read(buffer, 0, length, index * chunkSize);
      if (bytesRead !== length) throw new Error(`short read of ${image} at chunk ${index}`);
      const chunk = buffer.subarray(0, length);
      if (chunk.every((b) => b === 0)) zero.push(index);
      else await fs.writeFile(path.join(out, String(index)), chunk);
    }
  } finally {
    await file.close();
  }
  return { size: chunkSize, url: 'disk.chunks/{index}', zero: formatIndexList(zero) };
}
