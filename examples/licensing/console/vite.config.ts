import { defineConfig } from 'vitest/config';

// The build is committed (dist/, embedded by embed.go) and checked by
// `make console-verify`, so it must be byte-for-byte reproducible: fixed
// file names (no content hashes), no source maps, no build timestamps.
export default defineConfig({
  base: '/admin/',
  // JSX through esbuild (React 17+ automatic runtime), no React plugin.
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    target: 'es2020',
    modulePreload: { polyfill: false },
    rollupOptions: {
      output: {
        entryFileNames: 'assets/console.js',
        chunkFileNames: 'assets/[name].js',
        assetFileNames: 'assets/[name][extname]',
      },
    },
  },
  test: { environment: 'node', include: ['src/**/*.test.ts'] },
});
