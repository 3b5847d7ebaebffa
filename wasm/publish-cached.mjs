// Shared by the wasm builds (wasm/*/build.mjs): copies a cached build's files into the output directory,
// rewriting only those that differ, so that an unchanged build leaves the output untouched.
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export function publishCached(cacheDir, outDir, files) {
  mkdirSync(outDir, { recursive: true });
  for (const file of files) {
    const src = join(cacheDir, file);
    const dst = join(outDir, file);
    // Sizes first: comparing the 27 MB Tailscale wasm byte for byte is only worth it when they match.
    if (!existsSync(dst) || statSync(dst).size !== statSync(src).size || !readFileSync(dst).equals(readFileSync(src))) {
      copyFileSync(src, dst);
    }
  }
}
