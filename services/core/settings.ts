import { isAbsolute, resolve } from "node:path";
import { formatDuration, parseDuration } from "./duration.js";

/*
 * The declarative schema of the configuration. A setting is one environment
 * variable: its name, the kind of value it takes (which parses it and says in
 * the docs what it accepts), its default as an operator would write it, its
 * documentation, and any deprecated names it is still read under. A module
 * declares its settings in a group (`defineSettings`) next to its code; the
 * registry in config.ts collects the groups, parses them with `readSettings`,
 * and `npm run docs` renders the same groups into docs/configuration.md.
 *
 * No validation library: every value is one string read once, the checks are
 * the domain's own (CIDR networks, PEM keys, origins, durations), and the
 * kinds below also describe themselves for the generated docs. A schema
 * library would wrap the same checks in callbacks and add a second vocabulary
 * for messages that must name the variable, the accepted values and the value.
 */

/** The environment as `process.env` gives it. */
export type Env = Readonly<Record<string, string | undefined>>;

/** What a kind gets while it reads one variable. */
export interface ReadContext {
  /** The folder relative paths are resolved against. */
  readonly cwd: string;
  /** Reports one thing wrong with the value (the variable's name is prefixed); the default is used instead. */
  problem(reason: string): void;
}

/** One kind of value: how its text is read, and how the docs describe what it accepts. */
export interface Kind<T> {
  /** The accepted values, for the docs' table: `0–65535`, `1s–10m`, `true, false`. */
  readonly values: string;
  /** Reads a set value (trimmed, never empty), calling `context.problem` for what is wrong. */
  read(text: string, context: ReadContext): T;
}

/** An older name a setting is still read under, with the kind that reads it (a bare number may count another unit). */
export interface DeprecatedName<T> {
  readonly variable: string;
  readonly kind: Kind<T>;
  /** How its value differs from the current name's, for the docs (`a bare number counts milliseconds`). */
  readonly note?: string;
}

/** One environment variable, declared with `setting`. */
export interface Setting<T> {
  readonly variable: string;
  /** The accepted values, for the docs. */
  readonly values: string;
  /** The value when the variable is unset, written as an operator would; undefined: the setting is unset. */
  readonly default: string | undefined;
  /** What it does, in Markdown, for the docs' table (links relative to docs/). */
  readonly doc: string;
  readonly deprecatedNames: readonly { readonly variable: string; readonly note?: string | undefined }[];
  /**
   * Reads the variable (or a deprecated name of it) from `env`, adding every
   * problem to `problems`; a bad value gives the default, so that rules between
   * values report only what is wrong.
   */
  read(env: Env, cwd: string, problems: string[]): T;
}

interface SettingSpec<T> {
  readonly variable: string;
  readonly kind: Kind<T>;
  readonly doc: string;
  readonly deprecatedNames?: readonly DeprecatedName<T>[];
}

/** Declares a setting with a default: its value is always there. */
export function setting<T>(spec: SettingSpec<T> & { readonly default: string }): Setting<T>;
/** Declares a setting without a default: its value is undefined when the variable is unset. */
export function setting<T>(spec: SettingSpec<T>): Setting<T | undefined>;
export function setting<T>(spec: SettingSpec<T> & { readonly default?: string }): Setting<T | undefined> {
  const deprecatedNames = spec.deprecatedNames ?? [];
  const fallback = (cwd: string): T | undefined =>
    spec.default === undefined
      ? undefined
      : spec.kind.read(spec.default, {
          cwd,
          problem: (reason) => {
            throw new Error(`the default of ${spec.variable} is invalid: ${reason}`);
          },
        });
  return {
    variable: spec.variable,
    values: spec.kind.values,
    default: spec.default,
    doc: spec.doc,
    deprecatedNames: deprecatedNames.map(({ variable, note }) => ({ variable, note })),
    read(env, cwd, problems) {
      let chosen: { variable: string; kind: Kind<T>; text: string } | undefined;
      for (const candidate of [{ variable: spec.variable, kind: spec.kind }, ...deprecatedNames]) {
        const text = readVariable(env, candidate.variable);
        if (text === undefined) continue;
        if (chosen !== undefined) {
          problems.push(`${candidate.variable}: the deprecated name of ${spec.variable}, and ${chosen.variable} is set too; keep ${spec.variable} alone`);
          continue;
        }
        chosen = { variable: candidate.variable, kind: candidate.kind, text };
      }
      if (chosen === undefined) return fallback(cwd);
      const before = problems.length;
      const { variable } = chosen;
      const value = chosen.kind.read(chosen.text, { cwd, problem: (reason) => problems.push(`${variable}: ${reason}`) });
      return problems.length === before ? value : fallback(cwd);
    },
  };
}

/** Settings by the name of their field in the parsed configuration. */
export type Settings = Readonly<Record<string, Setting<unknown>>>;

