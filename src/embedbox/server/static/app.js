// embedbox explorer: plain JS, no build step, nothing loaded from the network but this server.
// All item and user text goes into the DOM through textContent / createTextNode, never innerHTML.
"use strict";

const KEY_STORE = "embedbox.apiKey";
const BASE = location.pathname.replace(/\/ui(\/.*)?$/, "");
const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#e7ba52", "#3182bd", "#a55194",
];
const STOPWORDS = new Set(
  ("the a an and or of to in on for is are was were be by with as at it its this that from " +
   "what which who how why when will would can could do does not no").split(" "));

const $ = (id) => document.getElementById(id);
const state = {
  collection: null, info: null, fields: [], images: false,
  hits: [], query: "", mode: "semantic",
  liked: new Set(), disliked: new Set(),
  map: null, mapFor: null, view: { x: 0, y: 0, s: 1 },
  thumbs: new Map(),
};

// ---- small DOM helpers ------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}
function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function fmt(x) { return typeof x === "number" ? x.toFixed(3) : String(x); }
function valueText(v) { return typeof v === "string" ? v : JSON.stringify(v); }

// ---- API ----------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(message, status, code) { super(message); this.status = status; this.code = code; }
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { Authorization: "Bearer " + key } : {};
}

async function api(method, path, body) {
  const headers = authHeaders();
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(BASE + path, init);
  } catch (err) {
    throw new ApiError("cannot reach the server (" + err.message + ")", 0, "network");
  }
  if (!resp.ok) {
    let message = "HTTP " + resp.status + " " + resp.statusText;
    let code = null;
    try {
      const data = await resp.json();
      if (data && data.error && data.error.message) {
        message = data.error.message;
        code = data.error.code;
      }
    } catch (_) { /* not JSON: keep the status line */ }
    throw new ApiError(message, resp.status, code);
  }
  return resp;
}
async function apiJson(method, path, body) { return (await api(method, path, body)).json(); }

function showError(err) {
  let text = err instanceof Error ? err.message : String(err);
  if (err instanceof ApiError && err.status === 401) {
    text += " — enter a valid API key with the “API key” button.";
    openKeyForm(true);
  } else if (err instanceof ApiError && err.status === 403) {
    text += " (this key is not allowed to do that)";
  }
  $("error-text").textContent = text;
  $("error").hidden = false;
}
function hideError() { $("error").hidden = true; $("error-text").textContent = ""; }

async function guarded(fn, statusNode) {
  hideError();
  try {
    return await fn();
  } catch (err) {
    if (statusNode) statusNode.textContent = "";
    showError(err);
    return undefined;
  }
}

function colPath(suffix = "") {
  return "/collections/" + encodeURIComponent(state.collection) + suffix;
}

// ---- API key ------------------------------------------------------------------------------
function openKeyForm(focus) {
  $("key-form").hidden = false;
  $("key-button").setAttribute("aria-expanded", "true");
  if (focus) $("key-input").focus();
}
function setupKey() {
  $("key-button").addEventListener("click", () => {
    if ($("key-form").hidden) openKeyForm(true);
    else { $("key-form").hidden = true; $("key-button").setAttribute("aria-expanded", "false"); }
  });
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = $("key-input").value.trim();
    if (key) sessionStorage.setItem(KEY_STORE, key);
    $("key-input").value = "";
    $("key-form").hidden = true;
    $("key-button").setAttribute("aria-expanded", "false");
    updateKeyButton();
    loadCollections();
  });
  $("key-clear").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    updateKeyButton();
  });
  updateKeyButton();
}
function updateKeyButton() {
  $("key-button").textContent = sessionStorage.getItem(KEY_STORE) ? "API key ✓" : "API key";
}

