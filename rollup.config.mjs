import { readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { nodeResolve } from '@rollup/plugin-node-resolve';
import esbuild from 'rollup-plugin-esbuild';

/**
 * `new URL('./relative/path', import.meta.url)` in our sources names a file the bundle needs at
 * run time. A `.ts` target (a worker entry) becomes its own chunk; anything else (v86's wasm) is
 * copied as an asset. The dev server serves the same URLs straight from the source tree.
 */
function importMetaUrlFiles() {
  const pattern = /new URL\((['"])(\.{1,2}\/[^'"]+)\1,\s*import\.meta\.url\)/g;
  return {
    name: 'import-meta-url-files',
    transform(code, id) {
      if (!id.includes('/src/') || !code.includes('import.meta.url')) return null;
      const replaced = code.replace(pattern, (_match, _quote, relative) => {
        const file = resolve(dirname(id), relative);
        const ref = file.endsWith('.ts')
          ? this.emitFile({ type: 'chunk', id: file, name: basename(file, '.ts') })
          : this.emitFile({ type: 'asset', name: basename(file), source: readFileSync(file) });
        return `new URL(import.meta.ROLLUP_FILE_URL_${ref})`;
      });
      return replaced === code ? null : { code: replaced, map: null };
    },
  };
}

/** `import sheet from 'x.css' with { type: 'css' }` → a constructable stylesheet, as browsers do natively. */
function cssModules() {
  return {
    name: 'css-modules',
    load(id) {
      if (!id.endsWith('.css')) return null;
      const css = readFileSync(id, 'utf8');
      return `const sheet = new CSSStyleSheet();\nsheet.replaceSync(${JSON.stringify(css)});\nexport default sheet;\n`;
    },
  };
}

/** lwIP's BSD licence asks for its notice with every copy of the wasm: it goes beside the bundle. */
function lwipNotice() {
  return {
    name: 'lwip-notice',
    generateBundle() {
      this.emitFile({ type: 'asset', fileName: 'LICENSE.lwip', source: readFileSync('wasm/dist/lwip/LICENSE.lwip') });
    },
  };
}

// v86's bundle guards Node-only require() calls; esbuild's warning about them is noise here.
const compile = () => esbuild({ target: 'es2022', minify: true, tsconfig: 'tsconfig.json', logOverride: { 'unsupported-require-call': 'silent' } });

export default [
  {
    input: { 'linux-vm': 'src/index.ts' },
    output: {
      dir: 'dist',
      format: 'es',
      sourcemap: true,
      entryFileNames: '[name].js',
      chunkFileNames: '[name]-[hash].js',
      assetFileNames: '[name]-[hash][extname]',
    },
    plugins: [
      importMetaUrlFiles(),
      cssModules(),
      lwipNotice(),
      nodeResolve({ extensions: ['.ts', '.mjs', '.js'] }),
      compile(),
    ],
  },
  // The service worker: a classic script (module service workers are not supported everywhere), copied by
  // pages to where its scope should start.
  {
    input: 'src/service-worker/linux-vm-sw.ts',
    output: { file: 'dist/linux-vm-sw.js', format: 'iife', sourcemap: true },
    plugins: [nodeResolve({ extensions: ['.ts', '.mjs', '.js'] }), compile()],
  },
];
