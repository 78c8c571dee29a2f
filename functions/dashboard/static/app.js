/* The tenant dashboard: calls the API with the key kept in sessionStorage, renders with textContent only. */
(() => {
  "use strict";

  const KEY_STORAGE = "activityTracker.apiKey";
  const API_BASE = new URL(".", window.location.href); // "/<stage>/" in the cloud, "/" locally
  const MAX_RETRIES = 5;
  const LIVE_ROWS = 50;
  const EVENTS_PAGE = 25;
  const TREND_SERIES = 8; // the most frequent actions; the rest are summed as "other"
  const PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#94a3b8"];

  const state = { timezone: "UTC", asOf: null, charts: {}, eventsCursor: null, userId: null, live: null, generation: 0 };

  // ------------------------------------------------------------ small DOM helpers (text only, never HTML)

  const $ = (id) => document.getElementById(id);

  function el(tag, attributes = {}, text = null) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    if (text !== null) node.textContent = String(text);
    return node;
  }

  function part(panel, role) {
    return panel.querySelector(`[data-role="${role}"]`);
  }

  function showError(panel, message) {
    const node = part(panel, "error");
    node.textContent = message || "";
  }

  function showEmpty(panel, lines) {
    const node = part(panel, "empty");
    node.replaceChildren();
    if (!lines) {
      node.hidden = true;
      return;
    }
    for (const line of lines) {
      node.append(line.code ? el("pre", {}, line.code) : el("p", {}, line.text));
    }
    node.hidden = false;
  }

  function notice(message) {
    const node = $("notice");
    node.textContent = message || "";
    node.hidden = !message;
  }

  // ------------------------------------------------------------ the API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function retryAfterSeconds(header) {
    const seconds = Number.parseInt(header || "1", 10);
    return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 60) : 1;
  }

  function apiKey() {
    return window.sessionStorage.getItem(KEY_STORAGE) || "";
  }

  /** GET a route of the API; a 429 or 503 is retried after its Retry-After; an error answer throws ApiError. */
  async function api(path, params = {}) {
    const url = new URL(path, API_BASE);
    for (const [name, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
    }
    for (let attempt = 0; ; attempt += 1) {
      const response = await fetch(url, {
        headers: { "x-api-key": apiKey(), accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
      if ((response.status === 429 || response.status === 503) && attempt < MAX_RETRIES) {
        const wait = retryAfterSeconds(response.headers.get("Retry-After"));
        notice(`The API asked to slow down (${response.status}); retrying in ${wait} s.`);
        document.body.dataset.retried = String(Number(document.body.dataset.retried || 0) + 1);
        await sleep(wait * 1000);
        notice("");
        continue;
      }
      let body = null;
      try {
        body = await response.json();
      } catch {
        body = null;
      }
      if (!response.ok) {
        const error = (body && body.error) || {};
        throw new ApiError(response.status, error.code || "error", error.message || `HTTP ${response.status}`);
      }
      return body;
    }
  }

  /** A statistics answer for a panel: its error cleared, the tenant's time zone and the answer's as_of noted. */
  async function statistics(panel, path, params) {
    showError(panel, "");
    const answer = await api(path, params);
    if (answer.timezone) state.timezone = answer.timezone;
    noteAsOf(answer);
    return answer;
  }

  function curlHint() {
    const base = API_BASE.href;
    return (
      `curl -X POST ${base}v1/events -H "x-api-key: $TENANT_KEY" -H 'content-type: application/json' ` +
      `-d '{"user_id": "u1", "action": "login"}'`
    );
  }

  // ------------------------------------------------------------ times and dates (the tenant's time zone)

  function formatTime(iso, withDate = true) {
    const options = { timeZone: state.timezone, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
    if (withDate) Object.assign(options, { year: "numeric", month: "2-digit", day: "2-digit" });
    return new Intl.DateTimeFormat("en-CA", options).format(new Date(iso)).replace(",", "");
  }

  /** Seconds since the epoch of a date's UTC midnight: the x of a per-day point (its axis shows dates in UTC). */
  function dayX(date) {
    const [year, month, day] = date.split("-").map(Number);
    return Date.UTC(year, month - 1, day) / 1000;
  }

  function nextDate(date) {
    return new Date((dayX(date) + 86400) * 1000).toISOString().slice(0, 10);
  }

  function noteAsOf(answer) {
    if (answer && answer.as_of && (!state.asOf || answer.as_of > state.asOf)) state.asOf = answer.as_of;
    const status = $("status");
    status.replaceChildren();
    const asOf = state.asOf ? `Statistics up to ${formatTime(state.asOf)}` : "No statistics yet: the rollup has not run";
    status.append(el("span", { id: "as-of", "data-as-of": state.asOf || "" }, asOf));
    status.append(el("span", { id: "timezone", "data-timezone": state.timezone }, `Times in ${state.timezone}`));
  }

  // ------------------------------------------------------------ charts (uPlot)

  function chartWidth(container) {
    return Math.max(260, container.clientWidth || container.parentElement.clientWidth - 32);
  }

  /** Each chart follows its container's width (a rotated phone, a resized window, a panel that appears). */
  const resizer = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const chart = state.charts[entry.target.dataset.chart];
      if (chart && entry.target.clientWidth) chart.setSize({ width: chartWidth(entry.target), height: 240 });
    }
  });

  /** uPlot's tzDate option: an x (seconds) as a Date whose local fields are those of the time zone. */
  const zonedDates = (timezone) => (seconds) => window.uPlot.tzDate(new Date(seconds * 1000), timezone);

  /** A chart over time in the container `${name}-chart`: x in seconds, shown in `timezone`; `series[0]` is x's. */
  function timeChart(name, yLabel, timezone, series, data) {
    const container = $(`${name}-chart`);
    if (state.charts[name]) state.charts[name].destroy();
    container.replaceChildren();
    const options = {
      width: chartWidth(container),
      height: 240,
      tzDate: zonedDates(timezone),
      scales: { x: { time: true } },
      axes: [{}, { label: yLabel }],
      series,
    };
    state.charts[name] = new window.uPlot(options, data, container);
    container.dataset.chart = name;
    resizer.observe(container);
    if (!performance.getEntriesByName("first-chart").length) performance.mark("first-chart");
  }

  /** The x series of a per-day chart: a day's point sits at its UTC midnight and reads as its date. */
  const DAY_SERIES = { label: "Date", value: (u, x) => (x == null ? "" : new Date(x * 1000).toISOString().slice(0, 10)) };

  function barsPath() {
    return window.uPlot.paths.bars({ size: [0.7, 60] });
  }

  // ------------------------------------------------------------ daily events and users

  async function loadDaily() {
    const panel = $("daily-panel");
    const answer = await statistics(panel, "v1/stats/daily", { days: $("days").value });
    const items = answer.items || [];
    const rows = items.map((item) =>
      rowOf([item.date, item.count, item.users], { "data-date": item.date, "data-count": item.count, "data-users": item.users }),
    );
    $("daily-table").tBodies[0].replaceChildren(...rows);
    const total = items.reduce((sum, item) => sum + item.count, 0);
    panel.dataset.total = String(total);
    showEmpty(
      panel,
      total === 0
        ? [{ text: `No events in these ${items.length} days yet: send one with` }, { code: curlHint() }, { text: "then wait for the next rollup (about a minute)." }]
        : null,
    );
    timeChart(
      "daily",
      "count",
      "Etc/UTC",
      [
        DAY_SERIES,
        { label: "Events", stroke: PALETTE[0], width: 2, fill: "rgba(37,99,235,0.08)" },
        { label: "Users", stroke: PALETTE[1], width: 2 },
      ],
      [items.map((item) => dayX(item.date)), items.map((item) => item.count), items.map((item) => item.users)],
    );
    return items;
  }

  function rowOf(cells, attributes = {}) {
    const row = el("tr", attributes);
    for (const cell of cells) row.append(el("td", {}, cell));
    return row;
  }

  // ------------------------------------------------------------ events per action per day (stacked)

  async function loadTrend(range) {
    const panel = $("trend-panel");
    const answer = await statistics(panel, "v1/stats/trend", range);
    const items = answer.items || [];
    const totals = new Map();
    for (const item of items) {
      for (const [action, count] of Object.entries(item.counts || {})) totals.set(action, (totals.get(action) || 0) + count);
    }
    const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([action]) => action);
    const shown = ranked.slice(0, TREND_SERIES);
    const rest = ranked.slice(TREND_SERIES);
    const labels = rest.length ? [...shown, "other"] : shown;
    const raw = labels.map((label) =>
      items.map((item) => {
        const counts = item.counts || {};
        return label === "other" && rest.length ? rest.reduce((sum, action) => sum + (counts[action] || 0), 0) : counts[label] || 0;
      }),
    );
    const rows = [];
    for (const item of items) {
      for (const [action, count] of Object.entries(item.counts || {}).sort()) {
        if (count) rows.push(rowOf([item.date, action, count], { "data-date": item.date, "data-action": action, "data-count": count }));
      }
    }
    $("trend-table").tBodies[0].replaceChildren(...rows);
    showEmpty(panel, labels.length ? null : [{ text: "No events per action in this range yet." }]);
    // Stacked: series i is the sum of the actions i..n, drawn from the tallest down so each shows its own band;
    // the legend shows each action's own count.
    const stacked = raw.map((_, index) => items.map((__, day) => raw.slice(index).reduce((sum, values) => sum + values[day], 0)));
    timeChart(
      "trend",
      "events",
      "Etc/UTC",
      [
        DAY_SERIES,
        ...labels.map((label, index) => ({
          label,
          stroke: PALETTE[index % PALETTE.length],
          fill: PALETTE[index % PALETTE.length],
          paths: barsPath(),
          points: { show: false },
          value: (u, v, seriesIndex, dayIndex) => (dayIndex == null ? "" : raw[index][dayIndex]),
        })),
      ],
      [items.map((item) => dayX(item.date)), ...stacked],
    );
  }

  // ------------------------------------------------------------ bar lists (top users, frequency)

  function barList(list, entries, onPick) {
    const max = Math.max(1, ...entries.map((entry) => entry.value));
    list.replaceChildren(
      ...entries.map((entry) => {
        const item = el("li", entry.attributes);
        const label = onPick ? el("button", { type: "button", class: "link" }, entry.label) : el("span", { class: "label" }, entry.label);
        label.title = entry.label; // cut short on a narrow screen; whole on hover
        if (onPick) label.addEventListener("click", () => onPick(entry.label));
        const bar = el("span", { class: "bar" });
        bar.style.width = `${(100 * entry.value) / max}%`;
        const track = el("span", { class: "track" });
        track.append(bar);
        item.append(label, track, el("span", { class: "value" }, entry.value.toLocaleString("en")));
        return item;
      }),
    );
  }

  async function loadTopUsers() {
    const panel = $("top-panel");
    const hours = $("top-hours").value;
    const by = $("top-by-label").hidden ? "events" : $("top-by").value;
    const answer = await statistics(panel, "v1/stats/top-users", { hours, limit: 10, by: by === "points" ? "points" : null });
    const items = answer.items || [];
    const value = (item) => (by === "points" ? item.points : item.count);
    barList(
      $("top-list"),
      items.map((item) => ({
        label: item.user_id,
        value: value(item) || 0,
        attributes: { "data-user-id": item.user_id, "data-count": item.count, "data-points": item.points ?? "" },
      })),
      (userId) => showUser(userId),
    );
    showEmpty(panel, items.length ? null : [{ text: `No events in the last ${hours} hours.` }]);
  }

  /** Points exist when the API answers top users by points with a points figure; otherwise the choice is hidden. */
  async function probePoints() {
    try {
      const answer = await api("v1/stats/top-users", { hours: 24, limit: 1, by: "points" });
      $("top-by-label").hidden = !(answer.items || []).some((item) => typeof item.points === "number");
    } catch {
      $("top-by-label").hidden = true;
    }
  }

  async function loadFrequency(range) {
    const panel = $("frequency-panel");
    const answer = await statistics(panel, "v1/stats/frequency", range);
    const items = answer.items || [];
    $("frequency-range").textContent = `${range.from} to ${range.to} (exclusive)`;
    barList(
      $("frequency-list"),
      items.map((item) => ({ label: item.action, value: item.total, attributes: { "data-action": item.action, "data-total": item.total } })),
      null,
    );
    showEmpty(panel, items.length ? null : [{ text: "No events counted in this range yet." }]);
  }

  // ------------------------------------------------------------ one user

  async function showUser(userId) {
    $("user-id").value = userId;
    state.userId = userId;
    $("user-panel").scrollIntoView({ behavior: "smooth", block: "start" });
    await guarded($("user-panel"), loadUser);
  }

  async function loadUser() {
    const panel = $("user-panel");
    const userId = state.userId;
    showError(panel, "");
    if (!userId) return;
    const path = `v1/users/${encodeURIComponent(userId)}`;
    const [activity, events] = await Promise.all([
      api(`${path}/activity`, { period: $("user-period").value }),
      api(`${path}/events`, { order: "desc", limit: EVENTS_PAGE }),
    ]);
    noteAsOf(activity);
    $("user-details").hidden = false;
    $("user-shown").textContent = userId;
    const windows = activity.items || [];
    $("activity-table").tBodies[0].replaceChildren(
      ...windows.filter((item) => item.count).map((item) => rowOf([formatTime(item.start), item.count], { "data-start": item.start, "data-count": item.count })),
    );
    panel.dataset.activityTotal = String(windows.reduce((sum, item) => sum + item.count, 0));
    timeChart(
      "user",
      "events",
      state.timezone,
      [{ label: "Window start" }, { label: "Events", stroke: PALETTE[4], fill: "rgba(124,58,237,0.5)", paths: barsPath(), points: { show: false } }],
      [windows.map((item) => Date.parse(item.start) / 1000), windows.map((item) => item.count)],
    );
    $("events-table").tBodies[0].replaceChildren();
    appendEvents(events);
    showEmpty(
      panel,
      (events.items || []).length
        ? null
        : [{ text: `No events stored for this user id. Send one with` }, { code: curlHint().replace('"u1"', JSON.stringify(userId)) }],
    );
  }

  function appendEvents(page) {
    const body = $("events-table").tBodies[0];
    for (const event of page.items || []) {
      const metadata = event.metadata && Object.keys(event.metadata).length ? JSON.stringify(event.metadata) : "";
      const row = rowOf([formatTime(event.occurred_at), event.action, event.event_id, metadata], {
        "data-event-id": event.event_id,
        "data-action": event.action,
        "data-occurred-at": event.occurred_at,
      });
      row.lastElementChild.title = metadata; // cut short on screen; whole on hover
      body.append(row);
    }
    state.eventsCursor = page.next_cursor || null;
    $("events-more").hidden = !state.eventsCursor;
  }

  async function loadMoreEvents() {
    const cursor = state.eventsCursor;
    if (!cursor || !state.userId) return;
    const page = await api(`v1/users/${encodeURIComponent(state.userId)}/events`, { order: "desc", limit: EVENTS_PAGE, cursor });
    appendEvents(page);
  }

  // ------------------------------------------------------------ live feed (WebSocket, when the deployment has one)

  function liveStatus(text) {
    $("live-status").textContent = text;
  }

  async function startLive(generation) {
    const panel = $("live-panel");
    let url = "";
    try {
      const response = await fetch(new URL("dashboard/config.json", API_BASE), { cache: "no-store", credentials: "omit" });
      url = (await response.json()).websocket_url || "";
    } catch {
      url = "";
    }
    if (!url) {
      panel.dataset.live = "unavailable";
      liveStatus("Live updates are not available on this deployment (no WebSocket API).");
      return;
    }
    connectLive(url, generation, 1);
  }

  function connectLive(url, generation, delay) {
    if (generation !== state.generation || !apiKey()) return;
    const panel = $("live-panel");
    const address = new URL(url);
    address.searchParams.set("api_key", apiKey()); // the contract's way: a browser cannot set headers on a WebSocket
    const socket = new WebSocket(address.href);
    state.live = socket;
    let opened = false;
    liveStatus("Connecting…");
    socket.addEventListener("open", () => {
      opened = true;
      panel.dataset.live = "open";
      socket.send(JSON.stringify({ action: "subscribe" }));
    });
    socket.addEventListener("message", (message) => {
      let data = null;
      try {
        data = JSON.parse(message.data);
      } catch {
        return;
      }
      if (data.type === "subscribed") {
        panel.dataset.live = "subscribed";
        liveStatus("Live: every new event of this tenant appears here.");
      } else if (data.type === "error") {
        showError(panel, (data.error && data.error.message) || "The live feed answered with an error.");
      } else if (data.type === "event" && data.event) {
        addLiveEvent(data.event);
      }
    });
    socket.addEventListener("close", () => {
      if (state.live === socket) state.live = null;
      if (generation !== state.generation) return;
      panel.dataset.live = "closed";
      const wait = Math.min(delay * 2, 30);
      liveStatus(opened ? `Disconnected; reconnecting in ${wait} s.` : `The live feed refused the connection; retrying in ${wait} s.`);
      setTimeout(() => connectLive(url, generation, opened ? 1 : wait), wait * 1000);
    });
  }

  function addLiveEvent(event) {
    const list = $("live-list");
    const item = el("li", { "data-event-id": event.event_id || "", "data-user-id": event.user_id || "", "data-action": event.action || "" });
    item.append(
      el("time", { datetime: event.occurred_at || "" }, event.occurred_at ? formatTime(event.occurred_at) : ""),
      el("span", { class: "who" }, event.user_id || ""),
      el("span", { class: "what" }, event.action || ""),
    );
    list.prepend(item);
    while (list.children.length > LIVE_ROWS) list.lastElementChild.remove();
  }

  function stopLive() {
    state.generation += 1;
    if (state.live) state.live.close();
    state.live = null;
    $("live-list").replaceChildren();
  }

  // ------------------------------------------------------------ the whole page

  /** Runs a loader; its error is shown in its panel, and a refused key sends the user back to the key form. */
  async function guarded(panel, loader, ...args) {
    try {
      return await loader(...args);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        forgetKey(`The API refused this key: ${error.message}`);
      } else {
        showError(panel, error instanceof ApiError ? error.message : `The API could not be reached (${error.message}).`);
      }
      return undefined;
    }
  }

  async function loadAll() {
    const items = await guarded($("daily-panel"), loadDaily);
    if (!items) return;
    document.body.dataset.loaded = "daily";
    const range = items.length ? { from: items[0].date, to: nextDate(items[items.length - 1].date) } : {};
    await Promise.all([
      guarded($("trend-panel"), loadTrend, range),
      guarded($("frequency-panel"), loadFrequency, range),
      guarded($("top-panel"), async () => {
        await probePoints();
        await loadTopUsers();
      }),
      state.userId ? guarded($("user-panel"), loadUser) : Promise.resolve(),
    ]);
    document.body.dataset.loaded = "all";
  }

  function openDashboard() {
    $("key-panel").hidden = true;
    $("dashboard").hidden = false;
    $("forget-key").hidden = false;
    $("refresh").hidden = false;
    loadAll();
    startLive(state.generation);
  }

  function forgetKey(message) {
    window.sessionStorage.removeItem(KEY_STORAGE);
    stopLive();
    for (const chart of Object.values(state.charts)) chart.destroy();
    state.charts = {};
    state.asOf = null;
    state.userId = null;
    $("status").replaceChildren();
    $("dashboard").hidden = true;
    $("forget-key").hidden = true;
    $("refresh").hidden = true;
    $("key-panel").hidden = false;
    $("key-error").textContent = message || "";
    $("api-key").value = "";
    $("api-key").focus();
    delete document.body.dataset.loaded;
  }

  function start() {
    $("key-form").addEventListener("submit", (submitted) => {
      submitted.preventDefault();
      const key = $("api-key").value.trim();
      if (!key) return;
      window.sessionStorage.setItem(KEY_STORAGE, key);
      $("api-key").value = "";
      $("key-error").textContent = "";
      performance.mark("key-entered");
      openDashboard();
    });
    $("forget-key").addEventListener("click", () => forgetKey(""));
    $("refresh").addEventListener("click", () => loadAll());
    $("days").addEventListener("change", () => loadAll());
    $("top-hours").addEventListener("change", () => guarded($("top-panel"), loadTopUsers));
    $("top-by").addEventListener("change", () => guarded($("top-panel"), loadTopUsers));
    $("user-form").addEventListener("submit", (submitted) => {
      submitted.preventDefault();
      const userId = $("user-id").value;
      if (userId) showUser(userId);
    });
    $("user-period").addEventListener("change", () => state.userId && guarded($("user-panel"), loadUser));
    $("events-more").addEventListener("click", () => guarded($("user-panel"), loadMoreEvents));
    if (apiKey()) openDashboard();
    else $("api-key").focus();
  }

  start();
})();
