// Compile-time checks of `track`: `npm run typecheck` compiles this file, and
// every `@ts-expect-error` line must be an error for it to pass.
import { createFunnel } from "../src/index.js";

const funnel = createFunnel({ baseUrl: "https://events.example.com", pageViews: false });

funnel.track("element_click", { element_type: "movie", page_type: "category" });
funnel.track("page_view_start", { page_view_id: "0b7e7a4e-6a55-4c1e-9a43-1f5c9d9a4b10", page_type: "movie" });
funnel.track("quality_change", { video_id: "v-1", old_quality: 720, new_quality: 1080 });
funnel.track("video_complete", { video_id: "v-2", duration_total: true });
funnel.track("search_filter", { search_query: "space", filters: "genre=drama" });

// @ts-expect-error an unknown event type
funnel.track("page_scroll", { element_type: "movie", page_type: "category" });
// @ts-expect-error an unknown field
funnel.track("element_click", { element_type: "movie", page_type: "category", color: "red" });
// @ts-expect-error a missing field
funnel.track("element_click", { element_type: "movie" });
// @ts-expect-error a field of the wrong type
funnel.track("quality_change", { video_id: "v-1", old_quality: "720p", new_quality: 1080 });
// @ts-expect-error the generated (camelCase) name instead of the .proto one
funnel.track("element_click", { elementType: "movie", page_type: "category" });
// @ts-expect-error another type's fields
funnel.track("video_complete", { element_type: "movie", page_type: "category" });