// ---- collections --------------------------------------------------------------------------
async function loadCollections() {
  await guarded(async () => {
    const data = await apiJson("GET", "/collections");
    const select = $("collection");
    const previous = state.collection || new URLSearchParams(location.search).get("collection");
    clear(select);
    const usable = data.collections.filter((c) => !c.error);
    for (const c of usable) {
      select.append(el("option", { value: c.name, text: c.name + " (" + c.count + ")" }));
    }
    for (const c of data.collections.filter((c) => c.error)) {  // listed, not selectable
      select.append(el("option", { value: "", disabled: "", title: c.error,
                                   text: c.name + " (cannot be read)" }));
    }
    if (!usable.length) {
      select.append(el("option", { value: "", text: "no collections" }));
      $("col-info").textContent =
        "No collections yet: create one with `embedbox collection create NAME` and add items.";
      state.collection = null;
      return;
    }
    const pick = usable.some((c) => c.name === previous) ? previous : usable[0].name;
    select.value = pick;
    await selectCollection(pick);
  });
}

async function selectCollection(name) {
  state.collection = name;
  state.hits = []; state.map = null; state.mapFor = null;
  state.liked.clear(); state.disliked.clear();
  state.thumbs.clear();
  clear($("results")); $("results-status").textContent = "";
  $("detail").hidden = true;
  updateRecBar();
  await guarded(async () => {
    const data = await apiJson("GET", "/ui/api" + colPath("/fields"));
    state.info = data.info; state.fields = data.fields; state.images = data.images;
    renderInfo(data);
    fillFieldChoices();
    if (!$("view-map").hidden) await loadMap();
  });
}

function renderInfo(data) {
  const box = $("col-info");
  clear(box);
  const i = data.info;
  const facts = [
    ["items", String(i.count)], ["model", i.model], ["kind", i.kind],
    ["dim", String(i.dim)], ["index", i.index],
  ];
  const list = el("dl", { class: "facts" });
  for (const [k, v] of facts) list.append(el("dt", { text: k }), el("dd", { text: v }));
  box.append(list);
  const fieldList = el("p", { class: "fields" });
  fieldList.append(el("strong", { text: "Fields: " }));
  if (!data.fields.length) fieldList.append("none");
  data.fields.forEach((f, n) => {
    if (n) fieldList.append(", ");
    fieldList.append(el("code", { text: f.name }), " (" + f.types.join("/") + ")");
  });
  box.append(fieldList);
  if (i.kind === "image") {
    // image vectors cannot be searched with a text query: keyword search finds file names,
    // and "more like this" on any hit finds similar images
    document.querySelector("input[name=mode][value=keyword]").checked = true;
    box.append(el("p", {
      class: "hint",
      text: "Image collection: search file names by keyword, then open an image to see similar ones.",
    }));
  }
}

function fillFieldChoices() {
  const names = $("field-names");
  clear(names);
  for (const f of state.fields) names.append(el("option", { value: f.name }));
  const colorBy = $("color-by");
  const keep = colorBy.value;
  clear(colorBy);
  colorBy.append(el("option", { value: "cluster", text: "cluster (k-means)" }));
  for (const f of state.fields) {
    if (f.distinct > 0) colorBy.append(el("option", { value: f.name, text: f.name }));
  }
  colorBy.value = [...colorBy.options].some((o) => o.value === keep) ? keep : "cluster";
}

// ---- filter builder -----------------------------------------------------------------------
const OPS = [
  ["$eq", "="], ["$ne", "≠"], ["$gt", ">"], ["$gte", "≥"], ["$lt", "<"], ["$lte", "≤"],
  ["$in", "in (a, b, …)"], ["$contains", "list contains"], ["$exists", "exists"],
];

function addFilterRow() {
  const row = el("div", { class: "filter-row" });
  const field = el("input", {
    class: "f-field", list: "field-names", placeholder: "field", "aria-label": "Field",
  });
  const op = el("select", { class: "f-op", "aria-label": "Operator" });
  for (const [v, t] of OPS) op.append(el("option", { value: v, text: t }));
  const valueList = "values-" + Math.random().toString(36).slice(2);
  const value = el("input", {
    class: "f-value", placeholder: "value", "aria-label": "Value", list: valueList,
  });
  const values = el("datalist", { id: valueList });
  field.addEventListener("change", () => {
    clear(values);
    const f = state.fields.find((x) => x.name === field.value.trim());
    if (f) for (const v of f.values) values.append(el("option", { value: valueText(v) }));
  });
  op.addEventListener("change", () => { value.disabled = op.value === "$exists"; });
  const remove = el("button", {
    type: "button", class: "f-remove", "aria-label": "Remove condition", text: "×",
    onclick: () => { row.remove(); updateFilterCount(); },
  });
  row.append(field, op, value, values, remove);
  $("filter-rows").append(row);
  updateFilterCount();
  field.focus();
}

