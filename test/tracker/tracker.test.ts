import http from "node:http";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import type { App } from "../../services/app.js";
import { pixelCookie } from "../../services/tracker/pixel.js";
import { runCliAsAdmin } from "../support/cli.js";
import { ADMIN_TOKEN, eventually, startTestApp } from "../support/stores.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** A real HTTP request, optionally from another loopback address (to be, or not be, a trusted proxy). */
function get(base: string, path: string, options: { headers?: Record<string, string>; from?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, base), { headers: options.headers, localAddress: options.from ?? "127.0.0.1", agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

interface EventRow {
  date: string;
  date_time: string;
  event_id: string;
  tracker_id: string;
  ip: string;
  user_id: string;
  user_agent: string;
  url: string;
  value: string;
}

describe("tracker", () => {
  let app: App;
  let trackers: Client<typeof TrackerService>;
  let anonymous: Client<typeof TrackerService>;

  const events = async (trackerId: string): Promise<EventRow[]> => {
    const result = await app.clickhouse.client.query({
      query: `SELECT toString(date) AS date, toString(date_time) AS date_time, toString(event_id) AS event_id, toString(tracker_id) AS tracker_id,
                     replaceRegexpOne(toString(ip), '^::ffff:', '') AS ip, toString(user_id) AS user_id, user_agent, url, value
                FROM (SELECT * FROM ${app.clickhouse.database}.tracker_events WHERE tracker_id = {id:UUID}) ORDER BY date_time`,
      query_params: { id: trackerId },
      format: "JSONEachRow",
    });
    return result.json<EventRow>();
  };
  /** Waits until the stream has delivered `count` hits of the tracker, then returns them. */
  const eventsOnceThere = (trackerId: string, count: number) =>
    eventually(async () => {
      const rows = await events(trackerId);
      return rows.length >= count ? rows : undefined;
    }, 10_000, `${count} hits in ClickHouse`);
  const newTracker = async (value = "campaign") => (await trackers.createTracker({ value })).tracker!.uuid;
  const outboxRows = async () => (await app.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM analytics_outbox")).rows[0]!.n;

  beforeAll(async () => {
    app = await startTestApp({ env: { TRUSTED_PROXIES: "127.0.0.2, 10.0.0.0/8", TRACKER_CACHE_REFRESH_SECONDS: "1" } });
    const transport = (token?: string) =>
      createConnectTransport({
        baseUrl: app.url,
        httpVersion: "1.1",
        interceptors: token === undefined ? [] : [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))],
      });
    trackers = createClient(TrackerService, transport(ADMIN_TOKEN));
    anonymous = createClient(TrackerService, transport());
  });
  afterAll(async () => {
    await app.stop();
  });

  describe("/track", () => {
    it("answers 204 with a new user_id cookie and records the hit with every column", async () => {
      const id = await newTracker("spring-sale");
      const before = Date.now();
      const res = await get(app.url, `/track?id=${id}&utm=mail`, { headers: { "user-agent": "TestBrowser/1.0" } });
      expect(res.status).toBe(204);
      expect(res.body).toBe("");
      expect(res.headers["cache-control"]).toBe("no-store");
      const cookie = res.headers["set-cookie"]?.[0] ?? "";
      expect(cookie).toMatch(/^user_id=[0-9a-f-]{36}; Max-Age=34560000; Path=\/; HttpOnly; SameSite=Lax$/);
      const userId = /^user_id=([^;]+)/.exec(cookie)![1]!;
      expect(userId).toMatch(UUID);

      const [row] = await eventsOnceThere(id, 1);
      const port = new URL(app.url).port;
      expect(row).toMatchObject({
        tracker_id: id,
        ip: "127.0.0.1",
        user_id: userId,
        user_agent: "TestBrowser/1.0",
        url: `http://127.0.0.1:${port}/track?id=${id}&utm=mail`,
        value: "spring-sale",
      });
      expect(row!.event_id).toMatch(UUID);
      const at = Date.parse(`${row!.date_time.replace(" ", "T")}Z`);
      expect(at).toBeGreaterThanOrEqual(before - 5);
      expect(at).toBeLessThanOrEqual(Date.now());
      expect(row!.date).toBe(new Date(at).toISOString().slice(0, 10));
      expect(row!.date_time).toMatch(/\.\d{3}$/);
    });

    it("keeps a valid user_id cookie (refreshing it) and replaces an invalid one", async () => {
      const id = await newTracker();
      const known = "3f2b8a9e-5c4d-4e6f-8a1b-2c3d4e5f6a7b";
      const kept = await get(app.url, `/track?id=${id}`, { headers: { cookie: `theme=dark; user_id=${known}` } });
      expect(kept.status).toBe(204);
      expect(kept.headers["set-cookie"]?.[0]).toMatch(new RegExp(`^user_id=${known}; Max-Age=34560000;`));
      const replaced = await get(app.url, `/track?id=${id}`, { headers: { cookie: "user_id=not-a-uuid" } });
      expect(replaced.status).toBe(204);
      const fresh = /^user_id=([^;]+)/.exec(replaced.headers["set-cookie"]?.[0] ?? "")?.[1];
      expect(fresh).toMatch(UUID);
      expect(fresh).not.toBe(known);
      const rows = await eventsOnceThere(id, 2);
      expect(rows.map((row) => row.user_id).sort()).toEqual([known, fresh].sort());
    });

    it("answers 400 for a missing or malformed id and 404 for an unknown one, recording nothing", async () => {
      await app.streamer?.drain();
      const outbox = await outboxRows();
      const missing = await get(app.url, "/track");
      expect(missing.status).toBe(400);
      expect(JSON.parse(missing.body)).toEqual({ error: "id: required (a tracker UUID)" });
      const malformed = await get(app.url, "/track?id=12345");
      expect(malformed.status).toBe(400);
      expect(JSON.parse(malformed.body)).toEqual({ error: "id: not a UUID" });
      const unknownId = "00000000-0000-4000-8000-000000000000";
      const unknown = await get(app.url, `/track?id=${unknownId}`);
      expect(unknown.status).toBe(404);
      expect(JSON.parse(unknown.body)).toEqual({ error: `id: no tracker ${unknownId}` });
      for (const res of [missing, malformed, unknown]) expect(res.headers["set-cookie"]).toBeUndefined();
      expect(await outboxRows()).toBe(outbox);
      expect(await events(unknownId)).toEqual([]);
    });

    it("believes forwarding headers only from a trusted proxy, reading X-Forwarded-For from the right", async () => {
      const id = await newTracker();
      const viaProxy = await get(app.url, `/track?id=${id}&p=1`, {
        from: "127.0.0.2",
        headers: {
          "x-forwarded-for": "198.51.100.7, 203.0.113.9, 10.1.2.3",
          "x-forwarded-proto": "https",
          "x-forwarded-host": "pixel.example.com",
        },
      });
      expect(viaProxy.status).toBe(204);
      expect(viaProxy.headers["set-cookie"]?.[0]).toMatch(/; Secure$/);
      const realIp = await get(app.url, `/track?id=${id}&p=2`, { from: "127.0.0.2", headers: { "x-real-ip": "192.0.2.44" } });
      expect(realIp.status).toBe(204);
      const forged = await get(app.url, `/track?id=${id}&p=3`, {
        from: "127.0.0.1",
        headers: { "x-forwarded-for": "198.51.100.66", "x-real-ip": "198.51.100.67", "x-forwarded-proto": "https", "x-forwarded-host": "evil.example" },
      });
      expect(forged.status).toBe(204);
      expect(forged.headers["set-cookie"]?.[0]).not.toMatch(/Secure/);

      const rows = await eventsOnceThere(id, 3);
      const byUrl = new Map(rows.map((row) => [row.url.split("&p=")[1], row]));
      const port = new URL(app.url).port;
      // 10.1.2.3 is a trusted proxy too; 203.0.113.9 is the first untrusted hop; 198.51.100.7 was written by the client.
      expect(byUrl.get("1")).toMatchObject({ ip: "203.0.113.9", url: `https://pixel.example.com/track?id=${id}&p=1` });
      expect(byUrl.get("2")).toMatchObject({ ip: "192.0.2.44", url: `http://127.0.0.1:${port}/track?id=${id}&p=2` });
      expect(byUrl.get("3")).toMatchObject({ ip: "127.0.0.1", url: `http://127.0.0.1:${port}/track?id=${id}&p=3` });
    });

    it("records N concurrent hits exactly once each, and /stats counts N", async () => {
      const id = await newTracker("load");
      const n = 200;
      const answers = await Promise.all(Array.from({ length: n }, (_, i) => get(app.url, `/track?id=${id}&i=${i}`)));
      expect(answers.every((res) => res.status === 204)).toBe(true);
      const rows = await eventsOnceThere(id, n);
      await app.streamer?.drain();
      const settled = await events(id);
      expect(settled).toHaveLength(n);
      expect(new Set(settled.map((row) => row.event_id)).size).toBe(n);
      expect(new Set(settled.map((row) => row.url.split("&i=")[1])).size).toBe(n);
      expect(rows.every((row) => row.value === "load" && row.ip === "127.0.0.1")).toBe(true);
      const today = new Date().toISOString().slice(0, 10);
      const stats = await get(app.url, `/stats?tracker_id=${id}&from=${today}&to=${today}`);
      expect(stats.status).toBe(200);
      expect(JSON.parse(stats.body)).toEqual({ tracker_id: id, from: today, to: today, count: n });
    });

    it("keeps rows equal to 204s under a paced 100 req/s load (the soak, shortened)", async () => {
      const id = await newTracker("soak");
      const answers: Promise<Answer>[] = [];
      for (let i = 0; i < 300; i += 1) {
        answers.push(get(app.url, `/track?id=${id}&n=${i}`));
        if (i % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const ok = (await Promise.all(answers)).filter((res) => res.status === 204).length;
      expect(ok).toBe(300);
      await eventsOnceThere(id, ok);
      await app.streamer?.drain();
      expect(await events(id)).toHaveLength(ok);
    });

    it("answers ?format=gif with a transparent 1×1 GIF (200) and records the hit; refuses other formats", async () => {
      const id = await newTracker("gif");
      const res = await fetch(`${app.url}/track?id=${id}&format=gif`, { headers: { accept: "image/avif,image/webp,image/*,*/*;q=0.8" } });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("image/gif");
      expect(res.headers.get("cache-control")).toBe("no-store");
      expect(res.headers.get("set-cookie")).toMatch(/^user_id=[0-9a-f-]{36}; /);
      const gif = Buffer.from(await res.arrayBuffer());
      expect(gif.subarray(0, 6).toString("latin1")).toBe("GIF89a");
      expect([gif.readUInt16LE(6), gif.readUInt16LE(8)]).toEqual([1, 1]);
      expect(gif.at(-1)).toBe(0x3b);
      // An <img>'s Accept header alone does not change the answer: the default stays 204.
      const plain = await fetch(`${app.url}/track?id=${id}`, { headers: { accept: "image/avif,image/webp,image/*,*/*;q=0.8" } });
      expect(plain.status).toBe(204);
      expect(await eventsOnceThere(id, 2)).toHaveLength(2);
      const other = await get(app.url, `/track?id=${id}&format=png`);
      expect(other.status).toBe(400);
      expect(JSON.parse(other.body)).toEqual({ error: 'format: must be "gif" or absent (204)' });
      expect(other.headers["set-cookie"]).toBeUndefined();
    });

    it("writes the cookie for the scheme and the settings: None; Secure over HTTPS, Lax over HTTP, the configured Domain and SameSite", () => {
      const userId = "3f2b8a9e-5c4d-4e6f-8a1b-2c3d4e5f6a7b";
      const over = (scheme: "http" | "https") => ({ ip: "192.0.2.1", scheme, host: "pixel.example.com", url: `${scheme}://pixel.example.com/track` });
      const base = `user_id=${userId}; Max-Age=34560000; Path=/`;
      const defaults = { domain: undefined, sameSite: undefined };
      expect(pixelCookie(userId, over("https"), defaults)).toBe(`${base}; HttpOnly; SameSite=None; Secure`);
      expect(pixelCookie(userId, over("http"), defaults)).toBe(`${base}; HttpOnly; SameSite=Lax`);
      expect(pixelCookie(userId, over("https"), { domain: "example.com", sameSite: undefined })).toBe(`${base}; Domain=example.com; HttpOnly; SameSite=None; Secure`);
      expect(pixelCookie(userId, over("https"), { domain: undefined, sameSite: "lax" })).toBe(`${base}; HttpOnly; SameSite=Lax; Secure`);
      expect(pixelCookie(userId, over("http"), { domain: undefined, sameSite: "strict" })).toBe(`${base}; HttpOnly; SameSite=Strict`);
      // None without Secure is refused by browsers: it always carries Secure.
      expect(pixelCookie(userId, over("http"), { domain: undefined, sameSite: "none" })).toBe(`${base}; HttpOnly; SameSite=None; Secure`);
    });

    it("rejects methods other than GET", async () => {
      const id = await newTracker();
      const res = await fetch(`${app.url}/track?id=${id}`, { method: "POST" });
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe("GET");
    });
  });

  describe("tracker cache", () => {
    it("serves a tracker inserted behind its back within a second, though the id was just unknown", async () => {
      const id = "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6";
      expect((await get(app.url, `/track?id=${id}`)).status).toBe(404);
      const inserted = Date.now();
      await app.pool.query("INSERT INTO trackers (uuid, value) VALUES ($1, 'from psql')", [id]);
      await eventually(async () => ((await get(app.url, `/track?id=${id}`)).status === 204 ? true : undefined), 2_000, "the new tracker");
      expect(Date.now() - inserted).toBeLessThan(1_000);
    });

    it("records a changed value within a second (NOTIFY), and within the refresh bound when the notification is lost", async () => {
      const id = await newTracker("v1");
      await app.pool.query("UPDATE trackers SET value = 'v2', updated_at = clock_timestamp() WHERE uuid = $1", [id]);
      const changed = Date.now();
      await eventually(async () => {
        await get(app.url, `/track?id=${id}`);
        const rows = await events(id);
        return rows.some((row) => row.value === "v2") ? true : undefined;
      }, 3_000, "a hit with the new value");
      expect(Date.now() - changed).toBeLessThan(2_000);

      // No trigger, no NOTIFY: only the periodic reload (TRACKER_CACHE_REFRESH_SECONDS=1 here) can see it.
      await app.pool.query("ALTER TABLE trackers DISABLE TRIGGER trackers_notify");
      try {
        await app.pool.query("UPDATE trackers SET value = 'v3', updated_at = clock_timestamp() WHERE uuid = $1", [id]);
        const silent = Date.now();
        await eventually(async () => {
          await get(app.url, `/track?id=${id}`);
          return (await events(id)).some((row) => row.value === "v3") ? true : undefined;
        }, 5_000, "a hit with the silently changed value");
        expect(Date.now() - silent).toBeLessThan(1_000 + 1_500);
      } finally {
        await app.pool.query("ALTER TABLE trackers ENABLE TRIGGER trackers_notify");
      }
    });

    it("answers a flood of random unknown ids with 404, batching the lookups, then from memory", async () => {
      const queries = async () => {
        const text = await app.metrics.getSingleMetricAsString("funnel_tracker_cache_queries_total");
        return Number(/kind="miss"} (\d+)/.exec(text)?.[1] ?? 0);
      };
      const before = await queries();
      const ids = Array.from({ length: 300 }, (_, i) => `00000000-0000-4000-9000-${String(i).padStart(12, "0")}`);
      const answers = await Promise.all(ids.map((id) => get(app.url, `/track?id=${id}`)));
      expect(answers.every((res) => res.status === 404)).toBe(true);
      // One lookup query at a time; ids arriving meanwhile share the next one.
      expect((await queries()) - before).toBeLessThan(ids.length);
      // Remembered as unknown (for a second): asking again right away costs nothing. Fresh ids,
      // so that a slow flood on a loaded machine cannot have outlived the memory of its first ids.
      const fresh = ids.slice(0, 50).map((id) => id.replace("-9000-", "-9001-"));
      await Promise.all(fresh.map((id) => get(app.url, `/track?id=${id}`)));
      const again = await queries();
      await Promise.all(fresh.map((id) => get(app.url, `/track?id=${id}`)));
      expect(await queries()).toBe(again);
    });
  });

  describe("/stats", () => {
    let id: string;
    beforeAll(async () => {
      id = await newTracker("stats");
      const at = (dateTime: string) => ({
        date: dateTime.slice(0, 10),
        date_time: dateTime,
        event_id: crypto.randomUUID(),
        tracker_id: id,
        ip: "192.0.2.1",
        user_id: crypto.randomUUID(),
        user_agent: "",
        url: "http://x/track",
        value: "stats",
      });
      await app.clickhouse.client.insert({
        table: `${app.clickhouse.database}.tracker_events`,
        format: "JSONEachRow",
        values: ["2026-01-01 00:00:00.000", "2026-01-01 23:59:59.999", "2026-01-02 12:00:00.000", "2026-01-03 00:00:00.000", "2025-12-31 23:59:59.999"].map(at),
      });
    });
    const stats = async (query: string) => {
      const res = await get(app.url, `/stats?${query}`);
      return { status: res.status, body: JSON.parse(res.body) as Record<string, unknown> };
    };

    it("counts whole UTC days, both ends inclusive", async () => {
      expect(await stats(`tracker_id=${id}&from=2026-01-01&to=2026-01-02`)).toEqual({
        status: 200,
        body: { tracker_id: id, from: "2026-01-01", to: "2026-01-02", count: 3 },
      });
      expect((await stats(`tracker_id=${id}&from=2026-01-02&to=2026-01-02`)).body.count).toBe(1);
      expect((await stats(`tracker_id=${id}&from=2025-12-31&to=2026-01-03`)).body.count).toBe(5);
      expect((await stats(`tracker_id=${id}&from=2027-01-01&to=2027-12-31`)).body.count).toBe(0);
    });

    it("counts RFC 3339 ranges to the millisecond, inclusive", async () => {
      const range = (from: string, to: string) => `tracker_id=${id}&from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;
      expect((await stats(range("2026-01-01T23:59:59.999Z", "2026-01-03T00:00:00Z"))).body.count).toBe(3);
      expect((await stats(range("2026-01-01T00:00:00.001Z", "2026-01-02T23:59:59.999Z"))).body.count).toBe(2);
      // The same instant in another offset.
      expect((await stats(range("2026-01-01T03:00:00+03:00", "2026-01-01T03:00:00+03:00"))).body.count).toBe(1);
    });

    it("answers 400 naming the parameter for bad or reversed ranges, 404 for an unknown tracker", async () => {
      const cases: [string, string][] = [
        [`from=2026-01-01&to=2026-01-02`, "tracker_id: required (a tracker UUID)"],
        [`tracker_id=nope&from=2026-01-01&to=2026-01-02`, "tracker_id: not a UUID"],
        [`tracker_id=${id}&to=2026-01-02`, "from: required (YYYY-MM-DD or an RFC 3339 timestamp)"],
        [`tracker_id=${id}&from=2026-01-01`, "to: required (YYYY-MM-DD or an RFC 3339 timestamp)"],
        [`tracker_id=${id}&from=2026-02-30&to=2026-03-01`, 'from: "2026-02-30" is not a calendar day'],
        [`tracker_id=${id}&from=yesterday&to=2026-03-01`, 'from: "yesterday" is not a day (YYYY-MM-DD) or an RFC 3339 timestamp'],
        [`tracker_id=${id}&from=2026-01-03&to=2026-01-02`, "to: 2026-01-02 is before from (2026-01-03)"],
      ];
      for (const [query, error] of cases) expect(await stats(query), query).toEqual({ status: 400, body: { error } });
      const unknown = "00000000-0000-4000-8000-00000000beef";
      expect(await stats(`tracker_id=${unknown}&from=2026-01-01&to=2026-01-02`)).toEqual({ status: 404, body: { error: `tracker_id: no tracker ${unknown}` } });
    });

    it("GetStats gives the total and the per-day breakdown", async () => {
      const res = await anonymous.getStats({ trackerId: id, from: "2025-12-31", to: "2026-01-03" });
      expect(res.count).toBe(5n);
      expect(res.days.map((day) => [day.date, day.count])).toEqual([
        ["2025-12-31", 1n],
        ["2026-01-01", 2n],
        ["2026-01-02", 1n],
        ["2026-01-03", 1n],
      ]);
      await expect(anonymous.getStats({ trackerId: id, from: "2026-01-03", to: "2026-01-01" })).rejects.toThrow(/invalid_argument.*to: 2026-01-01 is before from/);
    });
  });

  describe("TrackerService", () => {
    it("requires the admin token for every method but GetStats", async () => {
      await expect(anonymous.createTracker({ value: "x" })).rejects.toThrow(/unauthenticated/);
      await expect(anonymous.listTrackers({})).rejects.toThrow(/unauthenticated/);
      const id = await newTracker("campaign value");
      await expect(anonymous.updateTracker({ uuid: id, value: "y" })).rejects.toThrow(/unauthenticated/);
      // The pixel's UUID is public (it is in every page that embeds it); the value is not.
      const read = await anonymous.getTracker({ uuid: id }).catch((error: unknown) => ConnectError.from(error));
      expect(read).toBeInstanceOf(ConnectError);
      expect((read as ConnectError).code).toBe(Code.Unauthenticated);
      expect((read as ConnectError).rawMessage).not.toContain("campaign value");
      expect((await trackers.getTracker({ uuid: id })).tracker?.value).toBe("campaign value");
      expect((await anonymous.getStats({ trackerId: id, from: "2026-01-01", to: "2026-01-01" })).count).toBe(0n);
    });

    it("validates input, naming the field, and stores nothing", async () => {
      const count = async () => (await app.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM trackers")).rows[0]!.n;
      const before = await count();
      await expect(trackers.createTracker({ value: "" })).rejects.toThrow(/invalid_argument.*value: required/);
      await expect(trackers.createTracker({ value: "x".repeat(1001) })).rejects.toThrow(/value: longer than 1000 characters/);
      await expect(trackers.createTracker({ value: "a\0b" })).rejects.toThrow(/value: contains a NUL character/);
      await expect(trackers.getTracker({ uuid: "zzz" })).rejects.toThrow(/invalid_argument.*uuid: "zzz" is not a UUID/);
      await expect(trackers.updateTracker({ uuid: "00000000-0000-4000-8000-000000000001", value: "v" })).rejects.toThrow(/not_found/);
      await expect(trackers.listTrackers({ pageSize: 5000 })).rejects.toThrow(/page_size: must be from 1 to 1000/);
      await expect(trackers.listTrackers({ pageToken: "garbage" })).rejects.toThrow(/page_token: not a token this service issued for ListTrackers/);
      expect(await count()).toBe(before);
    });

    it("pages through every tracker in creation order without repeats", async () => {
      for (let i = 0; i < 7; i += 1) await newTracker(`page-${i}`);
      const { rows } = await app.pool.query<{ uuid: string }>("SELECT uuid::text AS uuid FROM trackers ORDER BY created_at, uuid");
      const seen: string[] = [];
      let pageToken = "";
      do {
        const page = await trackers.listTrackers({ pageSize: 3, pageToken });
        expect(page.trackers.length).toBeLessThanOrEqual(3);
        seen.push(...page.trackers.map((t) => t.uuid));
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      expect(seen).toEqual(rows.map((row) => row.uuid));
    });

    it("UpdateTracker changes the value that the next hit records", async () => {
      const id = await newTracker("before");
      const updated = await trackers.updateTracker({ uuid: id, value: "after" });
      expect(updated.tracker?.value).toBe("after");
      expect((await get(app.url, `/track?id=${id}`)).status).toBe(204);
      const [row] = await eventsOnceThere(id, 1);
      expect(row?.value).toBe("after");
    });
  });

  describe("funnel trackers (CLI)", () => {
    const funnel = (...args: string[]) => runCliAsAdmin(app, args);

    it("creates, shows, changes, lists and counts a tracker", async () => {
      const created = await funnel("trackers", "create", "--value", "from the CLI");
      expect(created.code).toBe(0);
      const id = created.stdout.trim();
      expect(id).toMatch(UUID);
      const shown = await funnel("trackers", "show", id, "--json");
      expect(JSON.parse(shown.stdout)).toMatchObject({ uuid: id, value: "from the CLI" });
      expect((await funnel("trackers", "set-value", id, "renamed")).stdout.trim()).toBe(`${id}: renamed`);
      const listed = await funnel("trackers", "list");
      expect(listed.stdout).toMatch(new RegExp(`^${id}\\s+renamed\\s`, "m"));
      expect((await get(app.url, `/track?id=${id}`)).status).toBe(204);
      await eventsOnceThere(id, 1);
      const today = new Date().toISOString().slice(0, 10);
      const counted = await funnel("trackers", "stats", id, "--from", today, "--to", today, "--json");
      expect(JSON.parse(counted.stdout)).toMatchObject({ trackerId: id, count: 1, days: [{ date: today, count: 1 }] });
    });

    it("explains usage mistakes in one line with exit status 2", async () => {
      const missing = await funnel("trackers", "create");
      expect(missing.code).toBe(2);
      expect(missing.stderr.trim()).toBe("funnel: trackers create: --value is required");
      const noRange = await funnel("trackers", "stats", "00000000-0000-4000-8000-000000000001", "--from", "2026-01-01");
      expect(noRange.code).toBe(2);
      expect(noRange.stderr.trim()).toBe("funnel: trackers stats: --to is required");
    });
  });
});
