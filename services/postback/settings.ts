import { boolean, defineSettings, duration, integer, secret, setting, url } from "../core/settings.js";

/** The postback service's settings: downloads, attribution and delivery to partners. */
export const postbackSettings = defineSettings({
  owner: "services/postback",
  title: "Postbacks",
  settings: {
    downloadRedirectUrl: setting({
      variable: "DOWNLOAD_REDIRECT_URL",
      kind: url(["http:", "https:"]),
      doc: "where `GET /download` sends the user (the APK) when the partner sets no URL of its own; unset answers `204`",
    }),
    attributionWindowMs: setting({
      variable: "ATTRIBUTION_WINDOW",
      kind: duration({ unit: "ms", min: "1m", max: "400d" }),
      default: "30d",
      doc: "how long a stored download gives its link parameters to the install and authorization of its stag",
    }),
    postbackServiceToken: setting({
      variable: "POSTBACK_SERVICE_TOKEN",
      kind: secret,
      doc: "bearer token of the services that record funnel events (`PostbackService`); the admin token is always accepted too",
    }),
    postbackAllowPrivate: setting({
      variable: "POSTBACK_ALLOW_PRIVATE",
      kind: boolean,
      default: "false",
      doc: "`true` lets postbacks reach loopback, private, link-local, metadata and every other non-public address (tests, closed networks; see [SSRF guard](postback.md#ssrf-guard))",
    }),
    postbackConcurrency: setting({
      variable: "POSTBACK_CONCURRENCY",
      kind: integer(1, 1_000),
      default: "128",
      doc: "postbacks one worker process sends at once",
    }),
    postbackRetentionMs: setting({
      variable: "POSTBACK_RETENTION",
      kind: duration({ unit: "ms", min: "1m", max: "3650d" }),
      default: "90d",
      doc: "how long finished postbacks (delivered, dead, cancelled) and their attempts stay in Postgres; ClickHouse keeps the attempts",
    }),
  },
});
