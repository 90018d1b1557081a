// Generates src/gen/ from the two documents a client is built from, so no message id, body
// type, route or error code is copied by hand:
// - proto/game.proto: the protobuf classes (pbjs/pbts, protobufjs' minimal runtime), and
//   src/gen/protocol.ts: message ids, each id's body type, request → reply pairs (from the
//   MessageId enum's `// body:` and `// reply:` comments), typed tables of both directions;
// - docs/openapi.json: src/gen/rest.ts, the REST routes a player's client calls (usercenter,
//   basic, game, guild, inbox) with their request and reply types, and the error codes.
// Fails loudly on anything it does not understand rather than generating `any`.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, "..");
const repo = join(pkg, "../..");
const gen = join(pkg, "src/gen");
const proto = join(repo, "proto/game.proto");
mkdirSync(gen, { recursive: true });

const bin = (name) => join(pkg, "node_modules/.bin", name);
execFileSync(bin("pbjs"), [
  "-t", "static-module", "-w", "es6", "--no-beautify", "--no-delimited", "--no-verify",
  "--no-convert", "--no-service", "--force-number", "-o", join(gen, "game.js"), proto,
], { stdio: "inherit" });
// Node's ESM loader needs the file's extension, and protobufjs is CommonJS: import its default.
// int64 fields as plain numbers (every id the server sends, monster ids from 2^48 included, is
// below 2^53): Long is switched off before the classes are made, since their prototypes take
// their int64 defaults from it at load time.
const js = readFileSync(join(gen, "game.js"), "utf8").replace(
  /import (?:\* as )?\$protobuf from "protobufjs\/minimal(?:\.js)?";/,
  'import $protobuf from "protobufjs/minimal.js";\n$protobuf.util.Long = undefined;\n$protobuf.configure();',
);
if (!js.includes("$protobuf.util.Long = undefined;")) throw new Error("pbjs output changed: fix the import rewrite");
writeFileSync(join(gen, "game.js"), js);
execFileSync(bin("pbts"), ["--no-comments", "-o", join(gen, "game.d.ts"), join(gen, "game.js")], { stdio: "inherit" });

// ---- protocol.ts --------------------------------------------------------------------------

const root = await protobuf.load(proto);
const pascal = (upper) => upper.toLowerCase().replace(/(^|_)([a-z0-9])/g, (_, __, c) => c.toUpperCase());
const text = readFileSync(proto, "utf8");
const enumBody = /enum MessageId \{([\s\S]*?)\n\}/.exec(text);
if (!enumBody) throw new Error("proto/game.proto has no MessageId enum");
const ids = [];
for (const line of enumBody[1].split("\n")) {
  const m = /^\s*MESSAGE_ID_(\w+)\s*=\s*(\d+);\s*(?:\/\/\s*(.*))?$/.exec(line);
  if (!m) {
    if (/MESSAGE_ID_/.test(line)) throw new Error(`cannot read MessageId line: ${line.trim()}`);
    continue;
  }
  const [, upper, num, note] = m;
  if (upper === "NONE") continue;
  const id = { upper, name: pascal(upper), num: Number(num), body: pascal(upper), reply: null };
  for (const part of (note ?? "").split(";").map((s) => s.trim()).filter(Boolean)) {
    const kv = /^(body|reply):\s*(\w+)$/.exec(part);
    if (!kv) throw new Error(`MESSAGE_ID_${upper}: cannot read the comment "${part}" (body: Message; reply: ID)`);
    if (kv[1] === "body") id.body = kv[2];
    else id.reply = kv[2];
  }
  ids.push(id);
}
const byUpper = new Map(ids.map((i) => [i.upper, i]));
for (const i of ids) {
  const t = root.lookup(`pb.${i.body}`);
  if (!(t instanceof protobuf.Type)) throw new Error(`MESSAGE_ID_${i.upper}: no message pb.${i.body} (name one with // body: X)`);
  if (i.reply && !byUpper.has(i.reply)) throw new Error(`MESSAGE_ID_${i.upper}: reply ${i.reply} is not a MessageId`);
}
// The protocol's rule (docs/protocol.md): requests are 1xxx and 1xxxxx, the rest is the server's.
const outbound = (n) => (n >= 1000 && n < 2000) || (n >= 100000 && n < 200000);
const out = ids.filter((i) => outbound(i.num));
const inb = ids.filter((i) => !outbound(i.num));

let p = `// Generated from proto/game.proto by scripts/gen.mjs: do not edit.\n`;
p += `import { pb } from "./game.js";\n\n`;
p += `/** Every message id of the game connection (proto/game.proto's MessageId). */\n`;
p += `export const MessageId = {\n${ids.map((i) => `  ${i.name}: ${i.num},`).join("\n")}\n} as const;\n`;
p += `export type MessageId = (typeof MessageId)[keyof typeof MessageId];\n\n`;
p += `/** What the client may send: each id's fields. */\nexport interface Outbound {\n`;
p += out.map((i) => `  ${i.num}: pb.I${i.body};`).join("\n") + "\n}\n\n";
p += `/** What the server sends: each id's decoded message. */\nexport interface Inbound {\n`;
p += inb.map((i) => `  ${i.num}: pb.${i.body};`).join("\n") + "\n}\n\n";
p += `/** Requests answered by one message to the sender: request id → reply id. */\n`;
p += `export const REPLIES = {\n${ids.filter((i) => i.reply).map((i) => `  ${i.num}: ${byUpper.get(i.reply).num},`).join("\n")}\n} as const;\n`;
p += `export type Replies = typeof REPLIES;\n\n`;
p += `/** A generated protobuf class, as the socket uses it. */\n`;
p += `export interface BodyCodec {\n  encode(m: object): { finish(): Uint8Array };\n  decode(b: Uint8Array): unknown;\n}\n\n`;
p += `/** Each id's body class. */\nexport const BODIES: Readonly<Record<number, BodyCodec>> = {\n`;
p += ids.map((i) => `  ${i.num}: pb.${i.body},`).join("\n") + "\n};\n\n";
p += `/** Each id's name, for logs. */\nexport const NAMES: Readonly<Record<number, string>> = {\n`;
p += ids.map((i) => `  ${i.num}: "${i.name}",`).join("\n") + "\n};\n";
writeFileSync(join(gen, "protocol.ts"), p);
console.log(`protocol.ts: ${ids.length} message ids, ${out.length} outbound, ${ids.filter((i) => i.reply).length} paired`);

await import("./gen-rest.mjs");
