// Writes src/gen/ids.ts from proto/game.proto's MessageId enum, so the client's message ids
// come from the one list the server is built from (rsgame_proto::ids). Run by `npm run gen`.
import { mkdirSync, writeFileSync } from "node:fs";
import protobuf from "protobufjs";

const root = await protobuf.load(new URL("../../../proto/game.proto", import.meta.url).pathname);
const ids = root.lookupEnum("pb.MessageId").values;
const pascal = (name) =>
  name
    .replace(/^MESSAGE_ID_/, "")
    .toLowerCase()
    .replace(/(^|_)([a-z])/g, (_, __, c) => c.toUpperCase());
const lines = Object.entries(ids)
  .filter(([, n]) => n !== 0)
  .map(([name, n]) => `  ${pascal(name)}: ${n},`);
mkdirSync(new URL("../src/gen/", import.meta.url), { recursive: true });
writeFileSync(
  new URL("../src/gen/ids.ts", import.meta.url),
  `// Generated from proto/game.proto's MessageId by scripts/gen-ids.mjs: do not edit.\n` +
    `// A request id N is answered or pushed as N + 100000 (N + 1000 below 10000).\n` +
    `export const ID = {\n${lines.join("\n")}\n} as const;\n`,
);
