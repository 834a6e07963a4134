import { defineConfig } from 'vite'

export default defineConfig({
  // LiveStore's workers are ES modules.
  worker: { format: 'es' },
  // The SQLite WebAssembly build must not be pre-bundled in dev mode.
  optimizeDeps: { exclude: ['@livestore/wa-sqlite'] },
  build: { target: 'es2022' },
  server: { host: '127.0.0.1', port: 5173 },
  preview: { host: '127.0.0.1', port: 4173 },
})
