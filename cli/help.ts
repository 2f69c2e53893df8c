import type { CommandSet } from "./command.js";

/** One command's lines of help: its first line and the indented lines under it. */
interface HelpEntry {
  readonly lines: readonly string[];
}

/** The options every command takes, as printed under each help text. */
export const commonOptions = `options for every command:
  --json                        machine-readable output
  --url URL                     server (default $FUNNEL_URL or http://127.0.0.1:8080)
  --token TOKEN                 admin token (default $FUNNEL_ADMIN_TOKEN or $FUNNEL_DATA_DIR/admin-token)
  -h, --help                    help for funnel, a group (funnel jobs --help) or a command
  --version                     the CLI's version`;

/** Splits a set's help text into entries: a line indented by two spaces starts one. */
function entries(set: CommandSet): HelpEntry[] {
  const result: { lines: string[] }[] = [];
  for (const line of set.help.split("\n")) {
    const last = result.at(-1);
    if (/^ {2}\S/.test(line) || last === undefined) result.push({ lines: [line] });
    else last.lines.push(line);
  }
  return result;
}

/** Whether `words` (e.g. `jobs`, `seen integrations`, `jobs stats`) begins this entry. */
const startsWith = (entry: HelpEntry, words: string): boolean => {
  const first = entry.lines[0]?.trimStart() ?? "";
  return first === words || first.startsWith(`${words} `);
};

/**
 * Help for the whole CLI (no words), a group of commands (`jobs`, `seen integrations`) or one
 * command (`jobs stats`); undefined when the words name none of them.
 */
export function helpFor(sets: readonly CommandSet[], commandNames: readonly string[], words: string): string | undefined {
  if (words === "") {
    return `usage: funnel <command> [options]

commands:
${sets.map((set) => set.help).join("\n")}
  help [COMMAND]                this text, or the help of a group or command
  completion bash|zsh|fish      a shell completion script (see funnel completion --help)

examples:
  funnel status
  funnel jobs --help
  funnel trackers list --json

${commonOptions}`;
  }
  const isCommand = commandNames.includes(words);
  const isGroup = commandNames.some((name) => name.startsWith(`${words} `));
  if (!isCommand && !isGroup) return undefined;
  const matching = sets.flatMap((set) => entries(set).filter((entry) => startsWith(entry, words)));
  const examples = sets.flatMap((set) => set.examples ?? []).filter((example) => example === `funnel ${words}` || example.startsWith(`funnel ${words} `));
  return [
    `usage: funnel ${words}${isCommand ? "" : " <command>"} [options]`,
    "",
    ...(isCommand ? [] : ["commands:"]),
    ...matching.flatMap((entry) => entry.lines),
    ...(examples.length > 0 ? ["", "examples:", ...examples.map((example) => `  ${example}`)] : []),
    "",
    commonOptions,
  ].join("\n");
}

/** Edit distance between two words: insertions, deletions, substitutions and swaps of neighbours. */
export function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number): number => rows[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      (rows[i] as number[])[j] = best;
    }
  }
  return at(a.length, b.length);
}

/** The candidate closest to `word`, if it is close enough to be a likely typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  // A third of the word may be wrong, at least one letter and at most three.
  return bestDistance <= Math.min(3, Math.max(1, Math.floor(word.length / 3))) ? best : undefined;
}

/**
 * "did you mean" for words that name no command: the first word that strays from every
 * command name is compared with the words that could follow the ones before it.
 */
export function suggestCommand(commandNames: readonly string[], words: readonly string[]): string | undefined {
  const known: string[] = [];
  for (const word of words) {
    const prefix = known.join(" ");
    const next = [...new Set(commandNames.filter((name) => prefix === "" || name.startsWith(`${prefix} `)).map((name) => name.split(" ")[known.length]).filter((w) => w !== undefined))];
    if (next.length === 0) break;
    if (next.includes(word)) {
      known.push(word);
      continue;
    }
    const guess = closest(word, next);
    if (guess === undefined) return undefined;
    known.push(guess);
  }
  const suggestion = known.join(" ");
  return suggestion !== words.join(" ") && (commandNames.includes(suggestion) || commandNames.some((name) => name.startsWith(`${suggestion} `))) ? suggestion : undefined;
}