function updateFilterCount() {
  $("filter-count").textContent = String($("filter-rows").children.length);
}

function coerce(fieldName, raw) {
  const f = state.fields.find((x) => x.name === fieldName);
  const types = f ? f.types : [];
  const text = raw.trim();
  if (types.includes("boolean") && (text === "true" || text === "false")) return text === "true";
  if ((types.includes("number") || !f) && text !== "" && !Number.isNaN(Number(text))) {
    if (types.includes("number") || !types.includes("string")) return Number(text);
  }
  return text;
}

function buildWhere() {
  const conds = [];
  for (const row of $("filter-rows").children) {
    const name = row.querySelector(".f-field").value.trim();
    const op = row.querySelector(".f-op").value;
    const raw = row.querySelector(".f-value").value;
    if (!name) continue;
    let arg;
    if (op === "$exists") arg = true;
    else if (op === "$in") arg = raw.split(",").map((s) => coerce(name, s)).filter((s) => s !== "");
    else arg = coerce(name, raw);
    conds.push({ [name]: { [op]: arg } });
  }
  if (!conds.length) return null;
  if (conds.length === 1) return conds[0];
  return { [$("filter-join").value]: conds };
}

// ---- search and results -------------------------------------------------------------------
function queryTerms(query) {
  const words = query.toLowerCase().match(/[\p{L}\p{N}]+/gu) || [];
  return [...new Set(words.filter((w) => w.length > 2 && !STOPWORDS.has(w)))];
}

function highlighted(text, terms) {
  const frag = document.createDocumentFragment();
  if (!terms.length) { frag.append(text); return frag; }
  const escaped = terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  // terms match at the start of a word: "telescope" marks "telescopes", not "microtelescope"
  const re = new RegExp("(?<![\\p{L}\\p{N}])(" + escaped.join("|") + ")", "giu");
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) frag.append(text.slice(last, m.index));
    frag.append(el("mark", { text: m[0] }));
    last = m.index + m[0].length;
  }
  if (last < text.length) frag.append(text.slice(last));
  return frag;
}

function metaList(meta) {
  const dl = el("dl", { class: "meta" });
  for (const [k, v] of Object.entries(meta || {})) {
    dl.append(el("dt", { text: k }), el("dd", { text: valueText(v) }));
  }
  return dl;
}

async function thumbUrl(id) {
  if (state.thumbs.has(id)) return state.thumbs.get(id);
  const promise = (async () => {
    const resp = await api("GET", "/ui/api" + colPath("/items/" + encodeURIComponent(id) + "/thumbnail"));
    return URL.createObjectURL(await resp.blob());
  })();
  state.thumbs.set(id, promise);
  return promise;
}
function thumbImg(id, size) {
  const img = el("img", { class: "thumb", alt: "image of " + id, width: size, height: size });
  thumbUrl(id).then((url) => { img.src = url; }, () => { img.replaceWith(el("span", { class: "thumb missing", text: "no image" })); });
  return img;
}

function renderHits(list, hits, opts) {
  clear(list);
  const terms = queryTerms(opts.query || "");
  const top = Math.max(1e-9, ...hits.map((h) => Math.abs(h.score)));
  hits.forEach((hit, rank) => {
    const li = el("li", { class: "hit", "data-id": hit.id });
    const width = opts.relative ? Math.abs(hit.score) / top : Math.max(0, Math.min(1, hit.score));
    const bar = el("div", { class: "score", title: "score " + fmt(hit.score) });
    bar.append(el("div", { class: "bar", style: "width:" + (width * 100).toFixed(1) + "%" }),
      el("span", { class: "score-num", text: fmt(hit.score) }));
    const open = el("button", {
      type: "button", class: "hit-open", text: (rank + 1) + ". " + hit.id,
      "aria-label": "Open item " + hit.id,
      onclick: () => openItem(hit.id),
    });
    const head = el("div", { class: "hit-head" }, open, bar);
    li.append(head);
    if (state.images) li.append(thumbImg(hit.id, 64));
    const text = el("p", { class: "hit-text" });
    text.append(highlighted(hit.text, terms));
    li.append(text, metaList(hit.metadata));
    if (opts.votes) {
      const like = el("button", {
        type: "button", class: "vote like", "aria-pressed": String(state.liked.has(hit.id)),
        text: "Like", onclick: () => vote(hit.id, "like", li),
      });
      const dislike = el("button", {
        type: "button", class: "vote dislike", "aria-pressed": String(state.disliked.has(hit.id)),
        text: "Dislike", onclick: () => vote(hit.id, "unlike", li),
      });
      li.append(el("div", { class: "votes" }, like, dislike));
    }
    list.append(li);
  });
}

