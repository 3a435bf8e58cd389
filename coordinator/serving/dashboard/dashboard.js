// The coordinator's dashboard: polls the admin API and draws what it says. No framework,
// no build step, nothing from another origin; text goes into the page as text, never as HTML.
// The admin key (when the coordinator has one) lives in this tab's sessionStorage and goes
// out as `Authorization: Bearer` on this page's own requests only, never in a URL.
"use strict";

(() => {
  const KEY_STORE = "coordinator.dashboard.key";
  const CHILDREN_MS = 1500;
  const SCREENSHOT_MS = 3000;
  // The usage report reads the ledger over 14 days: seldom, as it changes slowly.
  const USAGE_MS = 60000;
  const QUOTA_MS = 15000;
  const USAGE_DAYS = 14;
  // States in which a child has a page to show (coordinator.lifecycle.states.ALIVE, less starting).
  const SHOWABLE = new Set(["ready", "busy", "cooldown", "draining"]);
  const LANES = ["high", "normal", "low"];
  const PALETTE = ["#1a73e8", "#34a853", "#fbbc04", "#ea4335", "#a142f4", "#24c1e0", "#f538a0", "#5f6368"];
  const SVG = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  const state = {
    key: sessionStorage.getItem(KEY_STORE) || "",
    config: null,
    children: [],
    selected: null, // the child whose screenshot is shown
    shotUrl: null,
    timers: [],
  };

  class KeyRefused extends Error {}

  // -- requests -------------------------------------------------------------------------

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    if (state.key) headers.set("Authorization", "Bearer " + state.key);
    const response = await fetch(path, { ...options, headers, cache: "no-store", credentials: "omit" });
    if (response.status === 401 || response.status === 403) {
      askForKey(response.status === 403 ? "This key is a client key: the dashboard needs an admin key." : "The key was refused.");
      throw new KeyRefused();
    }
    return response;
  }

  async function json(path) {
    const response = await api(path);
    if (!response.ok) throw new Error(`${path} answered HTTP ${response.status}`);
    return response.json();
  }

  function note(text) {
    const message = $("message");
    message.textContent = text || "";
    message.hidden = !text;
  }

  // -- the key --------------------------------------------------------------------------

  function askForKey(why) {
    stop();
    state.key = "";
    sessionStorage.removeItem(KEY_STORE);
    $("panels").hidden = true;
    $("key-form").hidden = false;
    $("forget-key").hidden = true;
    $("status").textContent = "key needed";
    $("status").className = "badge";
    note(why || "This coordinator has an admin key: enter it to see the dashboard.");
    $("key").focus();
  }

  function useKey(event) {
    event.preventDefault();
    const key = $("key").value.trim();
    if (!key) return;
    state.key = key;
    sessionStorage.setItem(KEY_STORE, key);
    $("key").value = "";
    beginWithKey().catch(failed);
  }

  // One request tries the key before the panels' many: a wrong key is refused once.
  async function beginWithKey() {
    await json("/admin/children");
    begin();
  }

  function forgetKey() {
    askForKey("The key is forgotten in this tab.");
  }

  // -- polling --------------------------------------------------------------------------

  function every(ms, work) {
    const run = () => work().catch(failed);
    run();
    state.timers.push(setInterval(run, ms));
  }

  function stop() {
    state.timers.forEach(clearInterval);
    state.timers = [];
  }

  function failed(error) {
    if (error instanceof KeyRefused) return;
    note("The coordinator did not answer: " + error.message);
  }

  function begin() {
    stop();
    $("key-form").hidden = true;
    $("forget-key").hidden = !state.config.key_required;
    $("panels").hidden = false;
    note("");
    every(CHILDREN_MS, refreshChildren);
    every(SCREENSHOT_MS, refreshScreenshot);
    every(USAGE_MS, refreshUsage);
    every(QUOTA_MS, refreshQuota);
  }

  async function start() {
    $("key-form").addEventListener("submit", useKey);
    $("forget-key").addEventListener("click", forgetKey);
    $("children").addEventListener("click", onAction);
    const response = await fetch("/dashboard/config.json", { cache: "no-store", credentials: "omit" });
    state.config = await response.json();
    if (!state.config.key_required) begin();
    else if (state.key) await beginWithKey();
    else askForKey();
  }

  // -- children, summary, queue ---------------------------------------------------------

  async function refreshChildren() {
    const [listing, summary] = await Promise.all([json("/admin/children"), health()]);
    state.children = listing.data;
    const first = state.selected === null && state.children.length > 0;
    if (first) state.selected = state.children[0].id;
    drawChildren(state.children);
    drawSummary(summary);
    note("");
    if (first) await refreshScreenshot(); // no need to wait for its timer the first time
  }

  async function health() {
    // /health answers 503 with the same body when no child serves: both are a summary.
    const response = await fetch("/health", { cache: "no-store", credentials: "omit" });
    return response.json();
  }

  function drawSummary(summary) {
    const badge = $("status");
    badge.textContent = summary.status;
    badge.className = "badge status-" + summary.status;
    const children = summary.children || {};
    const queue = summary.queue || {};
    $("summary").textContent =
      `${children.serving}/${children.total} children serving · queue ${queue.waiting}/${queue.max} · ${summary.in_flight} in flight`;
    const lanes = queue.by_lane || {};
    const body = $("queue").tBodies[0];
    const widest = Math.max(1, ...LANES.map((lane) => lanes[lane] || 0));
    body.replaceChildren(
      ...LANES.map((lane) => {
        const waiting = lanes[lane] || 0;
        const bar = svg("svg", { width: 160, height: 12, class: "lane-bar", role: "img" });
        bar.append(svg("rect", { x: 0, y: 1, width: Math.round((160 * waiting) / widest), height: 10, fill: "#1a73e8" }));
        return row([lane, cell(String(waiting), "num"), cell(bar)]);
      })
    );
    $("queue-note").textContent = queue.waiting ? "" : "Nothing waits: every request found a child.";
  }

  // Rows are kept by child and their cells replaced, but not their buttons: a click that
  // straddles a refresh still lands on the button it began on.
  function drawChildren(children) {
    const body = $("children").tBodies[0];
    const kept = new Map([...body.rows].map((tr) => [tr.dataset.child, tr]));
    const rows = children.map((child) => {
      const stateCell = cell(badge(child.state, "state-" + child.state));
      if (child.state === "spare" && child.spare_reason) stateCell.title = child.spare_reason;
      if (child.last_error) stateCell.title = child.last_error;
      const tr = kept.get(child.id) || document.createElement("tr");
      const buttons = tr.cells.length ? tr.cells[tr.cells.length - 1] : actions(child);
      tr.replaceChildren(
        ...[
          child.profile || child.id,
          stateCell,
          child.pid === null ? "–" : String(child.pid),
          cell(child.request_id || "–", "mono"),
          cell(String(child.served), "num"),
          cell(String(child.restarts), "num"),
          cell(seconds(child.seconds_in_state), "num"),
          cooldowns(child),
          (child.models || []).join(", ") || "–",
        ].map((content) => (content instanceof HTMLTableCellElement ? content : cell(content))),
        buttons
      );
      for (const button of buttons.querySelectorAll("button")) {
        button.disabled = button.dataset.action === "drain" && child.state === "stopped";
      }
      tr.dataset.child = child.id;
      tr.dataset.state = child.state;
      tr.classList.toggle("selected", child.id === state.selected);
      return tr;
    });
    const same = rows.length === body.rows.length && rows.every((tr, i) => body.rows[i] === tr);
    if (!same) body.replaceChildren(...rows);
  }

  function cooldowns(child) {
    const parts = [];
    if (child.state === "cooldown") {
      const left = child.cooldown_seconds ? " " + seconds(child.cooldown_seconds) : "";
      parts.push(`all models (${child.cooldown_reason || "cooldown"})${left}`);
    }
    for (const [model, left] of Object.entries(child.model_cooldowns || {})) parts.push(`${model} ${seconds(left)}`);
    return parts.join(", ") || "–";
  }

  function actions(child) {
    const td = cell("");
    for (const [action, label] of [["show", "Show"], ["restart", "Restart"], ["drain", "Drain"]]) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      button.dataset.action = action;
      button.dataset.child = child.id;
      td.append(button);
    }
    return td;
  }

  async function onAction(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const id = button.dataset.child;
    if (button.dataset.action === "show") {
      state.selected = id;
      drawChildren(state.children);
      await refreshScreenshot().catch(failed);
      return;
    }
    button.disabled = true;
    try {
      const response = await api(`/admin/children/${encodeURIComponent(id)}/${button.dataset.action}`, { method: "POST" });
      const body = await response.json();
      note(response.ok ? `${id}: ${body.action} asked (${body.state})` : `${id}: ${body.error && body.error.message}`);
      await refreshChildren();
    } catch (error) {
      failed(error);
    }
  }

  // -- the screenshot -------------------------------------------------------------------

  async function refreshScreenshot() {
    const child = state.children.find((c) => c.id === state.selected);
    const image = $("shot");
    $("shot-child").textContent = child ? child.profile || child.id : "";
    if (!child) return;
    if (!SHOWABLE.has(child.state)) {
      $("shot-note").textContent = `${child.id} is ${child.state}: no page to show.`;
      return;
    }
    const response = await api(`/admin/children/${encodeURIComponent(child.id)}/screenshot`);
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      $("shot-note").textContent = (body.error && body.error.message) || `HTTP ${response.status}`;
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const previous = state.shotUrl;
    state.shotUrl = url;
    image.onload = () => previous && URL.revokeObjectURL(previous);
    image.src = url;
    image.hidden = false;
    image.alt = `The page of ${child.id}`;
    $("shot-note").textContent = `${child.id}, ${new Date().toLocaleTimeString()}`;
  }

  // -- usage ----------------------------------------------------------------------------

  async function refreshUsage() {
    const from = new Date(Date.now() - (USAGE_DAYS - 1) * 86400000).toISOString().slice(0, 10);
    const [byDay, byProfile] = await Promise.all([
      json(`/admin/usage?group_by=profile,day&from=${from}`),
      json(`/admin/usage?group_by=profile&from=${from}`),
    ]);
    drawDays($("usage-days"), byDay.data, from);
    drawProfiles($("usage-profiles"), byProfile.data);
  }

  // Stacked bars: one per day, a segment per profile. A row's group is "PROFILE YYYY-MM-DD".
  function drawDays(box, rows, from) {
    const days = [];
    for (let day = new Date(from + "T00:00:00Z"); days.length < USAGE_DAYS; day = new Date(day.getTime() + 86400000)) {
      days.push(day.toISOString().slice(0, 10));
    }
    const profiles = [];
    const counts = new Map(); // "day profile" → requests
    for (const r of rows) {
      const day = r.group.slice(-10);
      const profile = r.group.slice(0, -11);
      if (!profiles.includes(profile)) profiles.push(profile);
      counts.set(day + " " + profile, r.requests);
    }
    if (!rows.length) return empty(box, "No requests yet.");
    const width = 560, height = 220, left = 40, bottom = 24, top = 10;
    const totals = days.map((day) => profiles.reduce((sum, p) => sum + (counts.get(day + " " + p) || 0), 0));
    const most = Math.max(1, ...totals);
    const slot = (width - left) / days.length;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height + 30}`, class: "chart-svg", role: "img", "aria-label": "Requests per day by profile" });
    chart.append(axis(left, top, width, height - bottom, most));
    days.forEach((day, index) => {
      let y = height - bottom;
      profiles.forEach((profile, p) => {
        const n = counts.get(day + " " + profile) || 0;
        if (!n) return;
        const h = ((height - bottom - top) * n) / most;
        y -= h;
        const bar = svg("rect", { x: left + index * slot + 2, y, width: Math.max(1, slot - 4), height: h, fill: PALETTE[p % PALETTE.length], class: "bar" });
        bar.append(svg("title", {}, `${profile}, ${day}: ${n} requests`));
        chart.append(bar);
      });
      if (index % 2 === 0 || days.length <= 7) {
        chart.append(svg("text", { x: left + index * slot + slot / 2, y: height - 8, "text-anchor": "middle", class: "tick" }, day.slice(5)));
      }
    });
    legend(chart, profiles, height + 6);
    box.replaceChildren(chart);
  }

  // Horizontal bars: a profile's tokens, in three segments.
  function drawProfiles(box, rows) {
    if (!rows.length) return empty(box, "No requests yet.");
    const kinds = [["prompt_tokens", "prompt", PALETTE[0]], ["completion_tokens", "completion", PALETTE[1]], ["reasoning_tokens", "reasoning", PALETTE[2]]];
    const width = 560, left = 110, line = 26;
    const height = rows.length * line + 10;
    const most = Math.max(1, ...rows.map((r) => kinds.reduce((sum, [k]) => sum + (r[k] || 0), 0)));
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height + 30}`, class: "chart-svg", role: "img", "aria-label": "Tokens by profile" });
    rows.forEach((r, index) => {
      const y = 6 + index * line;
      chart.append(svg("text", { x: left - 8, y: y + 14, "text-anchor": "end", class: "label" }, r.group));
      let x = left;
      for (const [k, name, colour] of kinds) {
        const w = ((width - left - 130) * (r[k] || 0)) / most;
        if (!w) continue;
        const bar = svg("rect", { x, y, width: w, height: line - 8, fill: colour, class: "bar" });
        bar.append(svg("title", {}, `${r.group}: ${r[k]} ${name} tokens`));
        chart.append(bar);
        x += w;
      }
      const total = kinds.reduce((sum, [k]) => sum + (r[k] || 0), 0);
      chart.append(svg("text", { x: x + 6, y: y + 14, class: "label" }, `${compact(total)} · ${compact(r.requests)} req`));
    });
    legend(chart, kinds.map(([, name]) => name), height + 6, (i) => kinds[i][2]);
    box.replaceChildren(chart);
  }

  function axis(left, top, width, base, most) {
    const group = svg("g", { class: "axis" });
    group.append(svg("line", { x1: left, y1: base, x2: width, y2: base }));
    group.append(svg("line", { x1: left, y1: top, x2: left, y2: base }));
    group.append(svg("text", { x: left - 6, y: top + 8, "text-anchor": "end", class: "tick" }, String(most)));
    group.append(svg("text", { x: left - 6, y: base, "text-anchor": "end", class: "tick" }, "0"));
    return group;
  }

  function legend(chart, names, y, colour = (i) => PALETTE[i % PALETTE.length]) {
    let x = 40;
    names.forEach((name, i) => {
      chart.append(svg("rect", { x, y, width: 10, height: 10, fill: colour(i) }));
      chart.append(svg("text", { x: x + 14, y: y + 9, class: "label" }, name));
      x += 24 + 7 * name.length;
    });
  }

  // -- quota ----------------------------------------------------------------------------

  async function refreshQuota() {
    const response = await api("/admin/usage/quota");
    if (!response.ok) throw new Error(`/admin/usage/quota answered HTTP ${response.status}`);
    const quota = await response.json();
    const day = quota.quota_day || {};
    $("quota-day").textContent = day.start ? `(quota day from ${day.start} to ${day.end}, ${day.timezone})` : "";
    $("quota").tBodies[0].replaceChildren(
      ...(quota.rows || []).map((r) =>
        row([
          r.profile,
          r.model,
          cell(String(r.requests), "num"),
          cell(String(r.prompt_tokens), "num"),
          cell(String(r.completion_tokens), "num"),
          cell(String(r.reasoning_tokens), "num"),
          cell(String(r.quota_hits), "num"),
          r.last_quota_hit || "–",
          cell(r.daily_limit === null || r.daily_limit === undefined ? "–" : String(r.daily_limit), "num"),
          cell(r.remaining === null || r.remaining === undefined ? "–" : String(r.remaining), "num"),
        ])
      )
    );
    $("quota-section").hidden = false;
  }

  // -- building blocks ------------------------------------------------------------------

  function svg(name, attributes, text) {
    const element = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function cell(content, className) {
    const td = document.createElement("td");
    if (content instanceof Node) td.append(content);
    else td.textContent = content;
    if (className) td.className = className;
    return td;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const content of cells) tr.append(content instanceof HTMLTableCellElement ? content : cell(content));
    return tr;
  }

  function badge(text, className) {
    const span = document.createElement("span");
    span.className = "badge " + className;
    span.textContent = text;
    return span;
  }

  function empty(box, text) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = text;
    box.replaceChildren(p);
  }

  function compact(n) {
    if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (n >= 1e4) return Math.round(n / 1e3) + "k";
    return String(n);
  }

  function seconds(value) {
    if (typeof value !== "number") return "–";
    const whole = Math.max(0, Math.floor(value));
    for (const [size, unit] of [[86400, "d"], [3600, "h"], [60, "m"]]) if (whole >= size) return Math.floor(whole / size) + unit;
    return whole + "s";
  }

  document.addEventListener("DOMContentLoaded", () => start().catch(failed));
})();
