// Writes src/gen/rest.ts from docs/openapi.json (`rsgame openapi`): the error codes, the
// request and reply types, and one typed function per route a player's client calls. Routes
// for server-side tools (an X-Admin-Token header), downloads by signed link and multipart
// uploads are left out: a game client does not call them through JSON. So are the routes
// that change the session itself (refresh, logout, changePassword, delete): `Client` wraps
// them, since calling them bare would spend or end tokens the client still holds.
const SESSION_ROUTES = new Set([
  "/usercenter/v1/user/refresh",
  "/usercenter/v1/user/logout",
  "/usercenter/v1/user/logoutAll",
  "/usercenter/v1/user/changePassword",
  "/usercenter/v1/user/delete",
]);
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const doc = JSON.parse(readFileSync(join(pkg, "../../docs/openapi.json"), "utf8"));
const schemas = doc.components.schemas;
const REF = "#/components/schemas/";

const ident = (s) => /^[A-Za-z_$][\w$]*$/.test(s);
const comment = (text, pad) => {
  if (!text) return "";
  const lines = text.replace(/\*\//g, "*\u200b/").split("\n");
  if (lines.length === 1) return `${pad}/** ${lines[0]} */\n`;
  return `${pad}/**\n${lines.map((l) => `${pad} * ${l}`.trimEnd()).join("\n")}\n${pad} */\n`;
};
const refName = (ref) => {
  if (!ref.startsWith(REF)) throw new Error(`unsupported $ref ${ref}`);
  return ref.slice(REF.length);
};

// utoipa inlines a schema where it is used (an envelope's data, a field): name it again when it
// is exactly a named one, so replies read `Promise<Pack>`, not a 30-line literal.
const named = new Map(
  Object.entries(schemas)
    .filter(([n]) => !n.startsWith("Envelope_"))
    .map(([n, s]) => [JSON.stringify(s), n]),
);
const strip = (s) => {
  if (!s || typeof s !== "object" || !s.description) return s;
  const { description: _, ...rest } = s;
  return rest;
};

/** The TypeScript type of a schema; fails on a construct it does not know. */
function ts(s, pad) {
  const again = s && typeof s === "object" && (named.get(JSON.stringify(s)) ?? named.get(JSON.stringify(strip(s))));
  if (again && pad !== "") return again;
  if (s === true || s === undefined || (typeof s === "object" && Object.keys(s).filter((k) => k !== "description").length === 0)) return "unknown";
  if (s.$ref) return refName(s.$ref);
  if (s.allOf) return s.allOf.map((p) => paren(ts(p, pad))).join(" & ");
  if (s.oneOf || s.anyOf) return (s.oneOf ?? s.anyOf).map((p) => paren(ts(p, pad))).join(" | ");
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (Array.isArray(s.type)) return s.type.map((t) => ts({ ...s, type: t }, pad)).join(" | ");
  switch (s.type) {
    case "integer":
    case "number":
      return "number";
    case "string":
      return "string";
    case "boolean":
      return "boolean";
    case "null":
      return "null";
    case "array":
      return `Array<${ts(s.items, pad)}>`;
    case "object":
      if (s.properties) return objectBody(s, pad);
      if (s.additionalProperties && s.additionalProperties !== true) return `Record<string, ${ts(s.additionalProperties, pad)}>`;
      return "Record<string, unknown>";
    default:
      throw new Error(`unsupported schema ${JSON.stringify(s).slice(0, 200)}`);
  }
}
const paren = (t) => (/[|&]/.test(t) && !t.startsWith("{") ? `(${t})` : t);

function objectBody(s, pad) {
  const req = new Set(s.required ?? []);
  const inner = pad + "  ";
  let out = "{\n";
  for (const [k, v] of Object.entries(s.properties)) {
    out += comment(v.description ?? (v.$ref ? undefined : v.title), inner);
    const name = ident(k) ? k : JSON.stringify(k);
    out += `${inner}${name}${req.has(k) ? "" : "?"}: ${ts(v, inner)};\n`;
  }
  return `${out}${pad}}`;
}

let out = "// Generated from docs/openapi.json by scripts/gen-rest.mjs: do not edit.\n\n";

// The error codes, with the names the server gives them.
const codes = schemas.ErrorCode;
if (!codes || !codes["x-enum-varnames"]) throw new Error("docs/openapi.json has no ErrorCode schema");
out += "/** Every code a reply may carry (docs/errors.md): `Code.Muted` is 400526. */\nexport const Code = {\n";
codes.enum.forEach((n, i) => {
  out += comment(codes["x-enum-descriptions"][i], "  ");
  out += `  ${codes["x-enum-varnames"][i]}: ${n},\n`;
});
out += "} as const;\nexport type Code = (typeof Code)[keyof typeof Code];\n\n";
out += "/** Each code's meaning, in English (for logs; show players a text of your own). */\n";
out += "export const CODE_TEXT: Readonly<Record<number, string>> = {\n";
codes.enum.forEach((n, i) => (out += `  ${n}: ${JSON.stringify(codes["x-enum-descriptions"][i])},\n`));
out += "};\n\n";

// The routes.
const groups = new Map();
const used = new Set();
const skipped = [];
for (const [path, item] of Object.entries(doc.paths)) {
  for (const [method, op] of Object.entries(item)) {
    const params = op.parameters ?? [];
    const content = op.requestBody?.content;
    const reply = op.responses?.["200"]?.content?.["application/json"]?.schema;
    if (SESSION_ROUTES.has(path)) for (const m of JSON.stringify(op).matchAll(/"#\/components\/schemas\/(\w+)"/g)) used.add(m[1]);
    if (SESSION_ROUTES.has(path) || params.some((p) => p.in === "header" || p.in === "path") || (content && !content["application/json"]) || !reply) {
      skipped.push(`${method.toUpperCase()} ${path}`);
      continue;
    }
    if (params.length) throw new Error(`${path}: query parameters are not supported`);
    const seg = path.split("/").filter(Boolean);
    if (seg.length < 4 || seg[1] !== "v1") throw new Error(`${path}: not /<service>/v1/<group>/<name>`);
    const group = seg[2];
    const name = seg.slice(3).map((s, i) => (i === 0 ? s : s[0].toUpperCase() + s.slice(1))).join("");
    const env = schemas[refName(reply.$ref)];
    if (!env?.properties?.code || !("data" in env.properties)) throw new Error(`${path}: the reply is not an envelope`);
    const data = ts(env.properties.data, "    ");
    const bodySchema = content?.["application/json"]?.schema;
    const body = bodySchema ? ts(bodySchema, "    ") : null;
    const optional = bodySchema && !(schemas[refName(bodySchema.$ref ?? REF + "?")]?.required?.length);
    for (const m of `${data} ${body ?? ""}`.matchAll(/\b[A-Z]\w*\b/g)) used.add(m[0]);
    // Public game routes take a token when there is one (getRank answers with the player's own
    // rank then); public account routes never need one.
    const auth = (op.security ?? doc.security ?? []).length > 0 ? "true" : path.startsWith("/game/") ? '"optional"' : "false";
    const list = groups.get(group) ?? [];
    list.push({ name, path, method: method.toUpperCase(), data, body, optional, auth, doc: [op.summary, op.description].filter(Boolean).join("\n\n") });
    groups.set(group, list);
  }
}

// Every schema the routes reach, and what those reach.
const emit = new Set();
const visit = (name) => {
  if (emit.has(name) || !schemas[name]) return;
  emit.add(name);
  for (const m of JSON.stringify(schemas[name]).matchAll(/"#\/components\/schemas\/(\w+)"/g)) visit(m[1]);
};
for (const n of used) visit(n);
for (const name of [...emit].sort()) {
  if (name.startsWith("Envelope_")) continue; // the envelope is the client's business
  const s = schemas[name];
  out += comment(s.description, "");
  if (s.type === "object" && s.properties && !s.allOf) out += `export interface ${name} ${objectBody(s, "")}\n\n`;
  else out += `export type ${name} = ${ts(s, "")};\n\n`;
}

out += "/** How a route reaches the server: `Client` supplies it (the envelope, the token, refresh). */\n";
out += 'export type Call = <T>(path: string, body: unknown, auth: boolean | "optional", method: "GET" | "POST") => Promise<T>;\n\n';
out += "/** Every player-facing route, by group (`user`, `basic`, `game`, `guild`, `inbox`). */\n";
out += "export function routes(call: Call) {\n  return {\n";
for (const [group, list] of [...groups].sort()) {
  out += `    ${group}: {\n`;
  for (const r of list.sort((a, b) => a.name.localeCompare(b.name))) {
    out += comment(`\`${r.method} ${r.path}\`${r.auth === "true" ? " (access token)" : ""}: ${r.doc}`, "      ");
    const arg = r.body ? `req: ${r.body}${r.optional ? " = {}" : ""}` : "";
    out += `      ${r.name}: (${arg}): Promise<${r.data}> =>\n`;
    out += `        call<${r.data}>(${JSON.stringify(r.path)}, ${r.body ? "req" : "{}"}, ${r.auth}, "${r.method}"),\n`;
  }
  out += "    },\n";
}
out += "  };\n}\n\nexport type Routes = ReturnType<typeof routes>;\n";
writeFileSync(join(pkg, "src/gen/rest.ts"), out);
console.log(`rest.ts: ${[...groups.values()].reduce((n, l) => n + l.length, 0)} routes, ${emit.size} types; left out: ${skipped.join(", ")}`);