function vote(id, kind, li) {
  const [mine, other] = kind === "like" ? [state.liked, state.disliked] : [state.disliked, state.liked];
  if (mine.has(id)) mine.delete(id); else { mine.add(id); other.delete(id); }
  li.querySelector(".like").setAttribute("aria-pressed", String(state.liked.has(id)));
  li.querySelector(".dislike").setAttribute("aria-pressed", String(state.disliked.has(id)));
  updateRecBar();
}

function updateRecBar() {
  const n = state.liked.size + state.disliked.size;
  $("rec-bar").hidden = n === 0;
  $("rec-summary").textContent = "Liked " + state.liked.size + ", disliked " + state.disliked.size;
}

async function runSearch() {
  if (!state.collection) { showError("pick a collection first"); return; }
  const query = $("query").value.trim();
  if (!query) { showError("type a query first"); $("query").focus(); return; }
  const mode = document.querySelector("input[name=mode]:checked").value;
  const k = Number($("k").value) || 10;
  const body = { query, k, mode };
  const where = buildWhere();
  if (where) body.where = where;
  $("results-status").textContent = "Searching…";
  await guarded(async () => {
    const data = await apiJson("POST", colPath("/search"), body);
    state.hits = data.hits; state.query = query; state.mode = mode;
    const filtered = where ? " (filtered)" : "";
    $("results-status").textContent =
      data.hits.length + " result" + (data.hits.length === 1 ? "" : "s") + " for “" + query + "”, " + mode + filtered;
    renderHits($("results"), data.hits, { query, relative: mode !== "semantic", votes: true });
    markMapHits();
  }, $("results-status"));
}

async function runRecommend() {
  const body = { like: [...state.liked], unlike: [...state.disliked], k: Number($("k").value) || 10 };
  const where = buildWhere();
  if (where) body.where = where;
  $("results-status").textContent = "Recommending…";
  await guarded(async () => {
    const data = await apiJson("POST", colPath("/recommend"), body);
    state.hits = data.items; state.query = "";
    $("results-status").textContent =
      data.items.length + " recommendations from " + state.liked.size + " liked and " +
      state.disliked.size + " disliked";
    renderHits($("results"), data.items, { query: "", relative: true, votes: true });
    markMapHits();
  }, $("results-status"));
}

async function openItem(id) {
  if ($("view-search").hidden) selectTab("tab-search");
  const detail = $("detail");
  detail.hidden = false;
  $("detail-title").textContent = id;
  $("detail-text").textContent = "Loading…";
  clear($("detail-meta")); clear($("neighbours")); clear($("detail-thumb"));
  $("neighbours-status").textContent = "";
  detail.focus();
  await guarded(async () => {
    const data = await apiJson("POST", colPath("/items/get"), { ids: [id] });
    const item = data.items[0];
    clear($("detail-text"));
    $("detail-text").append(highlighted(item.text, queryTerms(state.query)));
    $("detail-meta").replaceWith(Object.assign(metaList(item.metadata), { id: "detail-meta" }));
    if (state.images) $("detail-thumb").append(thumbImg(id, 160));
    $("neighbours-status").textContent = "Finding similar items…";
    const recs = await apiJson("POST", colPath("/recommend"), { like: [id], k: 5 });
    $("neighbours-status").textContent = recs.items.length + " nearest neighbours";
    renderHits($("neighbours"), recs.items, { query: "", relative: false, votes: false });
  }, $("detail-text"));
}

