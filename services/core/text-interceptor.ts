import type { Message } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { findBadText } from "./text.js";

/**
 * Request fields whose text a handler checks itself, one item at a time, so
 * that a bad item fails alone instead of failing the whole call. Keyed by
 * method (`funnel.ingest.v1.IngestService/SendBatch`): the top-level field
 * names so checked, or `"all"` when the handler checks the whole request.
 */
export type HandlerTextChecks = Readonly<Record<string, "all" | readonly string[]>>;

/**
 * Refuses, before any handler runs, a request with text Postgres would not
 * store (a NUL, a lone surrogate; see `findBadText`) in any field:
 * `invalid_argument` with `<field path>: <reason>`. Nothing of the request is
 * stored, and it never joins a group commit where it would fail other
 * callers' writes. A server-streaming request is checked as it is read.
 * Fields in `handled` are left to their handlers.
 */
export function createTextInterceptor(handled: HandlerTextChecks = {}): Interceptor {
  const skipped = new Map(Object.entries(handled).map(([method, fields]) => [method, fields === "all" ? "all" : new Set(fields)] as const));
  return (next) => async (req) => {
    const skip = skipped.get(`${req.service.typeName}/${req.method.name}`);
    if (skip === "all") return next(req);
    const check = (message: Message): void => {
      const violation = findBadText(req.method.input, message, skip);
      if (violation !== undefined) throw new ConnectError(`${violation.path}: ${violation.reason}`, Code.InvalidArgument);
    };
    if (!req.stream) {
      check(req.message);
      return next(req);
    }
    const messages = req.message;
    return next({
      ...req,
      message: (async function* checked() {
        for await (const message of messages) {
          check(message);
          yield message;
        }
      })(),
    });
  };
}
