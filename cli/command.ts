import type { ParseArgsConfig } from "node:util";
import type { FunnelClients } from "@funnel/client";

/** A usage mistake: printed as one line, exit status 2. */
export class UsageError extends Error {}

/** Parsed flags: every option of every command set, by name. */
export type Flags = Readonly<Record<string, string | boolean | undefined>>;

export interface CommandContext {
  readonly flags: Flags;
  /** Positional arguments after the command's words. */
  readonly args: readonly string[];
  /** A client for every service of the server, carrying the admin token. */
  readonly clients: FunnelClients;
  readonly out: (text: string) => void;
  /** Whether `--json` was given. */
  readonly json: boolean;
}

export type Command = (context: CommandContext) => Promise<void>;

/** The commands of one area (jobs, trackers, …), with their help and options. */
export interface CommandSet {
  /** Help lines, already aligned like the rest of `funnel --help`. */
  readonly help: string;
  /** Options beyond the common ones (`--json`, `--url`, `--token`). */
  readonly options?: ParseArgsConfig["options"];
  /** Example calls, each starting with `funnel` and the command's words; shown in its help. */
  readonly examples?: readonly string[];
  /** Commands by their words, e.g. `"jobs stats"`. */
  readonly commands: Readonly<Record<string, Command>>;
}

/**
 * Call options for a bulk call (an import, a replay) that runs as long as it needs: it has no
 * deadline, and a terminal shows it waiting (see `withProgress`).
 */
export const untimed = { timeoutMs: 0 } as const;

/** A string flag, or undefined when absent. */
export function stringFlag(flags: Flags, name: string): string | undefined {
  const value = flags[name];
  return typeof value === "string" ? value : undefined;
}

/** A string flag that must be present. */
export function requiredFlag(flags: Flags, name: string, command: string): string {
  const value = stringFlag(flags, name);
  if (value === undefined) throw new UsageError(`${command}: --${name} is required`);
  return value;
}

/** `--limit N` as a whole number; 0 when absent. */
export function limitFlag(flags: Flags): number {
  const limit = stringFlag(flags, "limit");
  if (limit === undefined) return 0;
  if (!/^\d+$/.test(limit)) throw new UsageError(`--limit: must be a whole number, got "${limit}"`);
  return Number(limit);
}

/** Exactly `count` positional arguments, named in the error. */
export function positionals(args: readonly string[], names: readonly string[], command: string): string[] {
  if (args.length !== names.length) {
    throw new UsageError(`${command}: expected ${names.join(" ")}, got ${args.length === 0 ? "nothing" : args.join(" ")}`);
  }
  return [...args];
}

/** Prints a value as indented JSON. */
export function printJson(out: (text: string) => void, value: unknown): void {
  out(JSON.stringify(value, null, 2));
}
