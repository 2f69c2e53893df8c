import { describe, expect, it } from "vitest";
import {
  boolean,
  ConfigError,
  decimal,
  defineSettings,
  deprecationNotices,
  duration,
  identifier,
  integer,
  type Kind,
  list,
  oneOf,
  path,
  readSettings,
  secret,
  setting,
  url,
} from "../../services/core/settings.js";

/** What `kind` reads from `text`, and the problems it reports. */
function read<T>(kind: Kind<T>, text: string, cwd = "/srv"): { value: T; problems: string[] } {
  const problems: string[] = [];
  const value = kind.read(text, { cwd, problem: (reason) => problems.push(reason) });
  return { value, problems };
}

/** The problems of reading `text`, or [] when it is accepted. */
const problems = <T>(kind: Kind<T>, text: string): string[] => read(kind, text).problems;

describe("setting kinds", () => {
  it("integer: digits only, within its bounds", () => {
    const port = integer(0, 65_535);
    expect(read(port, "8080")).toEqual({ value: 8080, problems: [] });
    expect(read(port, "0").value).toBe(0);
    for (const text of ["-1", "65536", "1e3", "0x10", "8080.0", "80 80", "+1"]) {
      expect(problems(port, text), text).toEqual([`must be an integer from 0 to 65535, got ${JSON.stringify(text)}`]);
    }
    expect(integer(1, 10, "connections").values).toBe("1–10 connections");
  });

  it("decimal: a plain decimal number within its bounds", () => {
    const ratio = decimal(0, 1);
    expect(["0", "1", "0.5", ".5", "1.", "0.000"].map((text) => read(ratio, text))).toEqual([0, 1, 0.5, 0.5, 1, 0].map((value) => ({ value, problems: [] })));
    for (const text of ["1.01", "-0.5", "NaN", "Infinity", "1e-1", "0,5", "."]) {
      expect(problems(ratio, text), text).toEqual([`must be a number from 0 to 1, got ${JSON.stringify(text)}`]);
    }
  });

  it("duration: a bare number counts its bare unit, a unit is converted, and the value must be whole in the unit read into", () => {
    const seconds = duration({ unit: "s", min: "1s", max: "10m" });
    expect(seconds.values).toBe("1s–10m");
    expect(["5", "90s", "2m", "1.5m", "1500ms", "10m"].map((text) => read(seconds, text).value)).toEqual([5, 90, 120, 90, 1.5, 600]);
    expect(problems(seconds, "1500ms")).toEqual(['must be a whole number of seconds, got "1500ms"']);
    expect(problems(seconds, "0.5")).toEqual([
      'must be a duration from 1s to 10m (a number of seconds, or with a unit: 250ms, 90s, 15m, 12h, 30d), got "0.5"',
    ]);
    expect(problems(seconds, "11m")).toHaveLength(1);
    expect(problems(seconds, "soon")).toHaveLength(1);
    expect(read(seconds, "-5s")).toEqual({ value: 0, problems: [expect.stringMatching(/^must be a duration from 1s to 10m /) as unknown] });

    const millis = duration({ unit: "ms", min: "10ms", max: "1m", bare: "ms" });
    expect(read(millis, "750")).toEqual({ value: 750, problems: [] });
    expect(read(millis, "2s")).toEqual({ value: 2_000, problems: [] });
    expect(problems(millis, "5")).toEqual(['must be a duration from 10ms to 1m (a number of milliseconds, or with a unit: 250ms, 90s, 15m, 12h, 30d), got "5"']);

    const days = duration({ unit: "d", min: "0", max: "3650d" });
    expect(days.values).toBe("0–3650d");
    expect(read(days, "30d").value).toBe(30);
    expect(problems(days, "36h")).toEqual(['must be a whole number of days, got "36h"']);
    expect(() => duration({ unit: "s", min: "1x", max: "1m" })).toThrow("invalid duration bounds 1x, 1m");
  });

  it("boolean: true, false, 1 or 0 in any case, nothing else", () => {
    expect(["true", "TRUE", "1", "false", "False", "0"].map((text) => read(boolean, text))).toEqual(
      [true, true, true, false, false, false].map((value) => ({ value, problems: [] })),
    );
    for (const text of ["yes", "on", "2", "t"]) expect(problems(boolean, text), text).toEqual([`must be true or false, got ${JSON.stringify(text)}`]);
  });

  it("oneOf: one of its choices in any case, read in lower case", () => {
    const level = oneOf(["debug", "info", "warn"]);
    expect(level.values).toBe("`debug`, `info`, `warn`");
    expect(read(level, "INFO")).toEqual({ value: "info", problems: [] });
    expect(problems(level, "Loud")).toEqual(['must be one of debug, info, warn, got "loud"']);
  });

  it("url: a URL of its schemes, kept as written, never quoting back more than the scheme", () => {
    const database = url(["postgres:", "postgresql:"]);
    expect(read(database, "postgres://u:p@db:5432/funnel")).toEqual({ value: "postgres://u:p@db:5432/funnel", problems: [] });
    const wrong = problems(database, "mysql://root:hunter2@db/funnel");
    expect(wrong).toEqual(['scheme must be postgres: or postgresql:, got "mysql:"']);
    expect(wrong.join()).not.toContain("hunter2");
    expect(problems(database, "db:5432")).toEqual(['scheme must be postgres: or postgresql:, got "db:"']);
    expect(problems(database, "not a url")).toEqual(["not a valid URL"]);
  });

  it("identifier: safe to put in DDL", () => {
    expect(problems(identifier, "funnel_2")).toEqual([]);
    expect(problems(identifier, "_x")).toEqual([]);
    expect(problems(identifier, "a".repeat(63))).toEqual([]);
    for (const text of ["a".repeat(64), "2fast", "a-b", "a b", "a;DROP", "ü"]) {
      expect(problems(identifier, text), text).toEqual([expect.stringMatching(/^must be a plain identifier \(letters, digits, _\), got /) as unknown]);
    }
  });

  it("secret: at least 16 characters, never quoted back", () => {
    expect(problems(secret, "0123456789abcdef")).toEqual([]);
    expect(problems(secret, "hunter2")).toEqual(["must be at least 16 characters"]);
  });

  it("path: relative paths resolved against the working directory", () => {
    expect(read(path, "data", "/srv/funnel").value).toBe("/srv/funnel/data");
    expect(read(path, "../x", "/srv/funnel").value).toBe("/srv/x");
    expect(read(path, "/var/lib/funnel", "/srv/funnel").value).toBe("/var/lib/funnel");
  });

  it("list: comma-separated, blank entries dropped, each entry checked", () => {
    const origins = list("origins", (entry) => (entry.startsWith("https://") || entry === "*" ? undefined : `"${entry}" is not an https origin`));
    expect(read(origins, " https://a.example , ,*,")).toEqual({ value: ["https://a.example", "*"], problems: [] });
    expect(problems(origins, "http://a.example,https://b.example,ftp://c")).toEqual(['"http://a.example" is not an https origin', '"ftp://c" is not an https origin']);
  });

  it("quotes at most 100 characters of a bad value, and escapes control characters", () => {
    expect(problems(integer(0, 1), "9".repeat(10_000))).toEqual([`must be an integer from 0 to 1, got "${"9".repeat(100)}…"`]);
    expect(problems(oneOf(["a"]), "b\n\u0000c")).toEqual(['must be one of a, got "b\\n\\u0000c"']);
  });
});

