/**
 * Compact lists of non-negative integers, as manifests write them: "0-3,7,9-12" (ranges inclusive,
 * ascending). Used for the chunk files an image omits because they are all zeros.
 */

export const INDEX_LIST_PATTERN = /^$|^\d+(-\d+)?(,\d+(-\d+)?)*$/;

/** Parses an index list into a Set; throws on malformed or unordered input. */
export function parseIndexList(text: string): Set<number> {
  if (!INDEX_LIST_PATTERN.test(text)) throw new Error(`not an index list: ${text.slice(0, 40)}`);
  const out = new Set<number>();
  let previous = -1;
  for (const part of text ? text.split(',') : []) {
    const [first, last = first] = part.split('-').map(Number) as [number, number?];
    if (first <= previous || last < first) throw new Error(`index list out of order at "${part}"`);
    for (let i = first; i <= last; i++) out.add(i);
    previous = last;
  }
  return out;
}

/** Formats ascending indices as an index list (the inverse of parseIndexList). */
export function formatIndexList(indices: Iterable<number>): string {
  const parts: string[] = [];
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
