import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { create, createFileRegistry, type DescMessage, setExtension } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FieldOptionsSchema,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { field as fieldRules, FieldRulesSchema, file_funnel_validate_v1_validate } from "../../gen/funnel/validate/v1/validate_pb.js";
import { startApp, type App } from "../../services/app.js";
import { splitStatements } from "../../services/core/migrate.js";
import { createIngestModule } from "../../services/ingest/module.js";
import { defineEventTypes, eventTypes, type EventType } from "../../services/ingest/registry.js";
import { addColumnSql, eventColumns, migrationSql } from "../../services/ingest/tables.js";
import { callIngest, clickhouseRows, drained } from "../support/ingest.js";
import { testConfig } from "../support/stores.js";

const root = new URL("../..", import.meta.url).pathname;

/**
 * What `message TrailerShare { … }` in a .proto compiles to: a throwaway event
 * type built at run time, with its rules declared as field options.
 */
function trailerShareMessage(): DescMessage {
  const rules = (init: Parameters<typeof create<typeof FieldRulesSchema>>[1]) => {
    const options = create(FieldOptionsSchema);
    setExtension(options, fieldRules, create(FieldRulesSchema, init));
    return options;
  };
  const file = create(FileDescriptorProtoSchema, {
    name: "funnel/throwaway/v1/throwaway.proto",
    package: "funnel.throwaway.v1",
    syntax: "proto3",
    dependency: ["funnel/validate/v1/validate.proto"],
    messageType: [
      {
        name: "TrailerShare",
        field: [
          { name: "trailer_id", jsonName: "trailerId", number: 1, label: Label.OPTIONAL, type: Type.STRING, options: rules({ required: true, uuid: true }) },
          { name: "position_ms", jsonName: "positionMs", number: 2, label: Label.OPTIONAL, type: Type.INT64, options: rules({ required: true, min: 0n }) },
          { name: "channels", jsonName: "channels", number: 3, label: Label.REPEATED, type: Type.STRING, options: rules({ maxLen: 16 }) },
          { name: "rating", jsonName: "rating", number: 4, label: Label.OPTIONAL, type: Type.DOUBLE, proto3Optional: true, oneofIndex: 0 },
          { name: "muted", jsonName: "muted", number: 5, label: Label.OPTIONAL, type: Type.BOOL },
        ],
        oneofDecl: [{ name: "_rating" }],
      },
    ],
  });
  const registry = createFileRegistry(file, (name) => (name === "funnel/validate/v1/validate.proto" ? file_funnel_validate_v1_validate : undefined));
  const message = registry.getMessage("funnel.throwaway.v1.TrailerShare");
  if (message === undefined) throw new Error("TrailerShare did not build");
  return message;
}

describe("adding an event type", () => {
  let app: App;
  const throwaway: EventType = { name: "trailer_share", data: trailerShareMessage() };

  beforeAll(async () => {
    // Step 2 of docs/ingest.md, "Adding a type": one registry entry next to the others.
    const types = defineEventTypes([...eventTypes.values(), throwaway]);
    app = await startApp({ config: await testConfig(), roles: ["api", "worker"], modules: [createIngestModule({ types })] });
    // Step 3: the generated migration, applied as the runtime applies migrations.
    for (const statement of splitStatements(migrationSql([throwaway], false).replaceAll("{db}", app.clickhouse.database))) {
      await app.clickhouse.client.command({ query: statement });
    }
  });
  afterAll(async () => {
    await app.stop();
  });

  it("creates the table with one column per field, typed from the message and its rules", async () => {
    const described = await app.clickhouse.client.query({ query: `DESCRIBE TABLE ${app.clickhouse.database}.trailer_share`, format: "JSONEachRow" });
    const columns = (await described.json<{ name: string; type: string }>()).map(({ name, type }) => `${name} ${type}`);
    expect(columns).toEqual(eventColumns(throwaway).map(({ name, type }) => `${name} ${type}`));
    expect(columns).toEqual(expect.arrayContaining(["trailer_id UUID", "position_ms Int64", "channels Array(String)", "rating Nullable(Float64)", "muted Bool"]));
  });

  it("takes events of the new type into their table and enforces the declared rules", async () => {
    const trailerId = "5d9a8f6e-1c2b-4a3d-9e8f-7a6b5c4d3e2f";
    const { status, body } = await callIngest(app, "Send", {
      event: "trailer_share",
      data: { trailer_id: trailerId, position_ms: "9007199254740993", channels: ["telegram", "mail"], muted: true },
    });
    expect(status).toBe(200);
    const missing = await callIngest(app, "Send", { event: "trailer_share", data: { trailer_id: trailerId } });
    expect(missing.body).toMatchObject({ code: "invalid_argument", message: "data.position_ms: is required" });
    const tooLong = await callIngest(app, "Send", { event: "trailer_share", data: { trailer_id: trailerId, position_ms: 1, channels: ["x".repeat(17)] } });
    expect(tooLong.body).toMatchObject({ code: "invalid_argument", message: "data.channels[0]: must have at most 16 characters, got 17" });
    const negative = await callIngest(app, "Send", { event: "trailer_share", data: { trailer_id: trailerId, position_ms: -5 } });
    expect(negative.body).toMatchObject({ code: "invalid_argument", message: "data.position_ms: must be at least 0, got -5" });
    await drained(app);
    const rows = await clickhouseRows(app, "trailer_share");
    expect(rows).toMatchObject([
      { event_id: body.eventId, trailer_id: trailerId, channels: ["telegram", "mail"], rating: null, muted: true, user_id: "anonymous" },
    ]);
    // 64-bit integers keep every digit on the way (JSON strings, never doubles).
    const exact = await app.clickhouse.client.query({ query: `SELECT toString(position_ms) AS p FROM ${app.clickhouse.database}.trailer_share`, format: "JSONEachRow" });
    expect(await exact.json()).toEqual([{ p: "9007199254740993" }]);
  });

  it("writes the migration with `npm run ingest:migration`, numbered after the last one", async () => {
    const dir = await mkdtemp(join(tmpdir(), "funnel-migrations-"));
    const script = ["--import", "tsx", join(root, "services/ingest/generate-migration.ts")];
    const run = promisify(execFile);
    await run(process.execPath, [...script, "video_complete", "--dir", dir], { cwd: root });
    await run(process.execPath, [...script, "search_filter", "page_view", "--dir", dir], { cwd: root });
    expect((await readdir(dir)).sort()).toEqual(["0001_ingest_video_complete.sql", "0002_ingest_types.sql"]);
    expect(await readFile(join(dir, "0001_ingest_video_complete.sql"), "utf8")).toBe(migrationSql([eventTypes.get("video_complete")!], false));
    // A new envelope column: one ALTER per event table, the column in its place.
    await run(process.execPath, [...script, "--column", "anonymous_id", "--dir", dir], { cwd: root });
    expect(await readFile(join(dir, "0003_ingest_anonymous_id.sql"), "utf8")).toBe(addColumnSql([...eventTypes.values()], "anonymous_id"));
    expect(addColumnSql([eventTypes.get("video_complete")!], "anonymous_id")).toMatch(/^ALTER TABLE \{db\}\.video_complete ADD COLUMN IF NOT EXISTS anonymous_id Nullable\(UUID\) AFTER seq;$/m);
    const failed = await run(process.execPath, [...script, "trailer_share", "--dir", dir], { cwd: root }).catch((error: unknown) => error as { code: number; stderr: string });
    expect(failed).toMatchObject({ code: 2 });
    expect((failed as { stderr: string }).stderr).toMatch(/unknown event type trailer_share: add its message to ingest.proto/);
  });
});
