import { defineSettings, duration, oneOf, setting, type Kind } from "../core/settings.js";

/** The `SameSite` values of the pixel's cookie (see TRACKER_COOKIE_SAMESITE). */
export const cookieSameSites = ["lax", "strict", "none"] as const;
export type CookieSameSite = (typeof cookieSameSites)[number];

/** A domain name for a cookie's `Domain`: a leading dot is dropped, read in lower case. */
const cookieDomain: Kind<string> = {
  values: "domain name",
  read(value, context) {
    const domain = value.replace(/^\./, "").toLowerCase();
    // A registrable name of letters, digits, hyphens and dots: anything else would break the Set-Cookie header.
    if (!/^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/.test(domain)) {
      context.problem(`${JSON.stringify(value.slice(0, 100))} is not a domain name such as example.com`);
    }
    return domain;
  },
};

/** The tracker service's settings: its cache and the pixel's cookie. */
export const trackerSettings = defineSettings({
  owner: "services/tracker",
  title: "Trackers",
  settings: {
    trackerCacheRefreshSeconds: setting({
      variable: "TRACKER_CACHE_REFRESH_SECONDS",
      kind: duration({ unit: "s", min: "1s", max: "1d" }),
      default: "30",
      doc: "full reload of the in-memory trackers; the longest a changed tracker value can be served stale if its change notification is lost",
    }),
    trackerCookieDomain: setting({
      variable: "TRACKER_COOKIE_DOMAIN",
      kind: cookieDomain,
      doc: "`Domain` of the pixel's `user_id` cookie: `example.com` shares one id between `www.example.com`, `shop.example.com`… (the pixel's host must be inside it); unset: the pixel's host only (see [Tracker › The user_id cookie](tracker.md#the-user_id-cookie))",
    }),
    trackerCookieSameSite: setting({
      variable: "TRACKER_COOKIE_SAMESITE",
      kind: oneOf(cookieSameSites),
      doc: "`SameSite` of the pixel's cookie (`none` implies `Secure`); unset: `none; Secure` when the hit came over HTTPS (directly, or as `X-Forwarded-Proto: https` from a `TRUSTED_PROXIES` peer), `lax` over plain HTTP",
    }),
  },
});
