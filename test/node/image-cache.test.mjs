// Which old image builds images/build.mjs removes from the cache (images/lib/prune.mjs).
//   node --test test/node/
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KEEP_PER_NAME, RECENT_MS, imagesToPrune } from '../../images/lib/prune.mjs';

const HOUR = 60 * 60 * 1000;
const now = Date.UTC(2026, 10, 28, 12);

test('keeps the most recently used images of each name and removes the rest', () => {
  assert.equal(KEEP_PER_NAME, 3);
  const debian = Array.from({ length: 6 }, (_, i) => ({ dir: `debian-${i}`, name: 'debian', lastUsedMs: now - (i + 2) * HOUR }));
  const tiny = [{ dir: 'tiny-0', name: 'tiny', lastUsedMs: now - 30 * 24 * HOUR }];
  // Listed out of order: the age decides, not the order.
  const pruned = imagesToPrune([...debian].reverse().concat(tiny), now);
  assert.deepEqual(pruned.sort(), ['debian-3', 'debian-4', 'debian-5']);
});

test('never removes an image used within the last hour, however many there are', () => {
  const recent = Array.from({ length: 5 }, (_, i) => ({ dir: `tiny-${i}`, name: 'tiny', lastUsedMs: now - i * 60_000 }));
  assert.deepEqual(imagesToPrune(recent, now), []);
  const old = { dir: 'tiny-old', name: 'tiny', lastUsedMs: now - RECENT_MS };
  assert.deepEqual(imagesToPrune([...recent, old], now), ['tiny-old']);
});
