import { useEffect, useState } from "preact/hooks";

/** A parsed hash route: `#/partners/p1?tab=x` → path ["partners","p1"], params tab=x. */
export interface Route {
  readonly path: readonly string[];
  readonly params: URLSearchParams;
}

function parse(hash: string): Route {
  const raw = hash.replace(/^#\/?/, "");
  const [pathPart = "", query = ""] = raw.split("?", 2);
  const decode = (segment: string) => {
    try {
      return decodeURIComponent(segment);
    } catch {
      // A hand-edited address with a broken escape: keep the text as it is.
      return segment;
    }
  };
  return { path: pathPart.split("/").filter(Boolean).map(decode), params: new URLSearchParams(query) };
}

/**
 * The current hash route. Hash routes keep the server's part to three files:
 * every page of the console is `/console/` to the server.
 */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(location.hash));
  useEffect(() => {
    const update = () => setRoute(parse(location.hash));
    addEventListener("hashchange", update);
    return () => removeEventListener("hashchange", update);
  }, []);
  return route;
}

/** The href of a route: `href("partners", id)` → `#/partners/<id>`, with optional query parameters. */
export function href(...parts: (string | Record<string, string | undefined>)[]): string {
  const segments: string[] = [];
  const params = new URLSearchParams();
  for (const part of parts) {
    if (typeof part === "string") segments.push(encodeURIComponent(part));
    else for (const [k, v] of Object.entries(part)) if (v !== undefined && v !== "") params.set(k, v);
  }
  const query = params.toString();
  return `#/${segments.join("/")}${query === "" ? "" : `?${query}`}`;
}

/** Goes to a route (adds a history entry, like a link). */
export function navigate(to: string): void {
  location.hash = to;
}
