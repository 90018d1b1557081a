// tsc compiles the TypeScript; the protobuf classes are JavaScript with their own .d.ts.
import { copyFileSync, mkdirSync } from "node:fs";
const [src, dst] = [new URL("../src/gen/", import.meta.url), new URL("../dist/gen/", import.meta.url)];
mkdirSync(dst, { recursive: true });
for (const f of ["game.js", "game.d.ts"]) copyFileSync(new URL(f, src), new URL(f, dst));
