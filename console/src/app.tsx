import { useEffect, useState } from "preact/hooks";
import { checkToken, onTokenRefused } from "./api.js";
import { DeliveriesPage } from "./pages/deliveries.js";
import { JobsPage } from "./pages/jobs.js";
import { OverviewPage } from "./pages/overview.js";
import { PartnersPage } from "./pages/partners.js";
import { QualityPage } from "./pages/quality.js";
import { SeenPage } from "./pages/seen.js";
import { TrackersPage } from "./pages/trackers.js";
import { queryClient } from "./query.js";
import { href, useRoute, type Route } from "./router.js";
import { clearToken, storedToken, storeToken } from "./session.js";

const PAGES = [
  { path: "", label: "Overview" },
  { path: "partners", label: "Partners" },
  { path: "deliveries", label: "Deliveries" },
  { path: "trackers", label: "Trackers" },
  { path: "jobs", label: "Jobs" },
  { path: "quality", label: "Ingest quality" },
  { path: "seen", label: "Seen" },
] as const;

function SignIn(props: { notice: string | undefined; onSignedIn: () => void }) {
  const [token, setToken] = useState("");
  const [problem, setProblem] = useState(props.notice);
  const [checking, setChecking] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    if (token.trim() === "") {
      setProblem("Enter the admin token.");
      return;
    }
    setChecking(true);
    const refused = await checkToken(token.trim());
    setChecking(false);
    if (refused !== undefined) {
      setProblem(refused);
      return;
    }
    storeToken(token.trim());
    props.onSignedIn();
  };
  return (
    <main class="sign-in">
      <h1>Funnel console</h1>
      <form onSubmit={(e) => void submit(e)} aria-describedby={problem !== undefined ? "sign-in-problem" : undefined}>
        <label for="token">Admin token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" value={token} onInput={(e) => setToken(e.currentTarget.value)} required />
        <p class="hint">The server's FUNNEL_ADMIN_TOKEN. It is kept in this tab only (sessionStorage) and sent as a header, never in a URL.</p>
        {problem !== undefined ? (
          <p id="sign-in-problem" class="error" role="alert">
            {problem}
          </p>
        ) : null}
        <button type="submit" class="primary" disabled={checking}>
          {checking ? "Checking…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}

function Page({ route }: { route: Route }) {
  switch (route.path[0] ?? "") {
    case "":
      return <OverviewPage />;
    case "partners":
      return <PartnersPage route={route} />;
    case "deliveries":
      return <DeliveriesPage route={route} />;
    case "trackers":
      return <TrackersPage route={route} />;
    case "jobs":
      return <JobsPage route={route} />;
    case "quality":
      return <QualityPage />;
    case "seen":
      return <SeenPage route={route} />;
    default:
      return (
        <section>
          <h1>Not found</h1>
          <p>
            No page at this address. <a href={href()}>Go to the overview</a>.
          </p>
        </section>
      );
  }
}

/** The console: the sign-in screen until a token works, then the pages. */
export function App() {
  const [signedIn, setSignedIn] = useState(() => storedToken() !== undefined);
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const route = useRoute();
  useEffect(
    () =>
      onTokenRefused(() => {
        queryClient.clear();
        setNotice("The server refused the token (it may have changed). Sign in again.");
        setSignedIn(false);
      }),
    [],
  );
  useEffect(() => {
    const current = PAGES.find((p) => p.path === (route.path[0] ?? ""));
    document.title = current !== undefined ? `${current.label} · Funnel console` : "Funnel console";
  }, [route]);
  if (!signedIn) return <SignIn notice={notice} onSignedIn={() => setSignedIn(true)} />;
  const active = route.path[0] ?? "";
  return (
    <div class="shell">
      <a
        class="skip"
        href="#content"
        onClick={(e) => {
          // The hash is the route: move focus without changing it.
          e.preventDefault();
          document.getElementById("content")?.focus();
        }}
      >
        Skip to content
      </a>
      <header>
        <span class="brand">Funnel</span>
        <nav aria-label="Pages">
          <ul>
            {PAGES.map((p) => (
              <li key={p.path}>
                <a href={href(p.path)} aria-current={p.path === active ? "page" : undefined}>
                  {p.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <button
          type="button"
          onClick={() => {
            clearToken();
            queryClient.clear();
            setNotice(undefined);
            setSignedIn(false);
          }}
        >
          Sign out
        </button>
      </header>
      <main id="content" tabIndex={-1}>
        <Page route={route} />
      </main>
    </div>
  );
}
