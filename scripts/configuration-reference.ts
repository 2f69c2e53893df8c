import type { SettingGroup } from "../services/core/settings.js";

/** The comments around the generated part of docs/configuration.md; what lies outside them is written by hand. */
export const sectionStart = "<!-- settings: written by `npm run docs` from the settings declarations (services/core/config.ts); edit those, not this section -->";
export const sectionEnd = "<!-- end of settings -->";

/** A table cell: Markdown as declared, with the cell separator escaped. */
function cell(markdown: string): string {
  return markdown.replaceAll("|", "\\|").replaceAll("\n", " ");
}

/**
 * The settings tables of docs/configuration.md: one table per group under its
 * title (variable, accepted values, default, meaning), then the deprecated
 * names and what replaces them.
 */
export function renderSettings(groups: readonly SettingGroup[]): string {
  const lines: string[] = [];
  const deprecated: string[] = [];
  for (const group of groups) {
    lines.push(`### ${group.title}`, "", `Owned by \`${group.owner}\`.`, "", "| variable | values | default | meaning |", "|---|---|---|---|");
    for (const declared of Object.values(group.settings)) {
      const fallback = declared.default === undefined ? "unset" : declared.default === "" ? "empty" : `\`${declared.default}\``;
      lines.push(`| \`${declared.variable}\` | ${cell(declared.values)} | ${cell(fallback)} | ${cell(declared.doc)} |`);
      for (const old of declared.deprecatedNames) {
        deprecated.push(`| \`${old.variable}\` | \`${declared.variable}\` | ${cell(old.note ?? "the same values")} |`);
      }
    }
    lines.push("");
  }
  if (deprecated.length > 0) {
    lines.push(
      "### Deprecated names",
      "",
      "Still read, and logged as a warning at start-up; setting both names of one setting is an error.",
      "",
      "| deprecated name | replaced by | its values |",
      "|---|---|---|",
      ...deprecated,
      "",
    );
  }
  return lines.join("\n");
}

/** `page` with its generated section replaced by `section`; throws when the markers are missing. */
export function withSettings(page: string, section: string): string {
  const start = page.indexOf(sectionStart);
  const end = page.indexOf(sectionEnd);
  if (start === -1 || end < start) throw new Error(`docs/configuration.md lacks the markers ${sectionStart} … ${sectionEnd}`);
  return `${page.slice(0, start + sectionStart.length)}\n\n${section}\n${page.slice(end)}`;
}
