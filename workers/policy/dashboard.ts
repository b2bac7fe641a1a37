/**
 * The mesh dashboard (docs/dashboard.md): `GET /dashboard`, one page that shows the golden
 * metrics, the service graph, breakers, splits, denials and how far the config has propagated.
 *
 * The page is open because it holds nothing: the browser reads the data itself, from
 * `GET /v1/metrics` and `GET /v1/status`, with the credential the user gives it (the admin
 * token, or a JWT-SVID with the admin or viewer role),
 * so the admin API's authentication stays the only gate. The token travels in the URL's fragment
 * (`#token=…`, which a browser never sends) or through the page's form, and is kept in
 * sessionStorage.
 *
 * Its scripts — Apache ECharts' minified build and the page's own script — and its stylesheet are
 * served from this Worker (wrangler `[[rules]]` import them as text), never from a CDN: the page
 * works with no network but the policy Worker's. Each is served under a path that holds a hash
 * of its content, so it can be cached for a year and a new build is never mixed with an old one.
 * The page's Content-Security-Policy allows scripts from this origin only.
 */
import echartsSource from "echarts/dist/echarts.min";
import { Hono } from "hono";
import clientSource from "./dashboard/client.js";
import styleSource from "./dashboard/style.css";
import { AdminError } from "./errors.ts";

/** A static file the page loads. */
interface Asset {
  /** Its name before the hash: `echarts` → `/dashboard/assets/echarts.<hash>.min.js`. */
  readonly name: string;
  /** What follows the hash. */
  readonly suffix: string;
  readonly contentType: string;
  readonly source: string;
}

const ASSETS: readonly Asset[] = [
  {
    name: "echarts",
    suffix: ".min.js",
    contentType: "text/javascript; charset=utf-8",
    source: echartsSource,
  },
  {
    name: "dashboard",
    suffix: ".js",
    contentType: "text/javascript; charset=utf-8",
    source: clientSource,
  },
  { name: "style", suffix: ".css", contentType: "text/css; charset=utf-8", source: styleSource },
];

/** Where the assets are served; their file names hold the content hash. */
export const ASSETS_PATH = "/dashboard/assets/";
/** Hex digits of the SHA-256 of an asset in its file name. */
const HASH_LENGTH = 16;
/** A year: the longest a browser is asked to keep a versioned asset. */
const ASSET_CACHE_CONTROL = "public, max-age=31536000, immutable";

/** What the page may load and talk to: this origin only, scripts from files only. */
const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // ECharts positions its tooltips and labels with inline styles.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** An asset with its versioned file name. */
interface ServedAsset extends Asset {
  readonly file: string;
}

// Hashed once per isolate (SHA-256 of about a megabyte: a few milliseconds), on first use.
let served: Promise<Map<string, ServedAsset>> | undefined;

async function hashed(): Promise<Map<string, ServedAsset>> {
  const entries = await Promise.all(
    ASSETS.map(async (asset) => {
      const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(asset.source));
      const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
      const file = `${asset.name}.${hex.slice(0, HASH_LENGTH)}${asset.suffix}`;
      return [file, { ...asset, file }] as const;
    }),
  );
  return new Map(entries);
}

function assets(): Promise<Map<string, ServedAsset>> {
  served ??= hashed().catch((error: unknown) => {
    served = undefined;
    throw error;
  });
  return served;
}

/** The versioned path of the asset named `name`. */
function pathOf(files: Map<string, ServedAsset>, name: string): string {
  for (const asset of files.values()) if (asset.name === name) return ASSETS_PATH + asset.file;
  throw new Error(`the dashboard has no asset named ${name}`);
}

/** The page: structure only; the script fills it in from the admin API. */
function page(files: Map<string, ServedAsset>): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Meshwork dashboard</title>
<link rel="stylesheet" href="${pathOf(files, "style")}">
<script defer src="${pathOf(files, "echarts")}"></script>
<script defer src="${pathOf(files, "dashboard")}"></script>
</head>
<body>
<header class="top">
  <h1>Meshwork</h1>
  <div class="facts">
    <span id="config-version" data-testid="config-version" class="fact">config version …</span>
    <span id="propagation" data-testid="propagation" class="fact">propagation …</span>
    <span id="updated" data-testid="updated" class="fact muted">not loaded yet</span>
  </div>
  <button id="forget-token" type="button" hidden>Forget token</button>
