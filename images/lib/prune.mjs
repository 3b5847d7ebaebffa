// Old image builds in the cache (…/linux-vm/images/<name>-<hash12>/): every change to the builder makes a new one
// (debian: ~1 GB), so a machine that builds many commits (CI, development) would fill its disk. After each build,
// images/build.mjs removes the least recently used ones.

/** Complete images kept per image name, the most recently used first (switching branches back stays cheap). */
export const KEEP_PER_NAME = 3;
/** An image used this recently is never removed: a build or test run in another checkout may be using it. */
export const RECENT_MS = 60 * 60 * 1000;

/**
 * The image directories to remove. `images`: `{ dir, name, lastUsedMs }` for every complete image in the cache.
 * Per name, all but the KEEP_PER_NAME most recently used go, unless used within RECENT_MS of `nowMs`.
 */
export function imagesToPrune(images, nowMs) {
  const byName = new Map();
  for (const image of images) {
    if (!byName.has(image.name)) byName.set(image.name, []);
    byName.get(image.name).push(image);
  }
  const prune = [];
  for (const list of byName.values()) {
    list.sort((a, b) => b.lastUsedMs - a.lastUsedMs);
    for (const image of list.slice(KEEP_PER_NAME)) {
      if (nowMs - image.lastUsedMs >= RECENT_MS) prune.push(image.dir);
    }
  }
  return prune;
}
