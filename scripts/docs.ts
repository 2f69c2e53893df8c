// `npm run docs`: writes the API reference, docs/api.md, from the .proto files.
// `--out FILE` writes it elsewhere (the freshness test does).
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { renderApiReference, undocumented } from "./api-reference.js";

const root = new URL("..", import.meta.url).pathname;
const { values } = parseArgs({ options: { out: { type: "string", default: join(root, "docs/api.md") } } });
const out = resolve(values.out ?? "");
await mkdir(dirname(out), { recursive: true });
await writeFile(out, await renderApiReference(root));
const missing = await undocumented(root);
if (missing.length > 0) console.warn(`without a comment in proto/ (shown as "—"): ${missing.join(", ")}`);
console.log(`wrote ${out}`);
