import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { checkText, textProblem } from "../../services/core/text.js";

describe("text Postgres can store", () => {
  it("refuses a NUL, a lone surrogate of either half, and more characters (code points) than allowed", () => {
    expect(textProblem("plain, ümlaut, 😀")).toBeUndefined();
    expect(textProblem("")).toBeUndefined();
    expect(textProblem("a\u0000b")).toBe("contains a NUL character");
    expect(textProblem("a\ud800b")).toBe("contains a lone surrogate (not valid Unicode)");
    expect(textProblem("a\udc00")).toBe("contains a lone surrogate (not valid Unicode)");
    // The two halves in the wrong order are two lone surrogates.
    expect(textProblem("\ude00\ud83d")).toBe("contains a lone surrogate (not valid Unicode)");
    // Two code units, one character.
    expect(textProblem("😀😀", 2)).toBeUndefined();
    expect(textProblem("😀😀😀", 2)).toBe("must have at most 2 characters, got 3");
    expect(textProblem("abc", 3)).toBeUndefined();
    expect(textProblem("abcd", 3)).toBe("must have at most 3 characters, got 4");
    expect(textProblem("", 0)).toBeUndefined();
    expect(textProblem("a", 0)).toBe("must have at most 0 characters, got 1");
  });

  it("names a NUL before a length, whichever comes first in the text", () => {
    expect(textProblem(`${"x".repeat(10)}\u0000`, 5)).toBe("contains a NUL character");
    expect(textProblem("\ud800".repeat(10), 5)).toBe("contains a lone surrogate (not valid Unicode)");
  });

  it("checkText returns good text and refuses bad text as invalid_argument naming the field", () => {
    expect(checkText("fine", "event.name", 10)).toBe("fine");
    const refusal = (() => {
      try {
        checkText("a\u0000", "event.name");
      } catch (error) {
        return error;
      }
      return undefined;
    })();
    expect(refusal).toBeInstanceOf(ConnectError);
    expect([(refusal as ConnectError).code, (refusal as ConnectError).rawMessage]).toEqual([Code.InvalidArgument, "event.name: contains a NUL character"]);
    expect(() => checkText("toolong", "tag", 3)).toThrow("tag: must have at most 3 characters, got 7");
  });
});
