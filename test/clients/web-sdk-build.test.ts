import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { describe, expect, it } from "vitest";
import { IngestService } from "../../gen/funnel/ingest/v1/ingest_pb.js";
import { SeenService } from "../../gen/funnel/seen/v1/seen_pb.js";
import { INGEST_SERVICE, SEEN_SERVICE } from "../../clients/web/src/wire.js";

/** The SDK's size budget: minified and gzipped, as a page would load it. */
const BUDGET_BYTES = 12 * 1024;

describe("web SDK build", () => {
  it(`bundles the whole SDK within ${BUDGET_BYTES / 1024} KB minified and gzipped`, async () => {
    const bundle = await build({ entryPoints: ["clients/web/src/index.ts"], bundle: true, minify: true, format: "esm", platform: "browser", write: false });
    const gzipped = gzipSync(bundle.outputFiles[0]?.contents ?? new Uint8Array(), { level: 9 }).byteLength;
    expect(gzipped).toBeGreaterThan(1024);
    expect(gzipped).toBeLessThanOrEqual(BUDGET_BYTES);
  });

  it("calls the services by the names the generated descriptors give them", () => {
    expect(INGEST_SERVICE).toBe(IngestService.typeName);
    expect(SEEN_SERVICE).toBe(SeenService.typeName);
  });
});
