/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// esbuild compiles TSX with React's automatic runtime; no framework plugin is needed.
export default defineConfig({
  esbuild: { jsx: "automatic" },
  build: { outDir: "dist", emptyOutDir: true, assetsDir: "assets" },
  server: { proxy: { "/api": "http://127.0.0.1:8080", "/health": "http://127.0.0.1:8080" } },
  test: { environment: "jsdom", include: ["test/**/*.test.tsx", "test/**/*.test.ts"] },
});
