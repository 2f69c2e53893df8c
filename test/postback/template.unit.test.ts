import { describe, expect, it } from "vitest";
import type { EventPostback } from "../../services/postback/partner.js";
import { renderRequest } from "../../services/postback/render.js";
import {
  bodyEscaping,
  parseTemplate,
  parseUrlTemplate,
  PLACEHOLDER_NAMES,
  renderTemplate,
  SAMPLE_VALUES,
  TemplateError,
  type TemplateValues,
} from "../../services/postback/template.js";

/** `position: reason` of the TemplateError `parse` throws, or "parsed". */
function problem(source: string, parse = parseTemplate): string {
  try {
    parse(source);
  } catch (error) {
    if (error instanceof TemplateError) return `${error.position}: ${error.reason}`;
    throw error;
  }
  return "parsed";
}

const values: TemplateValues = { ...SAMPLE_VALUES, userId: 'a b&c="d"\n/é', params: { utm: "x y", "a-b": "1&2" }, occurredAt: new Date(1_700_000_000_123) };

describe("templates", () => {
  it("reports unknown placeholders and unterminated braces with their position", () => {
    expect(problem("https://x/?u={userId}")).toBe("14: unknown placeholder {userId} (did you mean {userID}?)");
    expect(problem("https://x/?a={stag_clickID")).toBe('14: unterminated placeholder "{stag_clickID": expected "}" at position 27');
    expect(problem("https://x/{bogus}")).toMatch(/^11: unknown placeholder \{bogus\} \(known: \{stag\}, /);
    expect(problem("{stag} {bogus-name}")).toMatch(/^8: unknown placeholder \{bogus-name\} \(known: /);
    // A character a name may not hold ends it where it stands.
    expect(problem("{stag x}")).toBe('1: unterminated placeholder "{stag ": expected "}" at position 6');
    expect(problem("{params.}")).toMatch(/^1: unknown placeholder \{params\.\}/);
    expect(problem('{"a":{stag},"b":[{"c":1}]}')).toBe("parsed");
    expect(problem("{1} { } {} {")).toBe("parsed");
  });

  it("names every placeholder in the error, as the docs list them", () => {
    expect(PLACEHOLDER_NAMES).toEqual([
      "{stag}",
      "{stag_partnerId}",
      "{stag_clickID}",
      "{userID}",
      "{deviceID}",
      "{event}",
      "{timestamp}",
      "{timestamp_ms}",
      "{delivery_id}",
      "{params.NAME}",
    ]);
    expect(new TemplateError(3, "why").message).toBe("position 3: why");
  });

  it("renders literal braces, {{ and every placeholder", () => {
    const template = parseTemplate("{{stag}={stag}|{stag_partnerId}|{stag_clickID}|{userID}|{deviceID}|{event}|{timestamp}|{timestamp_ms}|{delivery_id}|{params.a-b}|{params.none}");
    expect(renderTemplate(template, { ...SAMPLE_VALUES, params: { "a-b": "x y" }, occurredAt: new Date(1_700_000_000_123) }, "url")).toBe(
      "{stag}=PARTNER_CLICK|PARTNER|CLICK|USER|DEVICE|install|1700000000|1700000000123|00000000-0000-0000-0000-000000000000|x%20y|",
    );
    expect(renderTemplate(parseTemplate(""), values, "url")).toBe("");
    expect(renderTemplate(parseTemplate("{{{{"), values, "url")).toBe("{{");
  });

  it("escapes each value for where it lands, and never the literal text around it", () => {
    const template = parseTemplate("u={userID}&p={params.utm}&q=&=");
    expect(renderTemplate(template, values, "url")).toBe("u=a%20b%26c%3D%22d%22%0A%2F%C3%A9&p=x%20y&q=&=");
    expect(renderTemplate(template, values, "form")).toBe("u=a+b%26c%3D%22d%22%0A%2F%C3%A9&p=x+y&q=&=");
    expect(renderTemplate(template, values, "json")).toBe('u=a b&c=\\"d\\"\\n/é&p=x y&q=&=');
    expect(renderTemplate(template, values, "none")).toBe('u=a b&c="d"\n/é&p=x y&q=&=');
    // A value that breaks out of a JSON string in "none" stays inside it in "json".
    const body = parseTemplate('{"user":"{userID}"}');
    expect(JSON.parse(renderTemplate(body, values, "json"))).toEqual({ user: values.userId });
  });

  it("takes only http and https URLs that parse once filled in, with a host and no credentials", () => {
    expect(problem("https://t.example/?c={stag_clickID}", parseUrlTemplate)).toBe("parsed");
    expect(problem("HTTP://t.example/", parseUrlTemplate)).toBe("parsed");
    expect(problem("ftp://t.example/", parseUrlTemplate)).toBe("1: the URL must start with http:// or https://");
    expect(problem("//t.example/", parseUrlTemplate)).toBe("1: the URL must start with http:// or https://");
    expect(problem("https://", parseUrlTemplate)).toBe("1: not a valid URL once filled in");
    expect(problem("https://u:p@t.example/", parseUrlTemplate)).toBe("1: credentials in the URL are not allowed; use a header");
    expect(problem("https://{userID}@t.example/", parseUrlTemplate)).toBe("1: credentials in the URL are not allowed; use a header");
    expect(problem("https://t.example/{bogus}", parseUrlTemplate)).toMatch(/^19: unknown placeholder \{bogus\}/);
  });

  it("escapes a body as JSON for JSON media types and as a form for urlencoded ones", () => {
    expect(bodyEscaping("application/json")).toBe("json");
    expect(bodyEscaping("Application/JSON; charset=utf-8")).toBe("json");
    expect(bodyEscaping("application/vnd.api+json")).toBe("json");
    expect(bodyEscaping("application/x-www-form-urlencoded")).toBe("form");
    expect(bodyEscaping("text/plain")).toBe("none");
    expect(bodyEscaping("application/jsonl")).toBe("none");
    expect(bodyEscaping("")).toBe("none");
  });
});

describe("the request a partner receives", () => {
  const event = (overrides: Partial<EventPostback>): EventPostback => ({
    enabled: true,
    urlTemplate: "",
    method: "GET",
    bodyTemplate: "",
    contentType: "",
    headers: { "x-key": "k" },
    ...overrides,
  });
  const url = parseTemplate("https://t.example/i?u={userID}&s={stag}");

  it("sends GET with the URL filled in and no body, whatever body template it has", () => {
    expect(renderRequest(event({ contentType: "application/json" }), { url, body: parseTemplate('{"u":"{userID}"}') }, values, 5_000)).toEqual({
      method: "GET",
      url: "https://t.example/i?u=a%20b%26c%3D%22d%22%0A%2F%C3%A9&s=PARTNER_CLICK",
      headers: { "x-key": "k" },
      body: undefined,
      timeoutMs: 5_000,
    });
  });

  it("sends POST with the body escaped for its content type, which it names", () => {
    const json = renderRequest(event({ method: "POST", contentType: "application/json" }), { url, body: parseTemplate('{"u":"{userID}","t":{timestamp}}') }, values, 1_000);
    expect(json.headers).toEqual({ "x-key": "k", "content-type": "application/json" });
    expect(JSON.parse(json.body ?? "")).toEqual({ u: values.userId, t: 1_700_000_000 });
    const form = renderRequest(event({ method: "POST", contentType: "application/x-www-form-urlencoded" }), { url, body: parseTemplate("u={userID}") }, values, 1_000);
    expect(form.body).toBe("u=a+b%26c%3D%22d%22%0A%2F%C3%A9");
    expect(new URLSearchParams(form.body).get("u")).toBe(values.userId);
  });

  it("sends POST without a body template as an empty body, and no content type it was not given", () => {
    const request = renderRequest(event({ method: "POST" }), { url, body: undefined }, values, 1_000);
    expect([request.body, request.headers]).toEqual(["", { "x-key": "k" }]);
  });
});