describe("settings", () => {
  const group = defineSettings({
    owner: "test",
    title: "Test",
    settings: {
      port: setting({ variable: "TEST_PORT", kind: integer(1, 65_535), default: "8080", doc: "The port." }),
      timeoutMs: setting({
        variable: "TEST_TIMEOUT_SECONDS",
        kind: duration({ unit: "ms", min: "10ms", max: "1m" }),
        default: "5",
        doc: "The timeout.",
        deprecatedNames: [{ variable: "TEST_TIMEOUT_MS", kind: duration({ unit: "ms", min: "10ms", max: "1m", bare: "ms" }), note: "a bare number counts milliseconds" }],
      }),
      token: setting({ variable: "TEST_TOKEN", kind: secret, doc: "A token." }),
      level: setting({ variable: "TEST_LEVEL", kind: oneOf(["low", "high"]), default: "low", doc: "A level." }),
    },
    check: (values) => (values.level === "high" && values.token === undefined ? ["TEST_TOKEN: required when TEST_LEVEL is high"] : []),
  });
  const parse = (env: Record<string, string | undefined>) => readSettings([group], env, "/srv");
  const failure = (env: Record<string, string | undefined>): readonly string[] => {
    try {
      parse(env);
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    throw new Error("the environment was accepted");
  };

  it("reads defaults, set values and trimmed values into one frozen object; an empty variable is unset", () => {
    const defaults = parse({});
    expect(defaults).toEqual({ port: 8080, timeoutMs: 5_000, token: undefined, level: "low" });
    expect(Object.isFrozen(defaults)).toBe(true);
    expect(parse({ TEST_PORT: " 9090 ", TEST_TIMEOUT_SECONDS: "250ms", TEST_LEVEL: "HIGH", TEST_TOKEN: "0123456789abcdef" })).toEqual({
      port: 9090,
      timeoutMs: 250,
      token: "0123456789abcdef",
      level: "high",
    });
    expect(parse({ TEST_PORT: "", TEST_TOKEN: "   " })).toEqual(defaults);
    // Only the declared variables are read.
    expect(Object.keys(parse({ OTHER: "1", PORT: "1" }))).toEqual(["port", "timeoutMs", "token", "level"]);
  });

  it("reads a deprecated name with its own kind, says what replaces it, and refuses both names at once", () => {
    expect(parse({ TEST_TIMEOUT_MS: "750" }).timeoutMs).toBe(750);
    expect(deprecationNotices([group], { TEST_TIMEOUT_MS: "750" })).toEqual([
      "TEST_TIMEOUT_MS is deprecated: set TEST_TIMEOUT_SECONDS instead (a bare number counts milliseconds)",
    ]);
    expect(deprecationNotices([group], { TEST_TIMEOUT_SECONDS: "1", TEST_TIMEOUT_MS: "" })).toEqual([]);
    expect(failure({ TEST_TIMEOUT_SECONDS: "1", TEST_TIMEOUT_MS: "1000" })).toEqual([
      "TEST_TIMEOUT_MS: the deprecated name of TEST_TIMEOUT_SECONDS, and TEST_TIMEOUT_SECONDS is set too; keep TEST_TIMEOUT_SECONDS alone",
    ]);
    // A bad value under the old name is reported under the old name.
    expect(failure({ TEST_TIMEOUT_MS: "5" })).toEqual([expect.stringMatching(/^TEST_TIMEOUT_MS: must be a duration from 10ms to 1m \(a number of milliseconds/) as unknown]);
  });

  it("reports every problem at once, each naming its variable, and checks the rules between values on the defaults of bad ones", () => {
    const found = failure({ TEST_PORT: "0", TEST_TIMEOUT_SECONDS: "2h", TEST_TOKEN: "short", TEST_LEVEL: "high" });
    expect(found).toEqual([
      'TEST_PORT: must be an integer from 1 to 65535, got "0"',
      expect.stringMatching(/^TEST_TIMEOUT_SECONDS: must be a duration from 10ms to 1m /) as unknown,
      "TEST_TOKEN: must be at least 16 characters",
      // The bad token counts as unset: the rule reports what the operator must fix.
      "TEST_TOKEN: required when TEST_LEVEL is high",
    ]);
    let error: unknown;
    try {
      parse({ TEST_TOKEN: "short-secret!" });
    } catch (caught) {
      error = caught;
    }
    expect((error as ConfigError).message).toBe("invalid configuration:\n  - TEST_TOKEN: must be at least 16 characters");
    expect((error as ConfigError).message).not.toContain("short-secret");
  });

  it("fails loudly on a default its own kind refuses", () => {
    const broken = defineSettings({ owner: "test", title: "Broken", settings: { port: setting({ variable: "BROKEN_PORT", kind: integer(1, 10), default: "99", doc: "x" }) } });
    expect(() => readSettings([broken], {}, "/")).toThrow('the default of BROKEN_PORT is invalid: must be an integer from 1 to 10, got "99"');
    expect(readSettings([broken], { BROKEN_PORT: "3" }, "/")).toEqual({ port: 3 });
  });
});
