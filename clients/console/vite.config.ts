// The console's build: fixed file names (the binary embeds dist/index.html, console.js and
// console.css by name), one CSS file, no inline scripts (the console's CSP forbids them).
import { defineConfig } from "vite";
import vue from "@vitejs/plugin-vue";

export default defineConfig({
  plugins: [vue()],
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    cssCodeSplit: false,
    modulePreload: false,
    assetsInlineLimit: 0,
    rollupOptions: {
      output: {
        entryFileNames: "console.js",
        chunkFileNames: "console-[name].js",
        assetFileNames: "console.[ext]",
        inlineDynamicImports: true,
      },
    },
  },
});
