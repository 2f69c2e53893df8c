import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../services/core/config.js";

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
    expect(() => parseConfig({ AUTH_JWT_CLOCK_TOLERANCE_SECONDS: "-1" })).toThrow(/AUTH_JWT_CLOCK_TOLERANCE_SECONDS: must be an integer from 0 to 600, got "-1"/);
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
    expect(() => parseConfig({ JOBS_HEARTBEAT_SECONDS: "0" })).toThrow(/JOBS_HEARTBEAT_SECONDS: must be an integer from 1 to 600, got "0"/);
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
    expect(() => parseConfig({ HTTP_HEADERS_TIMEOUT_SECONDS: "0" })).toThrow(/HTTP_HEADERS_TIMEOUT_SECONDS: must be an integer from 1 to 600, got "0"/);
    expect(() => parseConfig({ HTTP_MAX_CONNECTIONS: "many" })).toThrow(/HTTP_MAX_CONNECTIONS: must be an integer from 1 to 1000000, got "many"/);
    expect(() => parseConfig({ HTTP_HEADERS_TIMEOUT_SECONDS: "30", HTTP_REQUEST_TIMEOUT_SECONDS: "20" })).toThrow(/HTTP_REQUEST_TIMEOUT_SECONDS: must be at least HTTP_HEADERS_TIMEOUT_SECONDS/);
  });
});