</header>
<section id="auth" data-testid="auth" class="panel auth" hidden>
  <p id="auth-message" data-testid="auth-message"></p>
  <form id="token-form">
    <label>Admin token, or a JWT-SVID with the admin or viewer role
      <input id="token-input" name="token" type="password" autocomplete="off" required>
    </label>
    <button type="submit">Show the mesh</button>
  </form>
  <p class="muted">The token stays in this tab (sessionStorage) and is sent only to this policy
  Worker's admin API (the token as <code>Authorization: Bearer</code>, an SVID as
  <code>X-Mesh-SVID</code>). Open the page as
  <code>/dashboard#token=…</code> to skip this form.</p>
</section>
<p id="error" data-testid="error" class="banner" role="alert" hidden></p>
<main id="content" class="grid" hidden>
  <section class="panel wide">
    <h2>Requests per second <span class="muted" id="window-label"></span></h2>
    <div id="series-chart" data-testid="series-chart" class="chart"></div>
  </section>
  <section class="panel wide">
    <h2>Service graph</h2>
    <div id="service-graph" data-testid="service-graph" class="chart graph"></div>
    <p class="legend"><span class="dot good"></span>success ≥ 99%
      <span class="dot warn"></span>≥ 95% <span class="dot bad"></span>below
      <span class="dot idle"></span>no traffic</p>
  </section>
  <section class="panel wide">
    <h2>Edges</h2>
    <table data-testid="edges">
      <thead><tr><th>caller</th><th>destination</th><th>backend</th><th>route</th>
        <th class="num">RPS</th><th class="num">success</th><th class="num">p50</th>
        <th class="num">p95</th><th class="num">p99</th></tr></thead>
      <tbody id="edge-rows"></tbody>
    </table>
  </section>
  <section class="panel">
    <h2>Services</h2>
    <table data-testid="services">
      <thead><tr><th>service</th><th class="num">RPS</th><th class="num">success</th>
        <th class="num">p50</th><th class="num">p95</th><th class="num">p99</th></tr></thead>
      <tbody id="service-rows"></tbody>
    </table>
  </section>
  <section class="panel">
    <h2>Circuit breakers</h2>
    <ul id="breakers" data-testid="breakers" class="breakers"></ul>
  </section>
  <section class="panel">
    <h2>Traffic splits <span class="muted">configured / observed</span></h2>
    <div id="splits" data-testid="splits"></div>
  </section>
  <section class="panel">
    <h2>Recent denials</h2>
    <table data-testid="denials">
      <thead><tr><th>at</th><th>caller</th><th>destination</th><th>code</th><th>reason</th></tr></thead>
      <tbody id="denial-rows"></tbody>
    </table>
  </section>
  <section id="problems-panel" class="panel wide" hidden>
    <h2>Sources not read</h2>
    <ul id="problems" data-testid="problems"></ul>
  </section>
</main>
</body>
</html>
`;
}

/** The routes; mounted at the root of the policy Worker's app, before the admin API's auth. */
export const dashboard = new Hono();

dashboard.get("/dashboard", async (c) => {
  const html = page(await assets());
  return c.html(html, 200, {
    "content-security-policy": PAGE_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  });
});

dashboard.get(`${ASSETS_PATH}:file`, async (c) => {
  const files = await assets();
  const file = c.req.param("file");
  const asset = files.get(file);
  if (!asset) {
    throw new AdminError(
      "not_found",
      `the dashboard has no asset ${JSON.stringify(file.slice(0, 80))}: it serves ${[...files.keys()].join(", ")} (the page names the current ones)`,
    );
  }
  return c.body(asset.source, 200, {
    "content-type": asset.contentType,
    "cache-control": ASSET_CACHE_CONTROL,
    "x-content-type-options": "nosniff",
  });
});
