import type { EventTypes } from "./events.js";
import { uuid } from "./ids.js";

type Track = <N extends "page_view_start" | "page_view_end">(type: N, fields: EventTypes[N]) => unknown;

/** The page view in progress: started on load, ended when the page is left. */
export interface PageViews {
  /** Ends the current view, if any (the page is hidden for good or the route changed). */
  end(): void;
  /** Starts a new view unless one is in progress. */
  start(): void;
}

/**
 * Tracks `page_view_start` when the page loads and `page_view_end`, with the
 * same `page_view_id`, when it is left; a page restored from the back-forward
 * cache starts a new view. With `spa`, a route change through the history API
 * (`pushState`, `replaceState`, back and forward) ends the view and starts the
 * next one when the path or query changes.
 */
export function trackPageViews(track: Track, pageType: () => string, spa: boolean): PageViews {
  let current: EventTypes["page_view_start"] | undefined;
  const views: PageViews = {
    start() {
      if (current !== undefined) return;
      current = { page_view_id: uuid(), page_type: pageType() };
      track("page_view_start", current);
    },
    end() {
      if (current === undefined) return;
      track("page_view_end", current);
      current = undefined;
    },
  };
  views.start();
  if (spa) {
    let route = location.pathname + location.search;
    const changed = (): void => {
      const next = location.pathname + location.search;
      if (next === route) return;
      route = next;
      views.end();
      views.start();
    };
    for (const name of ["pushState", "replaceState"] as const) {
      const original = history[name].bind(history);
      history[name] = (...args) => {
        original(...args);
        changed();
      };
    }
    addEventListener("popstate", changed);
  }
  return views;
}
