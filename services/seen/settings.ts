import { boolean, defineSettings, duration, integer, secret, setting, type Kind } from "../core/settings.js";

/** The identity fields Seen reads from a token's claims (see SEEN_IDENTITY_CLAIMS). */
export const seenIdentityFields = ["uid", "bound_uids", "phone_id", "db_id", "uuid", "device_id"] as const;
export type SeenIdentityField = (typeof seenIdentityFields)[number];

/** Where each identity field is read from: `FIELD=CLAIM` pairs; a field not named is read from the claim of its own name. */
const claimMapping: Kind<Readonly<Record<SeenIdentityField, string>>> = {
  values: "`FIELD=CLAIM`, comma-separated",
  read(value, context) {
    const mapping = Object.fromEntries(seenIdentityFields.map((field) => [field, field])) as Record<SeenIdentityField, string>;
    for (const entry of value.split(",").map((part) => part.trim()).filter((part) => part !== "")) {
      const [field = "", path = "", extra] = entry.split("=").map((part) => part.trim());
      if (field === "user_id") {
        // One user id for every service: the identity resolver's.
        context.problem('"user_id" is the user id every service reads: set AUTH_JWT_USER_ID_CLAIM (locally verified JWTs) or AUTH_USER_ID_FIELD (the auth service\'s answer)');
      } else if (!(seenIdentityFields as readonly string[]).includes(field)) {
        context.problem(`"${field}" is not an identity field (${seenIdentityFields.join(", ")})`);
      } else if (extra !== undefined || !/^[A-Za-z0-9_:-]+(\.[A-Za-z0-9_:-]+)*$/.test(path)) {
        context.problem(`"${entry}" must be FIELD=CLAIM, the claim a dot path such as user.id`);
      } else {
        mapping[field as SeenIdentityField] = path;
      }
    }
    return mapping;
  },
};

/** Seen's settings: mark retention, who may read, and api deliveries. */
export const seenSettings = defineSettings({
  owner: "services/seen",
  title: "Seen",
  settings: {
    seenDefaultRetentionSeconds: setting({
      variable: "SEEN_DEFAULT_RETENTION",
      kind: duration({ unit: "s", min: "1s", max: "3650d" }),
      default: "30d",
      doc: "how long marks of a tag without a retention of its own are remembered",
    }),
    seenIdentityClaims: setting({
      variable: "SEEN_IDENTITY_CLAIMS",
      kind: claimMapping,
      default: "",
      doc: `where Seen reads identity fields from verified token claims: \`FIELD=CLAIM\` pairs (\`db_id=park_id,phone_id=device.phone\`); fields ${seenIdentityFields.map((field) => `\`${field}\``).join(", ")}, each read from the claim of its own name unless mapped`,
    }),
    seenServiceToken: setting({
      variable: "SEEN_SERVICE_TOKEN",
      kind: secret,
      doc: "bearer token of services calling `LookupSeen` and reading topic feeds; the admin token works too",
    }),
    seenDeliveryConcurrency: setting({
      variable: "SEEN_DELIVERY_CONCURRENCY",
      kind: integer(1, 1_000),
      default: "32",
      doc: "Seen api deliveries one worker process sends at once",
    }),
    seenHistorySeconds: setting({
      variable: "SEEN_DELIVERY_HISTORY",
      kind: duration({ unit: "s", min: "1s", max: "3650d" }),
      default: "30d",
      doc: "how long finished api deliveries and their attempts stay in Postgres (ClickHouse keeps the attempts)",
    }),
    seenAllowPrivate: setting({
      variable: "SEEN_ALLOW_PRIVATE",
      kind: boolean,
      default: "false",
      doc: "`true` lets api deliveries reach loopback, private, link-local, metadata and every other non-public address (tests, consumers inside a closed network; see [SSRF guard](postback.md#ssrf-guard))",
    }),
  },
});
