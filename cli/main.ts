import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { createFunnelClients } from "@funnel/client";
import { UsageError, type Command, type Flags } from "./command.js";
import { commandSets } from "./commands/index.js";
import { completionScript } from "./completion.js";
import { closest, helpFor, suggestCommand } from "./help.js";
import pkg from "../package.json" with { type: "json" };

const options: NonNullable<ParseArgsConfig["options"]> = {
  json: { type: "boolean", default: false },
  url: { type: "string" },
  token: { type: "string" },
  help: { type: "boolean", short: "h", default: false },
  version: { type: "boolean", default: false },
};
const commands: Record<string, Command> = {};
for (const set of commandSets) {
  Object.assign(options, set.options);
  Object.assign(commands, set.commands);
}

function adminToken(flags: Flags): string {
  if (typeof flags.token === "string") return flags.token;
  const fromEnv = process.env.FUNNEL_ADMIN_TOKEN?.trim();
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const file = resolve(process.env.FUNNEL_DATA_DIR?.trim() || "./data", "admin-token");
  return existsSync(file) ? readFileSync(file, "utf8").trim() : "";
}

/** Explains a failed call in one line. */
function describe(error: unknown, url: string): string {
  if (error instanceof ConnectError) {
    if (error.code === Code.Unauthenticated) {
      return `${error.rawMessage} (set FUNNEL_ADMIN_TOKEN or pass --token)`;
    }
    // Connect's client names only the HTTP status or content type when the answer is no Connect
    // answer at all: a web server, a proxy's error page, another service on that port.
    const foreign = (error.code === Code.Unimplemented && /^HTTP \d+$/.test(error.rawMessage)) || (error.code === Code.Unknown && /^unsupported content type/.test(error.rawMessage));
    if (foreign) {
      return `the server at ${url} is not a Funnel server (it answered ${error.rawMessage.replace(/^unsupported content type /, "")}; set FUNNEL_URL or --url to Funnel's API)`;
    }
    if (error.code === Code.Unavailable || error.code === Code.Unknown || error.code === Code.Internal) {
      const cause = error.cause as { code?: string } | undefined;
      if (cause?.code === "ECONNREFUSED" || /ECONNREFUSED|fetch failed|connect/i.test(error.rawMessage)) {
        return `cannot reach the Funnel server at ${url} (is it running? set FUNNEL_URL or --url)`;
      }
    }
    return `${Code[error.code]}: ${error.rawMessage}`;
  }
  return error instanceof Error ? error.message : String(error);
}

const completionHelp = `usage: funnel completion bash|zsh|fish

Prints a script that completes funnel's commands and options in the shell.

examples:
  source <(funnel completion bash)        # add to ~/.bashrc
  source <(funnel completion zsh)         # add to ~/.zshrc
  funnel completion fish > ~/.config/fish/completions/funnel.fish`;

/** Explains words that name no command, with the nearest command when one is close. */
function unknownCommand(names: readonly string[], words: readonly string[]): string {
  const guess = suggestCommand(names, words);
  const group = names.some((name) => name.startsWith(`${words.join(" ")} `));
  const hint = guess !== undefined ? `did you mean "funnel ${guess}"?` : group ? `see funnel ${words.join(" ")} --help` : "see funnel --help";
  return `unknown command "${words.join(" ")}" (${hint})`;
}

/** Runs the CLI; returns the process exit status. */
export async function main(argv: readonly string[], out = (text: string) => console.log(text), err = (text: string) => console.error(text)): Promise<number> {
  const asJson = argv.slice(0, argv.includes("--") ? argv.indexOf("--") : argv.length).includes("--json");
  /** Reports an error in one line (one JSON object with --json) and gives the exit status. */
  const fail = (status: 1 | 2, message: string, code = status === 2 ? "usage" : "failed"): number => {
    err(asJson ? JSON.stringify({ error: { code, message } }) : `funnel: ${message}`);
    return status;
  };
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    // Node's message for an unknown option goes on about positionals after "--"; its first sentence is enough.
    const message = ((error as Error).message.split("\n")[0] ?? "").replace(/^(Unknown option '[^']+')\..*$/, "$1");
    const flag = /^Unknown option '--([^']+)'/.exec(message)?.[1];
    const guess = flag === undefined ? undefined : closest(flag, Object.keys(options));
    return fail(2, `${message}${guess === undefined ? "" : ` (did you mean --${guess}?)`}`);
  }
  const flags = parsed.values as Flags;
  const positionals = parsed.positionals;
  if (flags.version === true) {
    out(`funnel ${pkg.version}`);
    return 0;
  }
  const names = Object.keys(commands);
  if (positionals[0] === "help" || flags.help === true || positionals.length === 0) {
    const words = (positionals[0] === "help" ? positionals.slice(1) : positionals).join(" ");
    const text = words === "completion" ? completionHelp : helpFor(commandSets, names, words);
    if (text === undefined) return fail(2, unknownCommand(names, words.split(" ")));
    out(text);
    return positionals.length === 0 && flags.help !== true ? 2 : 0;
  }
  if (positionals[0] === "completion") {
    const script = positionals.length === 2 ? completionScript(positionals[1] ?? "", names, options) : undefined;
    if (script === undefined) {
      return fail(2, "completion: expected bash, zsh or fish (see funnel completion --help)");
    }
    out(script);
    return 0;
  }
  // The longest match wins: `seen integrations add` (three words), `jobs stats` (two), `status` (one).
  const name = [3, 2, 1].map((words) => positionals.slice(0, words).join(" ")).find((words) => commands[words] !== undefined) ?? "";
  const command = commands[name];
  if (command === undefined) {
    const groupHelp = helpFor(commandSets, names, positionals.join(" "));
    if (groupHelp === undefined) return fail(2, unknownCommand(names, positionals));
    out(groupHelp);
    return 2;
  }
  const url = (typeof flags.url === "string" ? flags.url : undefined) ?? (process.env.FUNNEL_URL?.trim() || "http://127.0.0.1:8080");
  try {
    new URL(url);
  } catch {
    return fail(2, `--url: not a valid URL: ${url}`);
  }
  const clients = createFunnelClients({ baseUrl: url, token: adminToken(flags), protocol: "connect" });
  const args = positionals.slice(name.split(" ").length);
  try {
    await command({ flags, args, clients, out, json: flags.json === true });
    return 0;
  } catch (error) {
    if (error instanceof UsageError) return fail(2, error.message);
    if (!(error instanceof ConnectError)) return fail(1, describe(error, url));
    // The server judged the request itself wrong: a usage mistake, like one the CLI catches.
    const status = error.code === Code.InvalidArgument ? 2 : 1;
    return fail(status, describe(error, url), Code[error.code].replace(/[A-Z]/g, (letter, at: number) => `${at === 0 ? "" : "_"}${letter.toLowerCase()}`));
  }
}