// ---- map ----------------------------------------------------------------------------------
async function loadMap() {
  if (!state.collection) return;
  const method = $("method").value;
  const key = state.collection + "|" + method;
  if (state.map && state.mapFor === key) { drawMap(); return; }
  $("map-status").textContent = "Projecting…";
  clear($("map"));
  await guarded(async () => {
    let path = "/map?method=" + encodeURIComponent(method);
    const limit = new URLSearchParams(location.search).get("map_points"); // sample size override
    if (limit) path += "&max_points=" + encodeURIComponent(limit);
    const data = await apiJson("GET", "/ui/api" + colPath(path));
    state.map = data; state.mapFor = key;
    $("map-status").textContent =
      data.shown + " points, " + data.clusters + " clusters, " + data.method.toUpperCase() + " projection";
    $("map-note").hidden = !data.sampled;
    $("map-note").textContent = data.note;
    state.view = { x: 0, y: 0, s: 1 };
    drawMap();
  }, $("map-status"));
}

function colorScale(points, by) {
  const values = points.map((p) => (by === "cluster" ? p.cluster : p.metadata[by]));
  const nums = values.filter((v) => typeof v === "number");
  const distinct = [...new Set(values.map((v) => (v === undefined ? "(none)" : valueText(v))))];
  if (by !== "cluster" && nums.length === values.length && distinct.length > PALETTE.length) {
    const lo = Math.min(...nums), hi = Math.max(...nums);
    const color = (v) => {
      const t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
      return "hsl(" + (240 - 200 * t).toFixed(0) + ",70%,45%)";
    };
    return { color: (p) => color(p.metadata[by]), legend: [["" + lo, color(lo)], ["" + hi, color(hi)]] };
  }
  const counts = new Map();
  for (const d of values.map((v) => (v === undefined ? "(none)" : valueText(v)))) counts.set(d, (counts.get(d) || 0) + 1);
  const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1]).map((e) => e[0]);
  const shown = ranked.slice(0, PALETTE.length - 1);
  const colorOf = new Map(shown.map((d, i) => [d, PALETTE[i]]));
  const legend = shown.map((d) => [by === "cluster" && d === "-1" ? "noise" : d, colorOf.get(d)]);
  if (ranked.length > shown.length) legend.push(["other", "#999"]);
  return {
    color: (p) => {
      const v = by === "cluster" ? p.cluster : p.metadata[by];
      return colorOf.get(v === undefined ? "(none)" : valueText(v)) || "#999";
    },
    legend,
  };
}

const MAP_W = 1000, MAP_H = 700, PAD = 30;

function drawMap() {
  const map = $("map");
  clear(map);
  if (!state.map) return;
  const by = $("color-by").value;
  const scale = colorScale(state.map.points, by);
  const g = svg("g", { id: "map-points" });
  map.append(svg("rect", { x: 0, y: 0, width: MAP_W, height: MAP_H, class: "map-bg" }), g);
  for (const p of state.map.points) {
    const c = svg("circle", {
      cx: (PAD + p.x * (MAP_W - 2 * PAD)).toFixed(1),
      cy: (PAD + (1 - p.y) * (MAP_H - 2 * PAD)).toFixed(1),
      r: 5, fill: scale.color(p), class: "point", "data-id": p.id,
    });
    c.addEventListener("mouseenter", (ev) => showTip(ev, p));
    c.addEventListener("mousemove", (ev) => moveTip(ev));
    c.addEventListener("mouseleave", hideTip);
    c.addEventListener("click", () => { hideTip(); openItem(p.id); });
    g.append(c);
  }
  const legend = $("legend");
  clear(legend);
  for (const [label, color] of scale.legend) {
    legend.append(el("li", {}, el("span", { class: "swatch", style: "background:" + color }), label));
  }
  applyView();
  markMapHits();
}

function markMapHits() {
  const ids = new Set(state.hits.map((h) => h.id));
  let inMap = 0;
  for (const c of $("map").querySelectorAll("circle.point")) {
    const hit = ids.has(c.getAttribute("data-id"));
    c.classList.toggle("hit", hit);
    if (hit) { inMap += 1; c.parentNode.append(c); } // hits drawn on top
  }
  if (state.map && ids.size) {
    const missing = ids.size - inMap;
    $("map-status").textContent = inMap + " of " + ids.size + " results ringed on the map" +
      (missing ? " (" + missing + " not in the sample)" : "");
  }
}

