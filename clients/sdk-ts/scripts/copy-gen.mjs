// tsc compiles the TypeScript; the protobuf classes are JavaScript with their own .d.ts, copied
// beside the output (dist/gen by default, or the directory given).
import { copyFileSync, mkdirSync } from "node:fs";
import { resolve } from "node:path";
const src = new URL("../src/gen/", import.meta.url).pathname;
const dst = resolve(process.argv[2] ?? new URL("../dist/gen/", import.meta.url).pathname);
mkdirSync(dst, { recursive: true });
for (const f of ["game.js", "game.d.ts"]) copyFileSync(`${src}/${f}`, `${dst}/${f}`);