/** The parsed values of some settings. */
export type SettingValues<S extends Settings> = { readonly [K in keyof S]: S[K] extends Setting<infer T> ? T : never };

/** The settings one module owns, documented together. */
export interface SettingGroup<S extends Settings = Settings> {
  /** The module that declares and reads them: `services/core`, `services/seen`. */
  readonly owner: string;
  /** The heading of their table in the docs. */
  readonly title: string;
  readonly settings: S;
  /** Rules between the group's values, each broken one a `VARIABLE: reason` problem. */
  check?(values: SettingValues<S>): readonly string[];
}

/** Declares a module's settings (the identity function, for the types). */
export function defineSettings<S extends Settings>(group: SettingGroup<S>): SettingGroup<S> {
  return group;
}

/** The parsed values of several groups, as one object type. */
export type GroupValues<G extends readonly SettingGroup<Settings>[]> = UnionToIntersection<
  { [I in keyof G]: G[I] extends SettingGroup<infer S> ? SettingValues<S> : never }[number]
>;
type UnionToIntersection<U> = (U extends unknown ? (value: U) => void : never) extends (value: infer I) => void ? I : never;

/** Thrown when the environment does not describe a valid configuration. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

/**
 * Throws when two settings share a field or a variable name (a mistake in the
 * declarations, found when the registry is built rather than at parse time).
 */
export function checkDeclarations(groups: readonly SettingGroup[]): void {
  const keys = new Set<string>();
  const variables = new Set<string>();
  for (const group of groups) {
    for (const [key, declared] of Object.entries(group.settings)) {
      if (keys.has(key)) throw new Error(`setting ${key} is declared twice`);
      keys.add(key);
      for (const variable of [declared.variable, ...declared.deprecatedNames.map((name) => name.variable)]) {
        if (variables.has(variable)) throw new Error(`variable ${variable} is declared twice`);
        variables.add(variable);
      }
    }
  }
}

/** Every variable name the groups read now, in declaration order (deprecated names apart). */
export function variablesOf(groups: readonly SettingGroup[]): string[] {
  return groups.flatMap((group) => Object.values(group.settings).map((declared) => declared.variable));
}

/** Every deprecated name the groups still read, in declaration order. */
export function deprecatedVariablesOf(groups: readonly SettingGroup[]): string[] {
  return groups.flatMap((group) => Object.values(group.settings).flatMap((declared) => declared.deprecatedNames.map((name) => name.variable)));
}

/** Reads a variable: trimmed, and unset when empty. */
function readVariable(env: Env, variable: string): string | undefined {
  const value = env[variable]?.trim();
  return value === undefined || value === "" ? undefined : value;
}

/**
 * Parses the groups' variables from `env` into one frozen object, reading no
 * other variable. Collects every problem before failing, so one run shows
 * them all; a bad value is replaced by its default while the rules between
 * values are checked, so they report only what is wrong.
 */
export function readSettings<G extends readonly SettingGroup[]>(groups: G, env: Env, cwd: string): GroupValues<G> {
  const problems: string[] = [];
  const parsed: Record<string, unknown> = {};
  for (const group of groups) {
    const values: Record<string, unknown> = {};
    for (const [key, declared] of Object.entries(group.settings)) values[key] = declared.read(env, cwd, problems);
    problems.push(...(group.check?.(values) ?? []));
    Object.assign(parsed, values);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(parsed) as GroupValues<G>;
}

/** One line per deprecated name set in `env`, naming its replacement, for the start-up log. */
export function deprecationNotices(groups: readonly SettingGroup[], env: Env): string[] {
  return groups.flatMap((group) =>
    Object.values(group.settings).flatMap((declared) =>
      declared.deprecatedNames
        .filter((old) => readVariable(env, old.variable) !== undefined)
        .map((old) => `${old.variable} is deprecated: set ${declared.variable} instead${old.note === undefined ? "" : ` (${old.note})`}`),
    ),
  );
}

/** A value as error messages quote it: at most 100 characters, control characters escaped. */
function quoted(text: string): string {
  const shown = text.length > 100 ? `${text.slice(0, 100)}…` : text;
  return JSON.stringify(shown);
}

/** An integer from `min` to `max`; `unit` (bytes, connections…) only for the docs. */
export function integer(min: number, max: number, unit?: string): Kind<number> {
  return {
    values: `${min}–${max}${unit === undefined ? "" : ` ${unit}`}`,
    read(text, context) {
      if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
        context.problem(`must be an integer from ${min} to ${max}, got ${quoted(text)}`);
      }
      return Number(text);
    },
  };
}

/** A decimal number from `min` to `max`. */
export function decimal(min: number, max: number): Kind<number> {
  return {
    values: `${min}–${max}`,
    read(text, context) {
      const value = Number(text);
      if (!/^\d*\.?\d+$|^\d+\.$/.test(text) || !(value >= min && value <= max)) {
        context.problem(`must be a number from ${min} to ${max}, got ${quoted(text)}`);
      }
      return value;
    },
  };
}