function showTip(ev, p) {
  const tip = $("tooltip");
  clear(tip);
  tip.append(el("strong", { text: p.id }));
  if (state.images) tip.append(thumbImg(p.id, 96));
  tip.append(el("p", { text: p.text.length > 200 ? p.text.slice(0, 199) + "…" : p.text }));
  tip.hidden = false;
  moveTip(ev);
}
function moveTip(ev) {
  const wrap = $("map-wrap").getBoundingClientRect();
  const tip = $("tooltip");
  const x = Math.min(ev.clientX - wrap.left + 12, wrap.width - tip.offsetWidth - 4);
  tip.style.left = Math.max(0, x) + "px";
  let y = ev.clientY - wrap.top + 12;
  if (y + tip.offsetHeight > wrap.height) y = Math.max(0, ev.clientY - wrap.top - tip.offsetHeight - 12);
  tip.style.top = y + "px";
}
function hideTip() { $("tooltip").hidden = true; }

function applyView() {
  const g = $("map-points");
  if (!g) return;
  const v = state.view;
  g.setAttribute("transform", "translate(" + v.x + "," + v.y + ") scale(" + v.s + ")");
  for (const c of g.children) c.setAttribute("r", (5 / Math.sqrt(v.s)).toFixed(2));
}
function zoom(factor, cx = MAP_W / 2, cy = MAP_H / 2) {
  const v = state.view;
  const s = Math.max(0.5, Math.min(40, v.s * factor));
  const f = s / v.s;
  v.x = cx - (cx - v.x) * f; v.y = cy - (cy - v.y) * f; v.s = s;
  applyView();
}
function svgPoint(ev) {
  const map = $("map");
  const pt = map.createSVGPoint();
  pt.x = ev.clientX; pt.y = ev.clientY;
  return pt.matrixTransform(map.getScreenCTM().inverse());
}
function setupMap() {
  const map = $("map");
  map.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const p = svgPoint(ev);
    zoom(ev.deltaY < 0 ? 1.2 : 1 / 1.2, p.x, p.y);
  }, { passive: false });
  let drag = null;
  map.addEventListener("pointerdown", (ev) => {
    if (ev.target.classList.contains("point")) return;
    drag = { p: svgPoint(ev), x: state.view.x, y: state.view.y };
    map.setPointerCapture(ev.pointerId);
  });
  map.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    const p = svgPoint(ev);
    state.view.x = drag.x + p.x - drag.p.x; state.view.y = drag.y + p.y - drag.p.y;
    applyView();
  });
  map.addEventListener("pointerup", () => { drag = null; });
  map.addEventListener("keydown", (ev) => {
    const step = 40;
    const actions = {
      "+": () => zoom(1.25), "=": () => zoom(1.25), "-": () => zoom(0.8),
      "0": () => { state.view = { x: 0, y: 0, s: 1 }; applyView(); },
      ArrowLeft: () => { state.view.x += step; applyView(); },
      ArrowRight: () => { state.view.x -= step; applyView(); },
      ArrowUp: () => { state.view.y += step; applyView(); },
      ArrowDown: () => { state.view.y -= step; applyView(); },
    };
    if (actions[ev.key]) { ev.preventDefault(); actions[ev.key](); }
  });
  $("zoom-in").addEventListener("click", () => zoom(1.25));
  $("zoom-out").addEventListener("click", () => zoom(0.8));
  $("zoom-reset").addEventListener("click", () => { state.view = { x: 0, y: 0, s: 1 }; applyView(); });
  $("color-by").addEventListener("change", drawMap);
  $("method").addEventListener("change", loadMap);
}

// ---- compare ------------------------------------------------------------------------------
function heatColor(score) {
  const t = Math.max(0, Math.min(1, score));
  const light = 97 - 60 * t;
  return "hsl(215,75%," + light.toFixed(0) + "%)";
}

