/**
 * Shell completion scripts written out from the command table. The table is fixed when the
 * CLI is built, so the scripts answer a tab press from the shell itself, without starting
 * Node (about 0.2 s a press), and nothing edits the user's shell start-up files.
 */

/** The words that may follow each path of command words ("" for the first word). */
function nextWords(commandNames: readonly string[]): Map<string, string[]> {
  const next = new Map<string, string[]>();
  for (const name of [...commandNames, "help", "completion bash", "completion zsh", "completion fish"]) {
    const words = name.split(" ");
    words.forEach((word, index) => {
      const path = words.slice(0, index).join(" ");
      const list = next.get(path) ?? [];
      if (!list.includes(word)) list.push(word);
      next.set(path, list);
    });
  }
  return next;
}

function bash(commandNames: readonly string[], flags: readonly string[], valueFlags: readonly string[]): string {
  const cases = [...nextWords(commandNames)].map(([path, words]) => `    "${path}") words="${words.join(" ")}" ;;`);
  return `# funnel completion for bash: source <(funnel completion bash)
_funnel() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path="" word skip="" i words=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=\${COMP_WORDS[i]}
    if [[ -n $skip ]]; then skip=""; continue; fi
    case " ${valueFlags.map((flag) => `--${flag}`).join(" ")} " in *" $word "*) skip=1; continue ;; esac
    [[ $word == -* ]] && continue
    path="\${path:+$path }$word"
  done
  if [[ $cur == -* ]]; then
    words="${flags.map((flag) => `--${flag}`).join(" ")}"
  else
    case "$path" in
${cases.join("\n")}
    esac
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _funnel funnel
`;
}

function fish(commandNames: readonly string[], flags: readonly string[], valueFlags: readonly string[]): string {
  const lines = [...nextWords(commandNames)].map(([path, words]) => `complete -c funnel -f -n 'test "$(__funnel_path)" = "${path}"' -a '${words.join(" ")}'`);
  return `# funnel completion for fish: funnel completion fish | source
function __funnel_path
    set -l words (commandline -opc)
    set -l path
    set -l skip 0
    for word in $words[2..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        if contains -- $word ${valueFlags.map((flag) => `--${flag}`).join(" ")}
            set skip 1
            continue
        end
        string match -q -- '-*' $word; and continue
        set -a path $word
    end
    echo (string join ' ' $path)
end
${lines.join("\n")}
${flags.map((flag) => `complete -c funnel -l ${flag}${valueFlags.includes(flag) ? " -r" : ""}`).join("\n")}
`;
}

/** Shell completion script for `shell`, or undefined for a shell without one. */
export function completionScript(shell: string, commandNames: readonly string[], options: Readonly<Record<string, { type: string }>>): string | undefined {
  const flags = Object.keys(options).sort();
  const valueFlags = flags.filter((flag) => options[flag]?.type === "string");
  if (shell === "bash") return bash(commandNames, flags, valueFlags);
  // zsh runs the bash script through its bash compatibility layer.
  if (shell === "zsh") return `# funnel completion for zsh: source <(funnel completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n${bash(commandNames, flags, valueFlags)}`;
  if (shell === "fish") return fish(commandNames, flags, valueFlags);
  return undefined;
}
