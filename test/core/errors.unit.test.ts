import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { fieldViolations, isStoreUnavailable, withBadRequest } from "../../services/core/errors.js";

const violations = (message: string) => fieldViolations(message).map(({ field, description }) => ({ field, description }));

describe("field violations of an invalid_argument message", () => {
  it("reads one violation per `path: reason`, joined by `; `", () => {
    expect(violations("partner.id: required")).toEqual([{ field: "partner.id", description: "required" }]);
    expect(violations('partner.id: required; partner.install.headers: "x y" is not a header name; events[3].data.page_type: too long')).toEqual([
      { field: "partner.id", description: "required" },
      { field: "partner.install.headers", description: '"x y" is not a header name' },
      { field: "events[3].data.page_type", description: "too long" },
    ]);
  });

  it("keeps a reason that holds `; ` or `: ` in one piece", () => {
    expect(violations("filters: a; b and c")).toEqual([{ field: "filters", description: "a; b and c" }]);
    expect(violations("url_template: position 3: unknown placeholder {x}")).toEqual([{ field: "url_template", description: "position 3: unknown placeholder {x}" }]);
    expect(violations("partner.install.url_template: position 3: unknown placeholder {x} (known: {stag}, {click_id})")).toEqual([
      { field: "partner.install.url_template", description: "position 3: unknown placeholder {x} (known: {stag}, {click_id})" },
    ]);
  });

  it("reads quoted map keys as one path, even when they hold spaces, `; ` or `: `", () => {
    expect(violations('data["odd key"]: too long; events[3].data["a; b: c"]: not a string')).toEqual([
      { field: 'data["odd key"]', description: "too long" },
      { field: 'events[3].data["a; b: c"]', description: "not a string" },
    ]);
  });

  it("splits a megabyte of hostile text in linear time", () => {
    // Each "; [" could start a path; a bracket that ran on to the end made this quadratic (minutes).
    for (const unit of ["; [", '; ["', "; [1", '; ["\\']) {
      const started = performance.now();
      expect(violations(`a: ${unit.repeat(250_000)}`)[0]?.field).toBe("a");
      expect(performance.now() - started, unit).toBeLessThan(2_000);
    }
  });

  it("gives a message without a path to the request as a whole", () => {
    expect(violations("cannot decode the request body")).toEqual([{ field: "", description: "cannot decode the request body" }]);
    expect(violations(": starts with a colon")).toEqual([{ field: "", description: ": starts with a colon" }]);
  });

  it("adds the BadRequest detail to invalid_argument only, once", () => {
    const invalid = withBadRequest(new ConnectError("tag: required; id: too long", Code.InvalidArgument));
    expect(invalid.findDetails(BadRequestSchema).map((detail) => detail.fieldViolations.map((v) => v.field))).toEqual([["tag", "id"]]);
    expect(withBadRequest(invalid).findDetails(BadRequestSchema)).toHaveLength(1);
    expect(withBadRequest(new ConnectError("id: no partner", Code.NotFound)).details).toEqual([]);
  });
});

describe("which errors mean the store is unavailable", () => {
  const withCode = (code: string, syscall?: string): Error => Object.assign(new Error(`${syscall ?? "query"} ${code}`), { code, syscall, errno: -1 });

  it("connection exceptions, shutdowns and too many connections of Postgres; data errors are the caller's", () => {
    for (const code of ["08000", "08003", "08006", "08001", "57P01", "57P02", "57P03", "53300"]) expect(isStoreUnavailable(withCode(code)), code).toBe(true);
    for (const code of ["22021", "22012", "22P02", "22003", "23505", "42P01", "40001", "57014", "53200"]) expect(isStoreUnavailable(withCode(code)), code).toBe(false);
  });

  it("socket errors of a connection that broke while in use", () => {
    for (const [code, syscall] of [
      ["EPIPE", "write"],
      ["ECONNRESET", "read"],
      ["ETIMEDOUT", "read"],
      ["ETIMEDOUT", "connect"],
      ["EHOSTUNREACH", "connect"],
      ["ENETUNREACH", "connect"],
      ["ECONNABORTED", "read"],
      ["ECONNREFUSED", "connect"],
      ["EAI_AGAIN", "getaddrinfo"],
      // A Unix socket file is missing while the embedded Postgres restarts.
      ["ENOENT", "connect"],
    ] as const) {
      expect(isStoreUnavailable(withCode(code, syscall)), `${syscall} ${code}`).toBe(true);
    }
    // A file that is missing is a bug, not an outage.
    expect(isStoreUnavailable(withCode("ENOENT", "open"))).toBe(false);
  });

  it("the pg driver's messages for a connection that is gone, and nothing else without a code", () => {
    for (const message of ["Connection terminated unexpectedly", "Connection terminated due to connection timeout", "Client has encountered a connection error and is not queryable", "timeout exceeded when trying to connect"]) {
      expect(isStoreUnavailable(new Error(message)), message).toBe(true);
    }
    for (const [what, error] of [
      ["another error", new Error("internal error")],
      ["a TypeError", new TypeError("x is undefined")],
      ["a string", "Connection terminated"],
      ["a numeric code", { code: 8006 }],
      ["an empty object", {}],
      ["null", null],
      ["undefined", undefined],
    ] as const) {
      expect(isStoreUnavailable(error), what).toBe(false);
    }
  });
});