const durationUnits = { ms: 1, s: 1_000, d: 86_400_000 } as const;
const unitWords = { ms: "milliseconds", s: "seconds", d: "days" } as const;
type DurationUnit = keyof typeof durationUnits;

/**
 * A duration: a number with a unit (`250ms`, `90s`, `15m`, `12h`, `30d`), or a
 * bare number counting `bare` (seconds unless said otherwise). Parsed into
 * `unit`, and refused unless whole in it; `min` and `max` are durations too.
 */
export function duration(options: { readonly unit: DurationUnit; readonly min: string; readonly max: string; readonly bare?: DurationUnit }): Kind<number> {
  const minMs = parseDuration(options.min);
  const maxMs = parseDuration(options.max);
  if (minMs === undefined || maxMs === undefined) throw new Error(`invalid duration bounds ${options.min}, ${options.max}`);
  const bare = options.bare ?? "s";
  const size = durationUnits[options.unit];
  const [low, high] = [minMs, maxMs].map((ms) => (ms === 0 ? "0" : formatDuration(ms)));
  return {
    values: `${low}–${high}`,
    read(text, context) {
      const ms = /^\d+(\.\d+)?$/.test(text) ? Math.round(Number(text) * durationUnits[bare]) : parseDuration(text);
      if (ms === undefined || ms < minMs || ms > maxMs) {
        context.problem(`must be a duration from ${low} to ${high} (a number of ${unitWords[bare]}, or with a unit: 250ms, 90s, 15m, 12h, 30d), got ${quoted(text)}`);
        return 0;
      }
      if (ms % size !== 0) context.problem(`must be a whole number of ${unitWords[options.unit]}, got ${quoted(text)}`);
      return ms / size;
    },
  };
}

/** `true` or `false` (`1`, `0`, any case). */
export const boolean: Kind<boolean> = {
  values: "`true`, `false`",
  read(text, context) {
    const lower = text.toLowerCase();
    if (lower === "true" || lower === "1") return true;
    if (lower !== "false" && lower !== "0") context.problem(`must be true or false, got ${quoted(lower)}`);
    return false;
  },
};

/** One of `choices`, in any case; read in lower case. */
export function oneOf<const C extends string>(choices: readonly C[]): Kind<C> {
  return {
    values: choices.map((choice) => `\`${choice}\``).join(", "),
    read(text, context) {
      const lower = text.toLowerCase();
      if (!(choices as readonly string[]).includes(lower)) context.problem(`must be one of ${choices.join(", ")}, got ${quoted(lower)}`);
      return lower as C;
    },
  };
}

/** A URL with one of `protocols` (`http:`); kept as written. Only the scheme is quoted back: a URL may hold a password. */
export function url(protocols: readonly string[]): Kind<string> {
  return {
    values: `URL (${protocols.map((protocol) => `\`${protocol}//\``).join(", ")})`,
    read(text, context) {
      let parsed: URL;
      try {
        parsed = new URL(text);
      } catch {
        context.problem("not a valid URL");
        return text;
      }
      if (!protocols.includes(parsed.protocol)) context.problem(`scheme must be ${protocols.join(" or ")}, got ${quoted(parsed.protocol)}`);
      return text;
    },
  };
}

/** A plain SQL identifier (letters, digits, `_`; at most 63), safe to put in DDL. */
export const identifier: Kind<string> = {
  values: "identifier",
  read(text, context) {
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(text)) context.problem(`must be a plain identifier (letters, digits, _), got ${quoted(text)}`);
    return text;
  },
};

/** Any text, kept as written. */
export const text: Kind<string> = {
  values: "text",
  read: (value) => value,
};

/** The shortest secret (token, shared key) accepted: shorter ones can be guessed. */
const SECRET_MIN_LENGTH = 16;

/** A token or shared secret of at least 16 characters; never quoted back. */
export const secret: Kind<string> = {
  values: `${SECRET_MIN_LENGTH}+ characters`,
  read(value, context) {
    if (value.length < SECRET_MIN_LENGTH) context.problem(`must be at least ${SECRET_MIN_LENGTH} characters`);
    return value;
  },
};

/** A file system path, resolved against the working directory when relative. */
export const path: Kind<string> = {
  values: "path",
  read: (value, context) => (isAbsolute(value) ? value : resolve(context.cwd, value)),
};

/**
 * A comma-separated list (blank entries ignored), each entry checked by
 * `check`, which answers what is wrong with it, or undefined.
 */
export function list(values: string, check: (entry: string) => string | undefined): Kind<readonly string[]> {
  return {
    values,
    read(text, context) {
      const entries = text.split(",").map((entry) => entry.trim()).filter((entry) => entry !== "");
      for (const entry of entries) {
        const reason = check(entry);
        if (reason !== undefined) context.problem(reason);
      }
      return entries;
    },
  };
}
