// Runs one benchmark by name: `npm run bench -- analytics`.
const benches: Record<string, () => Promise<void>> = {
  analytics: async () => (await import("./analytics.js")).run(),
  ingest: async () => (await import("./ingest.js")).run(),
};

const name = process.argv[2] ?? "";
const bench = benches[name];
if (bench === undefined) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join("|")}>`);
  process.exit(2);
}
await bench();
process.exit(0);
