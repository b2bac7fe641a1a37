// The mesh dashboard's script (docs/dashboard.md), run in the browser: it reads the admin API
// with the user's token every few seconds and draws what it says. The page it fills in
// (workers/policy/dashboard.ts) holds no data of its own.
//
// Plain JavaScript served as it is, no build step: the policy Worker imports this file as text.
// Charts are Apache ECharts (the global `echarts`, loaded by the page before this script), with
// its SVG renderer so what it draws is part of the page's DOM.
"use strict";

(() => {
  /** How often the page reads the admin API again. */
  const REFRESH_MS = 5_000;
  /** The window of the metrics it shows. */
  const WINDOW_SECONDS = 60;
  /** Where the token is kept: this tab only, gone when it closes. */
  const TOKEN_KEY = "meshwork.dashboard.token";
  const COLORS = { good: "#1f9d55", warn: "#d98c00", bad: "#d64545", idle: "#9aa4b2" };
  const NODE_COLOR = "#2f6fde";

  /** A failure to read the admin API, as the page explains it. */
  class ReadError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const $ = (id) => {
    const element = document.getElementById(id);
    if (!element) throw new Error(`the page has no #${id}`);
    return element;
  };

  /** An element with attributes (`data-*` included) and children (strings become text). */
  function el(tag, attributes = {}, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === undefined || value === null) continue;
      if (name === "class") element.className = value;
      else element.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === undefined || child === null) continue;
      element.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return element;
  }

  // -------------------------------------------------------------------------------------------
  // The token

  /** A `#token=…` fragment moves to sessionStorage and leaves the address bar (and history). */
  function takeTokenFromFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    if (!params.has("token")) return;
    const token = params.get("token").trim();
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, "", location.pathname + location.search);
  }

  const token = () => sessionStorage.getItem(TOKEN_KEY);

  function askForToken(message) {
    $("auth-message").textContent = message;
    $("auth").hidden = false;
    $("content").hidden = true;
    $("forget-token").hidden = token() === null;
    $("token-input").focus();
  }

  // -------------------------------------------------------------------------------------------
  // Reading the admin API

  /** The admin token as a bearer token; a JWT-SVID (admin or viewer role) in X-Mesh-SVID. */
  function credentials() {
    const value = token();
    return /^eyJ[\w-]*\.[\w-]+\.[\w-]+$/.test(value)
      ? { "x-mesh-svid": value }
      : { authorization: `Bearer ${value}` };
  }

  async function read(path) {
    let response;
    try {
      response = await fetch(path, { headers: credentials(), cache: "no-store" });
    } catch (error) {
      throw new ReadError(0, "unreachable", `the policy Worker did not answer ${path}: ${error}`);
    }
    const text = await response.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (!response.ok) {
      const code = body?.error?.code ?? `http_${response.status}`;
      const message = body?.error?.message ?? (text.slice(0, 200) || response.statusText);
      throw new ReadError(response.status, code, `${path}: ${response.status} ${code}: ${message}`);
    }
    if (body === undefined || body === null || typeof body !== "object") {
      throw new ReadError(response.status, "bad_response", `${path} did not answer JSON`);
    }
    return body;
  }

  /** Throws unless `view` has the MetricsView's lists (core/observability/view.ts). */
  function checkMetricsView(view) {
    const lists = ["edges", "services", "splits", "breakers", "denials", "problems"];
    const missing = lists.filter((name) => !Array.isArray(view[name]));
    if (!Array.isArray(view.series?.points)) missing.push("series.points");
    if (missing.length > 0) {
      throw new ReadError(
        200,
        "bad_response",
        `/v1/metrics answered something that is not a metrics view (no ${missing.join(", ")})`,
      );
    }
  }

  // -------------------------------------------------------------------------------------------
  // Formatting

  /** good (≥ 99% success), warn (≥ 95%), bad (below), idle (no calls). */
  function health(successRate, requests) {
    if (successRate === null || successRate === undefined || !requests) return "idle";
    if (successRate >= 0.99) return "good";
    if (successRate >= 0.95) return "warn";
    return "bad";
  }

  const rps = (value) =>
    value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
  const percent = (value, digits = 1) =>
    value === null || value === undefined ? "—" : `${value.toFixed(digits)}%`;
  const rate = (value) =>
    value === null || value === undefined ? "—" : `${(100 * value).toFixed(2)}%`;
  const ms = (value) =>
    value === null || value === undefined
      ? "—"
      : `${value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)} ms`;
  const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "—");
  /** A caller as the mesh names one without an identity. */
  const callerName = (name) => (name === "unknown" ? "unknown (no identity)" : name);

  function fill(tbody, rows, columns, emptyText) {
    if (rows.length === 0) {
      tbody.replaceChildren(
        el("tr", {}, el("td", { colspan: columns, class: "empty" }, emptyText)),
      );
    } else {
      tbody.replaceChildren(...rows);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Drawing

  function drawStatus(status) {
    const version = $("config-version");
    version.dataset.version = String(status.version);
    version.textContent = `config version ${status.version}`;
    const published = status.published?.version ?? null;
    const routers = status.routers ?? { total: 0, current: 0 };
    const propagation = $("propagation");
    propagation.dataset.current = String(routers.current);
    propagation.dataset.total = String(routers.total);
    propagation.dataset.published = published === null ? "" : String(published);
    const pending = status.published?.pending ? ", publish pending" : "";
    if (routers.total === 0) {
      propagation.textContent = `no router has reported a version yet${pending}`;
      propagation.className = "fact";
    } else {
      propagation.textContent = `version ${published ?? "none"} applied by ${routers.current} of ${routers.total} router ${routers.total === 1 ? "isolate" : "isolates"}${pending}`;
      propagation.className = `fact ${routers.current === routers.total && !pending ? "good" : "warn"}`;
    }
  }

  function drawEdges(edges) {
    const rows = edges.map((edge) => {
      const state = health(edge.successRate, edge.requests);
      return el(
        "tr",
        {
          "data-testid": "edge-row",
          "data-caller": edge.caller,
          "data-destination": edge.destination,
          "data-backend": edge.backend,
          "data-route": edge.route,
          "data-rps": edge.rps,
          "data-success-rate": edge.successRate ?? "",
        },
        el("td", {}, callerName(edge.caller)),
        el("td", {}, edge.destination),
        el("td", {}, edge.backend),
        el("td", { class: "muted" }, edge.route),
        el("td", { class: "num" }, rps(edge.rps)),
        el("td", { class: `num ${state}` }, rate(edge.successRate)),
        el("td", { class: "num" }, ms(edge.latencyMs?.p50)),
        el("td", { class: "num" }, ms(edge.latencyMs?.p95)),
        el("td", { class: "num" }, ms(edge.latencyMs?.p99)),
      );
    });
    fill($("edge-rows"), rows, 9, "no calls in the window");
  }

  function drawServices(services) {
    const rows = services.map((service) =>
      el(
        "tr",
        { "data-testid": "service-row", "data-service": service.name, "data-rps": service.rps },
        el("td", {}, service.name),
        el("td", { class: "num" }, rps(service.rps)),
        el(
          "td",
          { class: `num ${health(service.successRate, service.requests)}` },
          rate(service.successRate),
        ),
        el("td", { class: "num" }, ms(service.latencyMs?.p50)),
        el("td", { class: "num" }, ms(service.latencyMs?.p95)),
        el("td", { class: "num" }, ms(service.latencyMs?.p99)),
      ),
    );
    fill($("service-rows"), rows, 6, "no calls in the window");
  }

  function drawBreakers(breakers) {
    const list = $("breakers");
    if (breakers.length === 0) {
      list.replaceChildren(el("li", { class: "empty" }, "no breaker has reported in the window"));
      return;
    }
    list.replaceChildren(
      ...breakers.map((breaker) =>
        el(
          "li",
          {
            "data-testid": "breaker",
            "data-backend": breaker.backend,
            "data-destination": breaker.destination,
            "data-state": breaker.state,
          },
          el("span", { class: `badge ${breaker.state}` }, breaker.state),
          el("strong", {}, breaker.backend),
          el(
            "span",
            { class: "muted" },
            breaker.state === "open" && breaker.openUntil
              ? `open until ${time(breaker.openUntil)}`
              : `reported ${time(breaker.reportedAt)}`,
          ),
        ),
      ),
    );
  }

  function bar(kind, value) {
    const width = Math.max(0, Math.min(100, value ?? 0));
    const fillPart = el("span");
    fillPart.style.width = `${width}%`;
    return el("div", { class: `bar ${kind}` }, fillPart);
  }

  function drawSplits(splits) {
    const box = $("splits");
    if (splits.length === 0) {
      box.replaceChildren(el("p", { class: "empty" }, "no route with traffic or a split"));
      return;
    }
    box.replaceChildren(
      ...splits.map((split) =>
        el(
          "div",
          { class: "split" },
          el("h3", {}, `${split.destination} `, el("span", { class: "muted" }, split.route)),
          ...split.backends.map((backend) =>
            el(
              "div",
              {
                class: "split-row",
                "data-testid": "split-row",
                "data-destination": split.destination,
                "data-route": split.route,
                "data-backend": backend.backend,
                "data-configured": backend.configuredPercent ?? "",
                "data-observed": backend.observedPercent ?? "",
              },
              el("span", {}, backend.backend),
              el(
                "div",
                { class: "bars" },
                bar("configured", backend.configuredPercent),
                bar("observed", backend.observedPercent),
              ),
              el(
                "span",
                { class: "num" },
                `${percent(backend.configuredPercent, 0)} / ${percent(backend.observedPercent)}`,
              ),
            ),
          ),
        ),
      ),
    );
  }

  function drawDenials(denials) {
    const rows = denials.map((denial) =>
      el(
        "tr",
        {
          "data-testid": "denial",
          "data-caller": denial.caller,
          "data-destination": denial.destination,
          "data-code": denial.code,
        },
        el("td", {}, time(denial.at)),
        el("td", {}, callerName(denial.caller)),
        el("td", {}, denial.destination),
        el("td", { class: "bad" }, denial.code),
        el("td", { class: "reason", title: `request ${denial.requestId}` }, denial.reason),
      ),
    );
    fill($("denial-rows"), rows, 5, "no call was refused in the window");
  }

  function drawProblems(problems) {
    $("problems-panel").hidden = problems.length === 0;
    $("problems").replaceChildren(...problems.map((problem) => el("li", {}, problem)));
  }

  // -------------------------------------------------------------------------------------------
  // Charts

  let seriesChart;
  let graphChart;

  function charts() {
    if (typeof echarts === "undefined") {
      throw new Error("the charting library did not load (see the browser console)");
    }
    seriesChart ??= echarts.init($("series-chart"), null, { renderer: "svg" });
    graphChart ??= echarts.init($("service-graph"), null, { renderer: "svg" });
  }

  function drawSeries(series) {
    const seconds = series.slotSeconds || 10;
    const points = series.points;
    seriesChart.setOption(
      {
        animation: false,
        grid: { left: 48, right: 16, top: 28, bottom: 28 },
        legend: { top: 0, data: ["requests/s", "failures/s"] },
        tooltip: { trigger: "axis" },
        xAxis: { type: "time" },
        yAxis: { type: "value", minInterval: 0.1, name: "per second", nameGap: 8 },
        title:
          points.length === 0
            ? {
                text: "no calls in the window",
                left: "center",
                top: "middle",
                textStyle: { color: COLORS.idle, fontSize: 13 },
              }
            : { show: false },
        series: [
          {
            name: "requests/s",
            type: "line",
            showSymbol: false,
            areaStyle: { opacity: 0.15 },
            color: NODE_COLOR,
            data: points.map(([at, requests]) => [at, requests / seconds]),
          },
          {
            name: "failures/s",
            type: "line",
            showSymbol: false,
            color: COLORS.bad,
            data: points.map(([at, , failures]) => [at, failures / seconds]),
          },
        ],
      },
      { notMerge: true },
    );
  }

  /**
   * The service graph: a node per service, an edge caller → destination and, where routing sent
   * the call elsewhere, destination → backend, labelled with its RPS and coloured by its success
   * rate. Configured splits with no traffic in the window still show, grey. Laid out left to
   * right by depth (callers first), so the picture stays put between refreshes.
   */
  function graphOf(view) {
    const links = new Map();
    // RPS as the view gives it per edge (over the seconds its counts cover), summed.
    const link = (source, target, requests, failures, perSecond) => {
      if (!source || !target || source === "-" || target === "-" || source === target) return;
      const key = `${source}\u0000${target}`;
      const entry = links.get(key) ?? { source, target, requests: 0, failures: 0, rps: 0 };
      entry.requests += requests;
      entry.rps += perSecond;
      entry.failures += failures;
      links.set(key, entry);
    };
    for (const edge of view.edges) {
      const failures = edge.successRate === null ? 0 : edge.requests * (1 - edge.successRate);
      link(edge.caller, edge.destination, edge.requests, failures, edge.rps);
      link(edge.destination, edge.backend, edge.requests, failures, edge.rps);
    }
    for (const split of view.splits) {
      for (const backend of split.backends) link(split.destination, backend.backend, 0, 0, 0);
    }

    const names = new Set();
    const inbound = new Map();
    for (const { source, target } of links.values()) {
      names.add(source).add(target);
      inbound.set(target, [...(inbound.get(target) ?? []), source]);
    }
    // Depth: the longest path from a node nothing calls (cycles are cut at the node count).
    const depth = new Map();
    const depthOf = (name, seen = new Set()) => {
      if (depth.has(name)) return depth.get(name);
      if (seen.has(name)) return 0;
      seen.add(name);
      const callers = inbound.get(name) ?? [];
      const value =
        callers.length === 0 ? 0 : 1 + Math.max(...callers.map((c) => depthOf(c, seen)));
      depth.set(name, value);
      return value;
    };
    const columns = new Map();
    for (const name of [...names].sort()) {
      const d = depthOf(name);
      columns.set(d, [...(columns.get(d) ?? []), name]);
    }
    // Each column ordered by where its callers sit (fewer crossings), callers' column first.
    const row = new Map();
    const services = new Map(view.services.map((s) => [s.name, s]));
    const nodes = [];
    for (const d of [...columns.keys()].sort((a, b) => a - b)) {
      const at = (name) => {
        const placed = (inbound.get(name) ?? []).filter((c) => row.has(c)).map((c) => row.get(c));
        return placed.length === 0 ? 0 : placed.reduce((a, b) => a + b, 0) / placed.length;
      };
      const column = columns.get(d).sort((a, b) => at(a) - at(b) || a.localeCompare(b));
      column.forEach((name, i) => {
        const y = (i - (column.length - 1) / 2) * 70;
        row.set(name, y);
        const service = services.get(name);
        nodes.push({
          name,
          x: d * 240,
          y,
          symbolSize: 22,
          itemStyle: {
            color: NODE_COLOR,
            borderColor: service ? COLORS[health(service.successRate, service.requests)] : "#fff",
            borderWidth: 3,
          },
          label: { show: true, position: "bottom", formatter: callerName(name) },
        });
      });
    }
    const edges = [...links.values()].map((entry) => {
      const state = health(
        entry.requests === 0 ? null : 1 - entry.failures / entry.requests,
        entry.requests,
      );
      return {
        source: entry.source,
        target: entry.target,
        value: entry.rps,
        lineStyle: { color: COLORS[state], width: state === "idle" ? 1.5 : 3, opacity: 0.9 },
        label: {
          show: true,
          formatter: `${rps(entry.rps)} rps`,
          color: COLORS[state],
        },
      };
    });
    return { nodes, edges };
  }

  function drawGraph(view) {
    const { nodes, edges } = graphOf(view);
    const box = $("service-graph");
    box.dataset.nodes = nodes.map((n) => n.name).join(" ");
    box.dataset.edges = edges.map((e) => `${e.source}>${e.target}`).join(" ");
    graphChart.setOption(
      {
        animation: false,
        tooltip: {},
        title:
          nodes.length === 0
            ? {
                text: "no traffic and no split to show",
                left: "center",
                top: "middle",
                textStyle: { color: COLORS.idle, fontSize: 13 },
              }
            : { show: false },
        series: [
          {
            type: "graph",
            layout: "none",
            roam: true,
            left: 80,
            right: 80,
            top: 30,
            bottom: 40,
            edgeSymbol: ["none", "arrow"],
            edgeSymbolSize: 9,
            edgeLabel: {
              fontSize: 12,
              fontWeight: 600,
              backgroundColor: "rgba(255, 255, 255, 0.85)",
              padding: [1, 4],
              borderRadius: 3,
            },
            label: { fontSize: 12, color: "#1d2430" },
            data: nodes,
            links: edges,
          },
        ],
      },
      { notMerge: true },
    );
  }

  // -------------------------------------------------------------------------------------------
  // The refresh loop

  let timer;

  function showError(message) {
    const banner = $("error");
    banner.textContent = message;
    banner.hidden = message === "";
  }

  function drawMetrics(view) {
    $("window-label").textContent =
      `last ${view.windowSeconds} s, ${view.series.slotSeconds} s slots`;
    drawSeries(view.series);
    drawGraph(view);
    drawEdges(view.edges);
    drawServices(view.services);
    drawBreakers(view.breakers);
    drawSplits(view.splits);
    drawDenials(view.denials);
    drawProblems(view.problems);
  }

  async function refresh() {
    clearTimeout(timer);
    if (!token()) {
      askForToken(
        "Give this policy Worker's admin token (or a JWT-SVID with the admin or viewer role) to see the mesh.",
      );
      return;
    }
    const [metrics, status] = await Promise.allSettled([
      read(`/v1/metrics?window=${WINDOW_SECONDS}`).then((view) => {
        checkMetricsView(view);
        return view;
      }),
      read("/v1/status"),
    ]);
    const failures = [metrics, status].filter((r) => r.status === "rejected").map((r) => r.reason);
    const refused = failures.find(
      (e) => e instanceof ReadError && (e.status === 401 || e.status === 403),
    );
    if (refused) {
      askForToken(
        refused.status === 401
          ? `The policy Worker did not accept this token (401 ${refused.code}): give the admin token or an admin's or viewer's SVID.`
          : `This credential may not read the mesh's metrics (403 ${refused.code}): give the admin token or an admin's or viewer's SVID.`,
      );
      return;
    }
    $("auth").hidden = true;
    $("content").hidden = false;
    $("forget-token").hidden = false;
    try {
      charts();
      if (status.status === "fulfilled") drawStatus(status.value);
      if (metrics.status === "fulfilled") drawMetrics(metrics.value);
    } catch (error) {
      failures.push(error);
    }
    showError(failures.map((e) => e.message).join(" · "));
    const source = metrics.status === "fulfilled" ? `, ${metrics.value.source}` : "";
    $("updated").textContent =
      `updated ${new Date().toLocaleTimeString()}${source}, every ${REFRESH_MS / 1000} s`;
    timer = setTimeout(refresh, REFRESH_MS);
  }

  function start() {
    takeTokenFromFragment();
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token-input").value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      $("token-input").value = "";
      refresh();
    });
    $("forget-token").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      clearTimeout(timer);
      askForToken("Token forgotten. Give the admin token or an SVID to see the mesh again.");
    });
    // A `#token=…` typed into the address bar of the open page.
    window.addEventListener("hashchange", () => {
      takeTokenFromFragment();
      refresh();
    });
    window.addEventListener("resize", () => {
      seriesChart?.resize();
      graphChart?.resize();
    });
    refresh();
  }

  start();
})();
