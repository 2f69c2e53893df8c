import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { UsageError, type Command, type Flags } from "./command.js";
import { commandSets } from "./commands/index.js";

const help = `usage: funnel <command> [options]

commands:
${commandSets.map((set) => set.help).join("\n")}

options:
  --json                        machine-readable output
  --url URL                     server (default $FUNNEL_URL or http://127.0.0.1:8080)
  --token TOKEN                 admin token (default $FUNNEL_ADMIN_TOKEN or $FUNNEL_DATA_DIR/admin-token)
  -h, --help                    this text`;

const options: NonNullable<ParseArgsConfig["options"]> = {
  json: { type: "boolean", default: false },
  url: { type: "string" },
  token: { type: "string" },
  help: { type: "boolean", short: "h", default: false },
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

/** Runs the CLI; returns the process exit status. */
export async function main(argv: readonly string[], out = (text: string) => console.log(text), err = (text: string) => console.error(text)): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    err(`funnel: ${(error as Error).message.split("\n")[0]}`);
    return 2;
  }
  const flags = parsed.values as Flags;
  const positionals = parsed.positionals;
  if (flags.help || positionals.length === 0) {
    out(help);
    return flags.help ? 0 : 2;
  }
  // The longest match wins: `seen integrations add` (three words), `jobs stats` (two), `status` (one).
  const name = [3, 2, 1].map((words) => positionals.slice(0, words).join(" ")).find((words) => commands[words] !== undefined) ?? "";
  const command = commands[name];
  if (command === undefined) {
    err(`funnel: unknown command "${positionals.join(" ")}" (see funnel --help)`);
    return 2;
  }
  const url = (typeof flags.url === "string" ? flags.url : undefined) ?? (process.env.FUNNEL_URL?.trim() || "http://127.0.0.1:8080");
  try {
    new URL(url);
  } catch {
    err(`funnel: --url: not a valid URL: ${url}`);
    return 2;
  }
  const token = adminToken(flags);
  const transport: Transport = createConnectTransport({
    baseUrl: url,
    httpVersion: "1.1",
    interceptors: [
      (next) => (req) => {
        if (token !== "") req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      },
    ],
  });
  const args = positionals.slice(name.split(" ").length);
  try {
    await command({ flags, args, transport, out, json: flags.json === true });
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      err(`funnel: ${error.message}`);
      return 2;
    }
    err(`funnel: ${describe(error, url)}`);
    return 1;
  }
}
