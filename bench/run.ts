// Runs one benchmark by name: `npm run bench -- analytics`, `npm run bench -- track --seconds 20`.
const benches: Record<string, (args: readonly string[]) => Promise<void>> = {
  analytics: async () => (await import("./analytics.js")).run(),
  track: async (args) => (await import("./track.js")).run(args),
  postback: async () => (await import("./postback.js")).run(),
  seen: async (args) => (await import("./seen.js")).run(args),
  ingest: async () => (await import("./ingest.js")).run(),
  jobs: async (args) => (await import("./jobs.js")).run(args),
  console: async (args) => (await import("./console.js")).run(args),
};

const name = process.argv[2] ?? "";
const bench = benches[name];
if (bench === undefined) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join("|")}>`);
  process.exit(2);
}
await bench(process.argv.slice(3));
process.exit(process.exitCode ?? 0);
