import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// `--mode mock` builds the page with a mocked backend (src/mock), for browser tests; the
// production build never contains the mock.
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  server: { host: "127.0.0.1", port: 5173, strictPort: true },
  build: { target: "safari16", sourcemap: false },
  test: { environment: "happy-dom", include: ["tests/**/*.test.ts"] },
});
