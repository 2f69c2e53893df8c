// `npm run docs`: writes the API reference, docs/api.md, from the .proto files,
// and the settings tables of docs/configuration.md from the settings
// declarations. `--out FILE` writes the API reference alone, elsewhere (the
// freshness test does).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { settingGroups } from "../services/core/config.js";
import { renderApiReference, undocumented } from "./api-reference.js";
import { renderSettings, withSettings } from "./configuration-reference.js";

const root = new URL("..", import.meta.url).pathname;
const { values } = parseArgs({ options: { out: { type: "string" } } });
const out = resolve(values.out ?? join(root, "docs/api.md"));
await mkdir(dirname(out), { recursive: true });
await writeFile(out, await renderApiReference(root));
const missing = await undocumented(root);
if (missing.length > 0) console.warn(`without a comment in proto/ (shown as "—"): ${missing.join(", ")}`);
console.log(`wrote ${out}`);
if (values.out === undefined) {
  const page = join(root, "docs/configuration.md");
  await writeFile(page, withSettings(await readFile(page, "utf8"), renderSettings(settingGroups)));
  console.log(`wrote ${page}`);
}
