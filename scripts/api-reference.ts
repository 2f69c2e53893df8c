import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { createFileRegistry, fromBinary, ScalarType, type DescEnum, type DescField, type DescFile, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { getComments, getPackageComments } from "@bufbuild/protoplugin";
import { Code } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";

const run = promisify(execFile);
/** This repository's buf, whichever tree is documented. */
const buf = new URL("../node_modules/.bin/buf", import.meta.url).pathname;

/** What Funnel means by each status code it returns; the rest are never returned on purpose. */
const codeMeanings: Partial<Record<Code, string>> = {
  [Code.InvalidArgument]:
    "The request is malformed; the message names the field and the reason (`partner.install.headers.x-id: contains a NUL character`). Text no store can hold, a NUL character or a lone UTF-16 surrogate, is refused in every string, map key and `Struct` value; so are bytes that do not parse as the method's message (in any protocol), a JSON body that is not UTF-8, a JSON key the message does not have (`evnt_id: unknown field`, so a misspelled field is never silently dropped; proto names and JSON names are both taken), a `Struct` nested deeper than 32 levels and a `Timestamp` outside 0001-01-01..9999-12-31. The error carries a `google.rpc.BadRequest` detail with one field violation (`field`: the path, `description`: the reason) per refused field. Nothing was stored. Do not retry unchanged.",
  [Code.NotFound]: "The named object does not exist.",
  [Code.AlreadyExists]: "The object exists already.",
  [Code.FailedPrecondition]: "The request is valid but the system is not in a state to carry it out.",
  [Code.Unauthenticated]: "An admin method was called without `authorization: Bearer <FUNNEL_ADMIN_TOKEN>`, or with a wrong token.",
  [Code.PermissionDenied]: "The caller is known but may not do this.",
  [Code.ResourceExhausted]: "A message is larger than the 4 MiB limit, or a rate limit was hit.",
  [Code.Unavailable]: "A store (Postgres, ClickHouse) cannot be reached right now. Nothing was stored; retry with backoff.",
  [Code.DeadlineExceeded]: "The caller's deadline passed before the answer.",
  [Code.Internal]: "An unexpected failure; the server logged it with its cause. The message carries no detail.",
  [Code.Unimplemented]: "No such service or method (check the path and the package version; gRPC and gRPC-Web answer status 12, Connect HTTP 404), a compression the server does not know, or a gRPC unary call without exactly one request message.",
};

/** The page whose "HTTP endpoints" table lists the plain routes; it sits next to the reference. */
const routesPage = "docs/clients.md";

/** A plain HTTP route, as the "HTTP endpoints" table of the clients page lists it. */
interface Route {
  readonly route: string;
  readonly answer: string;
}

/** The rows of the clients page's "HTTP endpoints" table, its own anchors made links to that page. */
async function documentedRoutes(root: string): Promise<Route[]> {
  const page = await readFile(join(root, routesPage), "utf8");
  const section = page.split(/^## HTTP endpoints$/m)[1]?.split(/^## /m)[0];
  if (section === undefined) throw new Error(`${routesPage} has no "## HTTP endpoints" section`);
  const routes: Route[] = [];
  for (const line of section.split("\n")) {
    const match = /^\| `([^`]+)` \| (.+) \|$/.exec(line);
    if (match === null) continue;
    routes.push({ route: match[1] ?? "", answer: (match[2] ?? "").replace(/\]\(#/g, "](clients.md#") });
  }
  if (routes.length === 0) throw new Error(`${routesPage}: the HTTP endpoints table has no rows`);
  return routes;
}

/**
 * Funnel's own .proto files, under proto/funnel/, relative to proto/ (as buf
 * names them). gRPC's reflection and health protocols and Google's error
 * details beside them are documented by their owners; docs/clients.md links to them.
 */
async function protoFiles(root: string): Promise<string[]> {
  const dir = join(root, "proto");
  const entries = await readdir(join(dir, "funnel"), { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith(".proto"))
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

/** The descriptors of every file under proto/, with their comments (`buf build`). */
async function buildDescriptors(root: string): Promise<DescFile[]> {
  const { stdout } = await run(buf, ["build", "--as-file-descriptor-set", "-o", "-#format=binpb"], {
    cwd: root,
    encoding: "buffer",
    maxBuffer: 64 * 1024 * 1024,
  });
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, stdout));
  return (await protoFiles(root)).map((name) => {
    const file = registry.getFile(name);
    if (file === undefined) throw new Error(`buf build left out ${name}`);
    return file;
  });
}

/** A linter's directive (`buf:lint:ignore RPC_REQUEST_STANDARD_NAME`): meant for buf, not for readers. */
const lintDirective = /^\s*buf:lint:/;

/** A comment as written, without the space after `//` and without lint directives. */
function clean(comment: string | undefined): string {
  if (comment === undefined) return "";
  return comment
    .split("\n")
    .filter((line) => !lintDirective.test(line))
    .map((line) => (line.startsWith(" ") ? line.slice(1) : line))
    .join("\n")
    .trim();
}

/** A comment as Markdown: lines indented like code (the plain routes in a file comment) become a code block. */
function prose(comment: string): string {
  const out: string[] = [];
  let code: string[] = [];
  const flush = () => {
    let blank = 0;
    while (code.at(-1) === "") {
      code.pop();
      blank += 1;
    }
    if (code.length > 0) out.push("```", ...code.map((line) => line.slice(2)), "```", ...Array<string>(blank).fill(""));
    code = [];
  };
  for (const line of comment.split("\n")) {
    if (line.startsWith("  ") || (code.length > 0 && line === "")) code.push(line);
    else {
      flush();
      out.push(line);
    }
  }
  flush();
  return out.join("\n");
}

/** One line for a table cell. */
function cell(comment: string): string {
  return comment === "" ? "—" : comment.replace(/\n+/g, " ").replace(/\|/g, "\\|");
}

const anchor = (typeName: string) => typeName.toLowerCase().replace(/[^a-z0-9]+/g, "-");

/** Where a message or enum is described: here, or in the protobuf documentation. */
function typeLink(desc: DescMessage | DescEnum, local: ReadonlySet<string>): string {
  if (local.has(desc.typeName)) return `[${desc.name}](#${anchor(desc.typeName)})`;
  if (desc.typeName.startsWith("google.protobuf.")) {
    return `[${desc.typeName}](https://protobuf.dev/reference/protobuf/google.protobuf/#${desc.name.toLowerCase()})`;
  }
  return `\`${desc.typeName}\``;
}

const scalarNames: Record<ScalarType, string> = {
  [ScalarType.DOUBLE]: "double",
  [ScalarType.FLOAT]: "float",
  [ScalarType.INT64]: "int64",
  [ScalarType.UINT64]: "uint64",
  [ScalarType.INT32]: "int32",
  [ScalarType.FIXED64]: "fixed64",
  [ScalarType.FIXED32]: "fixed32",
  [ScalarType.BOOL]: "bool",
  [ScalarType.STRING]: "string",
  [ScalarType.BYTES]: "bytes",
  [ScalarType.UINT32]: "uint32",
  [ScalarType.SFIXED32]: "sfixed32",
  [ScalarType.SFIXED64]: "sfixed64",
  [ScalarType.SINT32]: "sint32",
  [ScalarType.SINT64]: "sint64",
};

/** 64-bit integers are strings in proto3 JSON. */
const int64Types = new Set([ScalarType.INT64, ScalarType.UINT64, ScalarType.FIXED64, ScalarType.SFIXED64, ScalarType.SINT64]);

function fieldType(field: DescField, local: ReadonlySet<string>): string {
  switch (field.fieldKind) {
    case "scalar":
      return scalarNames[field.scalar];
    case "enum":
      return typeLink(field.enum, local);
    case "message":
      return typeLink(field.message, local);
    case "list":
      return `repeated ${field.listKind === "scalar" ? scalarNames[field.scalar] : typeLink(field.listKind === "enum" ? field.enum : field.message, local)}`;
    case "map": {
      const value = field.mapKind === "scalar" ? scalarNames[field.scalar] : typeLink(field.mapKind === "enum" ? field.enum : field.message, local);
      return `map<${scalarNames[field.mapKey]}, ${value}>`;
    }
  }
}

/** Example JSON values of well-known types, as proto3 JSON writes them. */
const wellKnownExamples: Record<string, unknown> = {
  "google.protobuf.Timestamp": "2026-01-01T00:00:00Z",
  "google.protobuf.Duration": "1.5s",
  "google.protobuf.Struct": {},
  "google.protobuf.Value": null,
  "google.protobuf.Empty": {},
};

function scalarExample(field: DescField, scalar: ScalarType): unknown {
  if (scalar === ScalarType.STRING) return `<${field.jsonName}>`;
  if (scalar === ScalarType.BOOL) return false;
  if (scalar === ScalarType.BYTES) return "";
  return int64Types.has(scalar) ? "0" : 0;
}

/** A request body for the examples: every field once (the first member of a oneof), nested messages two levels deep. */
function exampleOf(message: DescMessage, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const oneofsSeen = new Set<string>();
  for (const field of message.fields) {
    if (field.oneof !== undefined) {
      if (oneofsSeen.has(field.oneof.name)) continue;
      oneofsSeen.add(field.oneof.name);
    }
    const value = (() => {
      switch (field.fieldKind) {
        case "scalar":
          return scalarExample(field, field.scalar);
        case "enum":
          return field.enum.values.find((value) => value.number !== 0)?.name ?? field.enum.values[0]?.name;
        case "message":
          return wellKnownExamples[field.message.typeName] ?? (depth < 2 ? exampleOf(field.message, depth + 1) : {});
        case "list":
          if (field.listKind === "scalar") return [scalarExample(field, field.scalar)];
          if (field.listKind === "enum") return [field.enum.values[0]?.name];
          return [wellKnownExamples[field.message.typeName] ?? (depth < 2 ? exampleOf(field.message, depth + 1) : {})];
        case "map":
          return {};
      }
    })();
    out[field.jsonName] = value;
  }
  return out;
}

/** Status codes a comment mentions (`not_found`, `invalid_argument`, …). */
function mentionedCodes(comment: string): string[] {
  const names = Object.values(Code)
    .filter((value): value is Code => typeof value === "number")
    .map((code) => codeToString(code));
  return names.filter((name) => new RegExp(`\\b${name}\\b`).test(comment));
}

function methodSection(method: DescMethod, local: ReadonlySet<string>): string[] {
  const service = method.parent;
  const path = `/${service.typeName}/${method.name}`;
  const comment = clean(getComments(method).leading);
  const streaming = method.methodKind === "unary" ? "" : ` (${method.methodKind.replace("_", " ")})`;
  const body = JSON.stringify(exampleOf(method.input));
  const codes = mentionedCodes(comment);
  return [
    `#### ${method.name}${streaming}`,
    "",
    ...(comment === "" ? [] : [prose(comment), ""]),
    `\`POST ${path}\` — request ${typeLink(method.input, local)}, response ${typeLink(method.output, local)}.`,
    ...(codes.length === 0 ? [] : ["", `Errors named above: ${codes.map((code) => `\`${code}\``).join(", ")} (see [Errors](#errors)).`]),
    "",
    "```sh",
    `curl -s -X POST "$FUNNEL_URL${path}" \\`,
    `  -H 'content-type: application/json' -H "authorization: Bearer $FUNNEL_ADMIN_TOKEN" \\`,
    `  -d '${body}'`,
    `npx buf curl --schema proto --protocol grpc --http2-prior-knowledge \\`,
    `  -H "authorization: Bearer $FUNNEL_ADMIN_TOKEN" -d '${body}' \\`,
    `  "$FUNNEL_GRPC_URL${path}"`,
    "```",
    "",
  ];
}

function serviceSection(service: DescService, local: ReadonlySet<string>): string[] {
  const comment = clean(getComments(service).leading);
  return [
    `<a id="${anchor(service.typeName)}"></a>`,
    `### ${service.name}`,
    "",
    `\`${service.typeName}\``,
    "",
    ...(comment === "" ? [] : [prose(comment), ""]),
    ...service.methods.flatMap((method) => methodSection(method, local)),
  ];
}

/** Every message and enum of a file, nested ones after their parent. */
function typesOf(file: DescFile): (DescMessage | DescEnum)[] {
  const out: (DescMessage | DescEnum)[] = [];
  const walk = (message: DescMessage) => {
    out.push(message);
    message.nestedMessages.forEach(walk);
    out.push(...message.nestedEnums);
  };
  file.messages.forEach(walk);
  out.push(...file.enums);
  return out;
}

function typeSection(desc: DescMessage | DescEnum, local: ReadonlySet<string>): string[] {
  const comment = clean(getComments(desc).leading);
  // Nested types keep their parent's name: `Outer.Inner`.
  const name = desc.typeName.slice(desc.file.proto.package.length + 1);
  const head = [`<a id="${anchor(desc.typeName)}"></a>`, `#### ${name}`, ""];
  const intro = comment === "" ? [] : [prose(comment), ""];
  if (desc.kind === "enum") {
    return [
      ...head,
      ...intro,
      "| value | number | description |",
      "|---|---|---|",
      ...desc.values.map((value) => `| \`${value.name}\` | ${value.number} | ${cell(clean(getComments(value).leading))} |`),
      "",
    ];
  }
  if (desc.fields.length === 0) return [...head, ...intro, "No fields.", ""];
  return [
    ...head,
    ...intro,
    "| field | JSON | type | description |",
    "|---|---|---|---|",
    ...desc.fields.map((field) => {
      const note = field.oneof !== undefined ? ` (one of \`${field.oneof.name}\`)` : "";
      return `| \`${field.name}\` | \`${field.jsonName}\` | ${fieldType(field, local)} | ${cell(clean(getComments(field).leading))}${note} |`;
    }),
    "",
  ];
}

function errorsSection(): string[] {
  const codes = Object.values(Code).filter((value): value is Code => typeof value === "number" && codeMeanings[value] !== undefined);
  return [
    "## Errors",
    "",
    "A failed call carries a status code and a message. Over Connect the code comes back as the JSON body",
    '`{"code": "invalid_argument", "message": "…"}` with the HTTP status below; over gRPC and gRPC-Web as',
    "`grpc-status` and `grpc-message`. Any method may fail with `unavailable` or `internal`; admin methods",
    "with `unauthenticated`. Plain HTTP routes answer with their own statuses (see [the routes](#plain-http-routes)).",
    "",
    "| code | gRPC | HTTP (Connect) | meaning in Funnel |",
    "|---|---|---|---|",
    ...codes.map((code) => `| \`${codeToString(code)}\` | ${code} | ${codeToHttpStatus(code)} | ${codeMeanings[code]} |`),
    "",
  ];
}

/**
 * The API reference (docs/api.md) for every .proto file under proto/: its
 * services, methods, messages, fields and enums with their comments, the
 * plain HTTP routes of docs/clients.md, the error codes, and examples for curl
 * (Connect JSON) and `buf curl` (gRPC).
 */
export async function renderApiReference(root: string): Promise<string> {
  const files = await buildDescriptors(root);
  const routes = await documentedRoutes(root);
  const local = new Set(files.flatMap((file) => typesOf(file).map((desc) => desc.typeName)));
  const services = files.flatMap((file) => file.services);

  const lines: string[] = [
    "# Funnel API reference",
    "",
    "<!-- Generated by `npm run docs` from the .proto files under proto/ and the HTTP endpoints table of",
    "     clients.md. Do not edit: change the comments there and run it again (a test fails when this is stale). -->",
    "",
    "Every service speaks Connect (JSON or binary over HTTP/1.1 or HTTP/2), gRPC and gRPC-Web, at",
    "`POST /<package>.<Service>/<Method>`. In Connect JSON the body is the request message in",
    "[proto3 JSON](https://protobuf.dev/programming-guides/json/): fields in lowerCamelCase (the proto names",
    "are accepted too), 64-bit integers as strings, timestamps in RFC 3339. Methods that need the admin token",
    "say so; the examples send it always, and other methods ignore it.",
    "",
    "The examples use three variables:",
    "",
    "| variable | `npm start` | `docker compose up` (through nginx) |",
    "|---|---|---|",
    "| `FUNNEL_URL` | `http://127.0.0.1:8080` | `http://localhost:8080` |",
    "| `FUNNEL_GRPC_URL` | `http://127.0.0.1:8080` | `http://localhost:8081` (HTTP/2 cleartext) |",
    "| `FUNNEL_ADMIN_TOKEN` | `$(cat data/admin-token)` | the token the stack was started with |",
    "",
    "`buf curl` reads the schema from `proto/` in a checkout; `npx buf` is this repository's copy.",
    "",
    "## Contents",
    "",
    "- [Plain HTTP routes](#plain-http-routes)",
    "- [Errors](#errors)",
    ...services.flatMap((service) => [
      `- [${service.typeName}](#${anchor(service.typeName)})`,
      ...service.methods.map((method) => `  - ${method.name}`),
    ]),
    "",
    "## Plain HTTP routes",
    "",
    "| route | answer |",
    "|---|---|",
    ...routes.map((route) => `| \`${route.route}\` | ${route.answer} |`),
    "",
    ...errorsSection(),
  ];

  for (const file of files) {
    const comment = clean(getPackageComments(file).leading);
    lines.push(`## ${file.proto.package}`, "", `Source: [\`proto/${file.name}.proto\`](../proto/${file.name}.proto)`, "");
    if (comment !== "") lines.push(prose(comment), "");
    for (const service of file.services) lines.push(...serviceSection(service, local));
    const types = typesOf(file);
    if (types.length > 0) {
      lines.push(`### Messages and enums of ${file.proto.package}`, "");
      for (const desc of types) lines.push(...typeSection(desc, local));
    }
  }
  return `${lines.join("\n").replace(/\n{3,}/g, "\n\n").trimEnd()}\n`;
}

/** Elements without a comment: the reference would show "—" for them. */
export async function undocumented(root: string): Promise<string[]> {
  const missing: string[] = [];
  for (const file of await buildDescriptors(root)) {
    for (const service of file.services) {
      if (clean(getComments(service).leading) === "") missing.push(service.typeName);
      for (const method of service.methods) if (clean(getComments(method).leading) === "") missing.push(`${service.typeName}.${method.name}`);
    }
    for (const desc of typesOf(file)) {
      if (desc.kind === "message") {
        for (const field of desc.fields) if (clean(getComments(field).leading) === "") missing.push(`${desc.typeName}.${field.name}`);
      } else {
        for (const value of desc.values) if (clean(getComments(value).leading) === "") missing.push(`${desc.typeName}.${value.name}`);
      }
    }
  }
  return missing;
}
