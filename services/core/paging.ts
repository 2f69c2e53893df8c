import { createHash } from "node:crypto";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Keyset paging for the List RPCs, one rule for all of them:
 *
 * - Page size: 0 means the RPC's default (each keeps the one its proto documents), 1 to
 *   `MAX_PAGE_SIZE` is taken as is, anything else is `invalid_argument` naming the size field.
 * - Page token: opaque to callers. It is the base64url of a JSON array
 *   `[version, rpc, scope, ...key]`, where `rpc` is the full method name, `scope` a digest
 *   of the request's filters and `key` the sort key of the last row of the previous page,
 *   as strings. A token is accepted only by the RPC that issued it, for a request with the
 *   same filters, and only if every key part passes that RPC's check, so a forged or
 *   foreign token never reaches a query and a token never continues a different listing.
 *   Tokens are short-lived cursors: a change of format bumps the version and older tokens
 *   are refused.
 * - The next page exists when the store returned the one extra row asked for (`size + 1`).
 */

/** Largest page any List RPC serves. */
export const MAX_PAGE_SIZE = 1_000;

const TOKEN_VERSION = 2;
/** Longer tokens are refused before decoding; issued ones are a few hundred characters at most. */
const MAX_TOKEN_LENGTH = 1_024;
const MAX_KEY_PART_LENGTH = 256;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * The digest of a request's filters that its tokens carry: JSON of `filters`
 * (64-bit integers as strings), hashed. Equal filters give equal digests.
 */
function scopeOf(filters: unknown): string {
  const json = JSON.stringify(filters ?? null, (_, value: unknown) => (typeof value === "bigint" ? value.toString() : value));
  return createHash("sha256").update(json).digest("base64url").slice(0, 16);
}

/** A check of one part of a page key, as it comes back out of a token. */
export type KeyPartCheck = (part: string) => boolean;

/** A creation time in whole microseconds since the epoch. */
export const isMicros: KeyPartCheck = (part) => /^\d{1,17}$/.test(part);

/** A time as `Date.prototype.toISOString` writes it. */
export const isIsoTime: KeyPartCheck = (part) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(part) && !Number.isNaN(Date.parse(part));

/** How one List RPC pages. */
export interface PagingSpec<Checks extends readonly KeyPartCheck[]> {
  /** The RPC; its tokens carry its name. */
  readonly method: DescMethod;
  /** The request field holding the page size (`limit` or `page_size`), named in errors. */
  readonly sizeField: string;
  /** The page size when the request asks for 0. */
  readonly defaultSize: number;
  /** How errors describe a size of 0; the default size unless said otherwise. */
  readonly zeroMeans?: string;
  /** Checks of the sort key's parts, in order. */
  readonly key: Checks;
}

/** The sort key of a row: one string per key part. */
export type PageKey<Checks extends readonly KeyPartCheck[]> = { readonly [I in keyof Checks]: string };

/** One RPC's paging: its page size, its token reader and its page cutter. */
export interface Paging<Key extends readonly string[]> {
  /** The page size to serve for a requested size; `invalid_argument` outside 0 to the maximum. */
  size(requested: number): number;
  /**
   * The key to continue after, `undefined` for an empty token;
   * `invalid_argument` for a token this RPC did not issue, or issued for
   * other `filters` (whatever the request filters by, as {@link page} was given them).
   */
  after(token: string, filters?: unknown): Key | undefined;
  /**
   * The first `size` rows of `rows` (fetched with `size + 1`) and the token of
   * the page after them, empty on the last page; the token holds a digest of `filters`.
   */
  page<Row>(rows: readonly Row[], size: number, key: (row: Row) => Key, filters?: unknown): { readonly rows: Row[]; readonly nextPageToken: string };
}

/** The paging of one List RPC. */
export function definePaging<const Checks extends readonly KeyPartCheck[]>(spec: PagingSpec<Checks>): Paging<PageKey<Checks>> {
  const rpc = `${spec.method.parent.typeName}.${spec.method.name}`;
  const zeroMeans = spec.zeroMeans ?? String(spec.defaultSize);
  const refused = () =>
    new ConnectError(`page_token: not a token this service issued for ${spec.method.name}; pass the next_page_token of its previous page, or nothing for the first page`, Code.InvalidArgument);

  const decode = (token: string): unknown => {
    if (token.length > MAX_TOKEN_LENGTH || !BASE64URL.test(token)) return undefined;
    try {
      return JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    } catch {
      return undefined;
    }
  };

  return {
    size(requested) {
      if (!Number.isInteger(requested) || requested < 0 || requested > MAX_PAGE_SIZE) {
        throw new ConnectError(`${spec.sizeField}: must be from 1 to ${MAX_PAGE_SIZE} (0 means ${zeroMeans}), got ${requested}`, Code.InvalidArgument);
      }
      return requested === 0 ? spec.defaultSize : requested;
    },

    after(token, filters) {
      if (token === "") return undefined;
      const value = decode(token);
      if (!Array.isArray(value) || value.length !== spec.key.length + 3 || value[0] !== TOKEN_VERSION || value[1] !== rpc || typeof value[2] !== "string") throw refused();
      if (value[2] !== scopeOf(filters)) {
        throw new ConnectError(
          "page_token: issued for a request with other filters; pass it with the filters of the request that returned it, or start again without a page token",
          Code.InvalidArgument,
        );
      }
      const parts: unknown[] = value.slice(3);
      const valid = parts.every(
        (part, i) => typeof part === "string" && part.length <= MAX_KEY_PART_LENGTH && !part.includes("\u0000") && spec.key[i]?.(part) === true,
      );
      if (!valid) throw refused();
      return parts as unknown as PageKey<Checks>;
    },

    page(rows, size, key, filters) {
      const page = rows.slice(0, size);
      const last = page.at(-1);
      const nextPageToken =
        rows.length > size && last !== undefined ? Buffer.from(JSON.stringify([TOKEN_VERSION, rpc, scopeOf(filters), ...key(last)])).toString("base64url") : "";
      return { rows: page, nextPageToken };
    },
  };
}