async function runCompare() {
  const texts = $("compare-texts").value.split("\n").map((s) => s.trim()).filter(Boolean);
  if (texts.length < 2) { showError("enter at least two texts, one per line"); return; }
  const body = { a: texts };
  if (state.info && state.info.kind === "text") body.model = state.info.model;
  $("compare-status").textContent = "Comparing…";
  await guarded(async () => {
    const data = await apiJson("POST", "/similarity", body);
    $("compare-status").textContent =
      texts.length + " texts, " + data.metric + " similarity, model " + data.model;
    drawHeatmap(texts, data.scores);
  }, $("compare-status"));
}

function drawHeatmap(texts, scores) {
  const n = texts.length, cell = 56, left = 36, topPad = 28;
  const map = $("heatmap");
  clear(map);
  map.setAttribute("viewBox", "0 0 " + (left + n * cell + 4) + " " + (topPad + n * cell + 4));
  map.style.maxWidth = (left + n * cell + 4) * 1.4 + "px";
  for (let i = 0; i < n; i++) {
    const colLabel = svg("text", { x: left + i * cell + cell / 2, y: 18, class: "axis" });
    colLabel.textContent = String(i + 1);
    const rowLabel = svg("text", { x: left - 8, y: topPad + i * cell + cell / 2 + 5, class: "axis end" });
    rowLabel.textContent = String(i + 1);
    map.append(colLabel, rowLabel);
    for (let j = 0; j < n; j++) {
      const s = scores[i][j];
      const g = svg("g", { class: "cell" });
      const rect = svg("rect", {
        x: left + j * cell, y: topPad + i * cell, width: cell - 2, height: cell - 2, fill: heatColor(s),
      });
      const title = svg("title");
      title.textContent = "#" + (i + 1) + " vs #" + (j + 1) + ": " + fmt(s);
      rect.append(title);
      const label = svg("text", {
        x: left + j * cell + cell / 2 - 1, y: topPad + i * cell + cell / 2 + 4,
        class: "cell-num" + (s > 0.6 ? " dark" : ""),
      });
      label.textContent = s.toFixed(2);
      g.append(rect, label);
      map.append(g);
    }
  }
  const legend = $("compare-legend");
  clear(legend);
  for (const t of texts) legend.append(el("li", { text: t }));
}

// ---- tabs and keyboard --------------------------------------------------------------------
const TABS = ["tab-search", "tab-map", "tab-compare"];
function selectTab(id) {
  for (const t of TABS) {
    const on = t === id;
    const tab = $(t);
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $(tab.getAttribute("aria-controls")).hidden = !on;
  }
  if (id === "tab-map") loadMap();
}
function setupTabs() {
  for (const t of TABS) {
    $(t).addEventListener("click", () => selectTab(t));
    $(t).addEventListener("keydown", (ev) => {
      const i = TABS.indexOf(t);
      let next = null;
      if (ev.key === "ArrowRight") next = TABS[(i + 1) % TABS.length];
      if (ev.key === "ArrowLeft") next = TABS[(i + TABS.length - 1) % TABS.length];
      if (next) { ev.preventDefault(); selectTab(next); $(next).focus(); }
    });
  }
  document.addEventListener("keydown", (ev) => {
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
    if (ev.key === "/" && !typing) {
      ev.preventDefault(); selectTab("tab-search"); $("query").focus();
    } else if (ev.key === "Escape" && !$("detail").hidden) {
      $("detail").hidden = true;
    }
  });
}

function init() {
  setupKey();
  setupTabs();
  setupMap();
  $("error-close").addEventListener("click", hideError);
  $("reload").addEventListener("click", loadCollections);
  $("collection").addEventListener("change", (ev) => selectCollection(ev.target.value));
  $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); runSearch(); });
  $("add-filter").addEventListener("click", addFilterRow);
  $("recommend").addEventListener("click", runRecommend);
  $("rec-clear").addEventListener("click", () => {
    state.liked.clear(); state.disliked.clear(); updateRecBar();
    for (const b of document.querySelectorAll(".vote")) b.setAttribute("aria-pressed", "false");
  });
  $("detail-close").addEventListener("click", () => { $("detail").hidden = true; });
  $("compare-form").addEventListener("submit", (ev) => { ev.preventDefault(); runCompare(); });
  loadCollections();
}

init();
