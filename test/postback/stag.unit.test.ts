import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { MAX_PARTNER_ID_LENGTH, MAX_STAG_LENGTH, parseStag } from "../../services/postback/stag.js";

/** The code and message `parseStag` refuses `value` with. */
function refusal(value: string, field?: string): [Code, string] {
  try {
    parseStag(value, field);
  } catch (error) {
    if (error instanceof ConnectError) return [error.code, error.rawMessage];
    throw error;
  }
  throw new Error(`parseStag accepted ${JSON.stringify(value)}`);
}

describe("stag", () => {
  it("splits at the first _: the partner id before it, the click id (further _ included) after it", () => {
    expect(parseStag("acme_click-1")).toEqual({ value: "acme_click-1", partnerId: "acme", clickId: "click-1" });
    expect(parseStag("acme__a_b_")).toEqual({ value: "acme__a_b_", partnerId: "acme", clickId: "_a_b_" });
    expect(parseStag("a_~!#$%&'()*+,-./:;<=>?@[]^`{|}\"\\")).toMatchObject({ partnerId: "a", clickId: "~!#$%&'()*+,-./:;<=>?@[]^`{|}\"\\" });
  });

  it("refuses what is not partnerId_clickId as invalid_argument, naming the field", () => {
    expect(refusal("")).toEqual([Code.InvalidArgument, "stag: required (partnerId_clickId)"]);
    expect(refusal("", "download.stag")).toEqual([Code.InvalidArgument, "download.stag: required (partnerId_clickId)"]);
    expect(refusal("acme")).toEqual([Code.InvalidArgument, 'stag: "acme" has no "_" between partner id and click id']);
    expect(refusal("_click")).toEqual([Code.InvalidArgument, 'stag: "_click" has an empty partner id']);
    expect(refusal("acme_")).toEqual([Code.InvalidArgument, 'stag: "acme_" has an empty click id']);
  });

  it("takes printable ASCII only: no space, control character or anything beyond ASCII", () => {
    for (const value of ["acme_a b", "acme_a\tb", "acme_\u0000", "acme_\u007f", "acme_é", "acme_😀", "acme_\ud800"]) {
      expect(refusal(value), JSON.stringify(value)).toEqual([Code.InvalidArgument, "stag: only printable ASCII without spaces is allowed"]);
    }
  });

  it("bounds the stag and its partner id, and checks the length before quoting anything back", () => {
    const partner = "p".repeat(MAX_PARTNER_ID_LENGTH);
    expect(parseStag(`${partner}_c`).partnerId).toBe(partner);
    expect(refusal(`${partner}p_c`)).toEqual([Code.InvalidArgument, `stag: partner id longer than ${MAX_PARTNER_ID_LENGTH} characters`]);
    expect(parseStag(`a_${"c".repeat(MAX_STAG_LENGTH - 2)}`).value).toHaveLength(MAX_STAG_LENGTH);
    expect(refusal(`a_${"c".repeat(MAX_STAG_LENGTH - 1)}`)).toEqual([Code.InvalidArgument, `stag: longer than ${MAX_STAG_LENGTH} characters`]);
    expect(refusal("x".repeat(1_000_000))).toEqual([Code.InvalidArgument, `stag: longer than ${MAX_STAG_LENGTH} characters`]);
  });
});
