import { generateKeyPairSync } from "node:crypto";
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { renderSettings, withSettings } from "../../scripts/configuration-reference.js";
import { ConfigError, configDeprecations, configVariables, deprecatedVariables, parseConfig, settingGroups } from "../../services/core/config.js";
import { checkDeclarations, defineSettings, integer, setting, type SettingGroup } from "../../services/core/settings.js";

describe("config", () => {
  it("applies the documented defaults", () => {
    const config = parseConfig({}, "/srv/funnel");
    expect(config).toMatchObject({
      port: 8080,
      host: "0.0.0.0",
      databaseUrl: undefined,
      clickhouseUrl: undefined,
      dataDir: "/srv/funnel/data",
      adminToken: undefined,
      logLevel: "info",
      clickhouseDatabase: "funnel",
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("reads every variable", () => {
    const config = parseConfig(
      {
        PORT: "9090",
        DATABASE_URL: "postgres://u:p@db:5432/funnel",
        CLICKHOUSE_URL: "http://ch:8123",
        FUNNEL_DATA_DIR: "/var/lib/funnel",
        FUNNEL_ADMIN_TOKEN: "0123456789abcdef",
        LOG_LEVEL: "DEBUG",
      },
      "/",
    );
    expect(config).toMatchObject({
      port: 9090,
      databaseUrl: "postgres://u:p@db:5432/funnel",
      clickhouseUrl: "http://ch:8123",
      dataDir: "/var/lib/funnel",
      adminToken: "0123456789abcdef",
      logLevel: "debug",
    });
  });

  it("names every bad variable and the reason, all at once", () => {
    let error: unknown;
    try {
      parseConfig({ PORT: "80a", DATABASE_URL: "mysql://x", CLICKHOUSE_URL: "::", LOG_LEVEL: "loud", FUNNEL_ADMIN_TOKEN: "short" });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(5);
    expect(problems.join("\n")).toMatch(/PORT: must be an integer from 0 to 65535, got "80a"/);
    expect(problems.join("\n")).toMatch(/DATABASE_URL: scheme must be postgres: or postgresql:/);
    expect(problems.join("\n")).toMatch(/CLICKHOUSE_URL: not a valid URL/);
    expect(problems.join("\n")).toMatch(/LOG_LEVEL: must be one of/);
    expect(problems.join("\n")).toMatch(/FUNNEL_ADMIN_TOKEN: must be at least 16 characters/);
  });

  it("reads the rules of local token verification: clock tolerance, required expiry, issuer, audience", () => {
    expect(parseConfig({})).toMatchObject({ authJwtClockToleranceSeconds: 30, authJwtRequireExp: true, authJwtIssuer: undefined, authJwtAudience: undefined });
    expect(
      parseConfig({ AUTH_JWT_CLOCK_TOLERANCE_SECONDS: "5", AUTH_JWT_REQUIRE_EXP: "false", AUTH_JWT_ISSUER: "https://auth.example.com", AUTH_JWT_AUDIENCE: "funnel" }),
    ).toMatchObject({ authJwtClockToleranceSeconds: 5, authJwtRequireExp: false, authJwtIssuer: "https://auth.example.com", authJwtAudience: "funnel" });
    expect(parseConfig({ AUTH_JWT_REQUIRE_EXP: "TRUE" }).authJwtRequireExp).toBe(true);
    expect(() => parseConfig({ AUTH_JWT_CLOCK_TOLERANCE_SECONDS: "-1" })).toThrow(/AUTH_JWT_CLOCK_TOLERANCE_SECONDS: must be a duration from 0 to 10m \(a number of seconds, or with a unit: 250ms, 90s, 15m, 12h, 30d\), got "-1"/);
    expect(() => parseConfig({ AUTH_JWT_REQUIRE_EXP: "sometimes" })).toThrow(/AUTH_JWT_REQUIRE_EXP: must be true or false, got "sometimes"/);
    const weak = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ type: "spki", format: "pem" }).toString();
    expect(() => parseConfig({ AUTH_JWT_PUBLIC_KEY: weak })).toThrow(/AUTH_JWT_PUBLIC_KEY: verifies no JWT algorithm: use RSA \(2048 bits or more\)/);
  });

  it("reads the pixel cookie's domain and SameSite, and refuses anything a Set-Cookie header cannot carry", () => {
    expect(parseConfig({})).toMatchObject({ trackerCookieDomain: undefined, trackerCookieSameSite: undefined });
    expect(parseConfig({ TRACKER_COOKIE_DOMAIN: ".Example.COM", TRACKER_COOKIE_SAMESITE: "None" })).toMatchObject({ trackerCookieDomain: "example.com", trackerCookieSameSite: "none" });
    expect(() => parseConfig({ TRACKER_COOKIE_DOMAIN: "example.com; Secure" })).toThrow(/TRACKER_COOKIE_DOMAIN: "example.com; Secure" is not a domain name/);
    expect(() => parseConfig({ TRACKER_COOKIE_DOMAIN: "localhost" })).toThrow(/TRACKER_COOKIE_DOMAIN: "localhost" is not a domain name/);
    expect(() => parseConfig({ TRACKER_COOKIE_SAMESITE: "relaxed" })).toThrow(/TRACKER_COOKIE_SAMESITE: must be one of lax, strict, none, got "relaxed"/);
  });

  it("takes anonymous-only operation only without a way to verify tokens", () => {
    expect(parseConfig({}).authAnonymousOnly).toBe(false);
    expect(parseConfig({ AUTH_ANONYMOUS_ONLY: "true" }).authAnonymousOnly).toBe(true);
    expect(() => parseConfig({ AUTH_ANONYMOUS_ONLY: "true", AUTH_JWT_SECRET: "0123456789abcdef0123" })).toThrow(/AUTH_ANONYMOUS_ONLY: true refuses every token, yet AUTH_URL, AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY is set/);
  });

  it("rejects an out-of-range port and a non-identifier database name", () => {
    expect(() => parseConfig({ PORT: "70000" })).toThrow(/PORT: must be an integer from 0 to 65535/);
    expect(() => parseConfig({ CLICKHOUSE_DATABASE: "a-b; DROP" })).toThrow(/CLICKHOUSE_DATABASE: must be a plain identifier/);
  });

  it("reads the job heartbeat settings and refuses a stale threshold shorter than two heartbeats", () => {
    expect(parseConfig({})).toMatchObject({ jobsHeartbeatSeconds: 5, jobsHeartbeatStaleSeconds: 20 });
    expect(parseConfig({ JOBS_HEARTBEAT_SECONDS: "1", JOBS_HEARTBEAT_STALE_SECONDS: "5" })).toMatchObject({ jobsHeartbeatSeconds: 1, jobsHeartbeatStaleSeconds: 5 });
    expect(() => parseConfig({ JOBS_HEARTBEAT_SECONDS: "11" })).toThrow(/JOBS_HEARTBEAT_STALE_SECONDS: must be at least twice JOBS_HEARTBEAT_SECONDS/);
    expect(() => parseConfig({ JOBS_HEARTBEAT_SECONDS: "0" })).toThrow(/JOBS_HEARTBEAT_SECONDS: must be a duration from 1s to 10m .*, got "0"/);
  });

  it("serves metrics on their own port, on loopback unless told otherwise", () => {
    expect(parseConfig({})).toMatchObject({ metricsPort: 9464, metricsHost: "127.0.0.1" });
    expect(parseConfig({ METRICS_PORT: "9100", METRICS_HOST: "0.0.0.0" })).toMatchObject({ metricsPort: 9100, metricsHost: "0.0.0.0" });
    expect(parseConfig({ PORT: "0", METRICS_PORT: "0" })).toMatchObject({ port: 0, metricsPort: 0 });
    expect(() => parseConfig({ METRICS_PORT: "x" })).toThrow(/METRICS_PORT: must be an integer from 0 to 65535, got "x"/);
    expect(() => parseConfig({ PORT: "9100", METRICS_PORT: "9100" })).toThrow(/METRICS_PORT: must differ from PORT \(9100\)/);
  });

  it("reads the HTTP timeouts and connection cap, and refuses a request timeout shorter than the header timeout", () => {
    expect(parseConfig({})).toMatchObject({ httpHeadersTimeoutSeconds: 10, httpRequestTimeoutSeconds: 60, httpKeepAliveTimeoutSeconds: 65, httpMaxConnections: 10_000 });
    expect(
      parseConfig({ HTTP_HEADERS_TIMEOUT_SECONDS: "2", HTTP_REQUEST_TIMEOUT_SECONDS: "5", HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: "30", HTTP_MAX_CONNECTIONS: "500" }),
    ).toMatchObject({ httpHeadersTimeoutSeconds: 2, httpRequestTimeoutSeconds: 5, httpKeepAliveTimeoutSeconds: 30, httpMaxConnections: 500 });
    expect(() => parseConfig({ HTTP_HEADERS_TIMEOUT_SECONDS: "0" })).toThrow(/HTTP_HEADERS_TIMEOUT_SECONDS: must be a duration from 1s to 10m .*, got "0"/);
    expect(() => parseConfig({ HTTP_MAX_CONNECTIONS: "many" })).toThrow(/HTTP_MAX_CONNECTIONS: must be an integer from 1 to 1000000, got "many"/);
    expect(() => parseConfig({ HTTP_HEADERS_TIMEOUT_SECONDS: "30", HTTP_REQUEST_TIMEOUT_SECONDS: "20" })).toThrow(/HTTP_REQUEST_TIMEOUT_SECONDS: must be at least HTTP_HEADERS_TIMEOUT_SECONDS/);
  });
});

describe("the settings schema", () => {
  it("reads every duration as seconds or with a unit, and keeps the renamed millisecond variables as deprecated names", () => {
    expect(parseConfig({})).toMatchObject({ shutdownTimeoutMs: 10_000, authTimeoutMs: 500, authRecheckMs: 5_000 });
    expect(parseConfig({ SHUTDOWN_TIMEOUT_SECONDS: "15", AUTH_TIMEOUT_SECONDS: "0.25", AUTH_RECHECK_SECONDS: "2m", JOBS_POLL_SECONDS: "1m" })).toMatchObject({
      shutdownTimeoutMs: 15_000,
      authTimeoutMs: 250,
      authRecheckMs: 120_000,
      jobsPollSeconds: 60,
    });
    // The old names count milliseconds, as they always did.
    expect(parseConfig({ SHUTDOWN_TIMEOUT_MS: "2500", AUTH_TIMEOUT_MS: "750", AUTH_RECHECK_MS: "3s" })).toMatchObject({ shutdownTimeoutMs: 2_500, authTimeoutMs: 750, authRecheckMs: 3_000 });
    expect(configDeprecations({ SHUTDOWN_TIMEOUT_MS: "2500", PORT: "1" })).toEqual(["SHUTDOWN_TIMEOUT_MS is deprecated: set SHUTDOWN_TIMEOUT_SECONDS instead (a bare number counts milliseconds)"]);
    expect(configDeprecations({ SHUTDOWN_TIMEOUT_SECONDS: "3" })).toEqual([]);
    expect(() => parseConfig({ SHUTDOWN_TIMEOUT_SECONDS: "3", SHUTDOWN_TIMEOUT_MS: "3000" })).toThrow(
      /SHUTDOWN_TIMEOUT_MS: the deprecated name of SHUTDOWN_TIMEOUT_SECONDS, and SHUTDOWN_TIMEOUT_SECONDS is set too/,
    );
    expect(() => parseConfig({ AUTH_TIMEOUT_MS: "5" })).toThrow(/AUTH_TIMEOUT_MS: must be a duration from 10ms to 1m \(a number of milliseconds, or with a unit/);
    expect(() => parseConfig({ JOBS_POLL_SECONDS: "1.5" })).toThrow(/JOBS_POLL_SECONDS: must be a whole number of seconds, got "1.5"/);
    expect(() => parseConfig({ INGEST_DEDUP_DAYS: "36h" })).toThrow(/INGEST_DEDUP_DAYS: must be a whole number of days, got "36h"/);
    expect(parseConfig({ INGEST_DEDUP_DAYS: "3", PAGE_VIEW_TIMEOUT: "90" })).toMatchObject({ ingestDedupDays: 3, pageViewTimeoutSeconds: 90 });
  });

  it("holds every token and shared secret to one minimum length, and never quotes them back", () => {
    const variables = ["FUNNEL_ADMIN_TOKEN", "POSTBACK_SERVICE_TOKEN", "SEEN_SERVICE_TOKEN", "AUTH_JWT_SECRET"];
    let error: unknown;
    try {
      parseConfig(Object.fromEntries(variables.map((name) => [name, "fifteen-chars!!"])));
    } catch (caught) {
      error = caught;
    }
    expect((error as ConfigError).problems).toEqual(expect.arrayContaining(variables.map((name) => `${name}: must be at least 16 characters`)));
    expect((error as ConfigError).message).not.toContain("fifteen-chars");
    expect(parseConfig(Object.fromEntries(variables.map((name) => [name, "sixteen-chars!!!"])))).toMatchObject({ adminToken: "sixteen-chars!!!", seenServiceToken: "sixteen-chars!!!" });
  });

  it("quotes at most 100 characters of a bad value", () => {
    expect(() => parseConfig({ PORT: "9".repeat(100_000) })).toThrow(new RegExp(`PORT: must be an integer from 0 to 65535, got "${"9".repeat(100)}…"$`));
  });

  it("lets each module declare its own settings, and no variable twice", () => {
    const groups: readonly SettingGroup[] = settingGroups;
    const ownerOf = new Map(groups.flatMap((group) => Object.values(group.settings).map((declared) => [declared.variable, group.owner] as const)));
    for (const variable of configVariables) {
      const prefix = variable.split("_")[0];
      const owner = { SEEN: "services/seen", POSTBACK: "services/postback", INGEST: "services/ingest", TRACKER: "services/tracker", AUTH: "services/core/identity" }[prefix ?? ""];
      if (owner !== undefined) expect(ownerOf.get(variable), variable).toBe(owner);
    }
    expect(ownerOf.get("ATTRIBUTION_WINDOW")).toBe("services/postback");
    expect(ownerOf.get("PAGE_VIEW_TIMEOUT")).toBe("services/ingest");
    const group = (key: string, variable: string) => defineSettings({ owner: "test", title: "Test", settings: { [key]: setting({ variable, kind: integer(0, 1), default: "0", doc: "test" }) } });
    expect(() => checkDeclarations([...settingGroups, group("otherPort", "PORT")])).toThrow(/variable PORT is declared twice/);
    expect(() => checkDeclarations([...settingGroups, group("otherShutdown", "SHUTDOWN_TIMEOUT_MS")])).toThrow(/variable SHUTDOWN_TIMEOUT_MS is declared twice/);
    expect(() => checkDeclarations([group("a", "A"), group("a", "B")])).toThrow(/setting a is declared twice/);
  });

  it("parses exactly the declared fields into the configuration", () => {
    const config = parseConfig({}, "/");
    const fields = settingGroups.flatMap((group) => Object.keys(group.settings));
    expect(Object.keys(config).sort()).toEqual([...fields].sort());
    expect(fields.length).toBe(configVariables.length);
  });
});

describe("docs/configuration.md", () => {
  it("holds the tables `npm run docs` writes from the settings declarations", async () => {
    const page = await readFile(new URL("../../docs/configuration.md", import.meta.url), "utf8");
    expect(page === withSettings(page, renderSettings(settingGroups)), "docs/configuration.md is stale: run npm run docs").toBe(true);
  });

  it("documents every variable and deprecated name once, with its values and default", () => {
    const section = renderSettings(settingGroups);
    for (const variable of [...configVariables, ...deprecatedVariables]) {
      expect(section.match(new RegExp(`^\\| \`${variable}\` \\|`, "gm"))?.length, variable).toBe(1);
    }
    expect(section).toContain("| `PORT` | 0–65535 | `8080` |");
    expect(section).toContain("| `JOBS_HEARTBEAT_SECONDS` | 1s–10m | `5` |");
    expect(section).toContain("| `DATABASE_URL` | URL (`postgres://`, `postgresql://`) | unset |");
    expect(section).toContain("| `SHUTDOWN_TIMEOUT_MS` | `SHUTDOWN_TIMEOUT_SECONDS` | a bare number counts milliseconds |");
  });
});
