import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Why Postgres would refuse `value` as text, or undefined when it takes it:
 * a NUL character (no text type holds one), a lone UTF-16 surrogate (it has
 * no UTF-8 form: `jsonb` refuses its `\ud800` escape, and a `text` parameter
 * silently becomes U+FFFD), or, when `maxLength` is given, more characters
 * (Unicode code points) than that.
 */
export function textProblem(value: string, maxLength?: number): string | undefined {
  if (value.includes("\u0000")) return "contains a NUL character";
  if (!value.isWellFormed()) return "contains a lone surrogate (not valid Unicode)";
  // Code units bound code points from above: count the latter only when needed.
  if (maxLength !== undefined && value.length > maxLength) {
    const length = [...value].length;
    if (length > maxLength) return `must have at most ${maxLength} characters, got ${length}`;
  }
  return undefined;
}

/**
 * Returns `value` when Postgres can store it as text ({@link textProblem});
 * otherwise throws an `invalid_argument` ConnectError `<field>: <reason>`.
 */
export function checkText(value: string, field: string, maxLength?: number): string {
  const problem = textProblem(value, maxLength);
  if (problem !== undefined) throw new ConnectError(`${field}: ${problem}`, Code.InvalidArgument);
  return value;
}
