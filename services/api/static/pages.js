// Helpers shared by the customer, courier and storefront pages. No dependencies.
// Text from the server (reason codes, labels) comes in <script type="application/json"
// id="page-text">; everything shown is set with textContent, never as HTML.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("page-text").textContent);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) {
      if (c !== null && c !== undefined) node.append(c);
    }
    return node;
  }

  // Chinese first, then the English in a span the base CSS greys out.
  function bi(zh, en) {
    const frag = document.createDocumentFragment();
    frag.append(zh || "");
    if (en) frag.append(" ", el("span", { class: "en", lang: "en", text: en }));
    return frag;
  }

  function label(table, key) {
    const t = (data[table] || {})[key];
    return t ? bi(t.zh, t.en) : document.createTextNode(key || "");
  }

  function say(node, zh, en, tone) {
    node.replaceChildren(bi(zh, en));
    node.dataset.tone = tone || "";
  }

  function reason(code) {
    return (data.reasons || {})[code] || null;
  }

  // One <li> per code: what happened, what to do, and the code itself (for support).
  function reasonItem(code, detail) {
    const t = reason(code);
    const li = el("li", { "data-code": code });
    if (t) {
      li.append(el("strong", {}, bi(t.zh, t.en)));
      if (t.next_zh) li.append(el("span", { class: "next" }, bi(t.next_zh, t.next_en)));
    } else {
      li.append(el("strong", {}, bi("出现问题", "Something went wrong")));
      if (detail) li.append(el("span", { class: "next", lang: "en", text: String(detail) }));
    }
    li.append(" ", el("code", { text: code }));
    return li;
  }

  function reasonList(ul, codes) {
    ul.replaceChildren(...codes.map((c) => reasonItem(c)));
  }

  // An API error as a sentence in `node` (role=alert), with the next step.
  function showError(node, code, detail) {
    node.replaceChildren(el("ul", { class: "reasons" }, reasonItem(code, detail)));
  }

  function detailText(detail) {
    if (Array.isArray(detail)) {
      return detail.map((d) => (d.field ? d.field + ": " : "") + (d.problem || "")).join("; ");
    }
    return detail === undefined || detail === null ? "" : String(detail);
  }

  // fetch() returning {ok, status, body, code, detail}; never throws.
  async function api(method, url, opts) {
    const o = opts || {};
    const headers = Object.assign({ Accept: "application/json" }, o.headers || {});
    if (o.token) headers.Authorization = "Bearer " + o.token;
    let body;
    if (o.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(o.json);
    } else if (o.form) {
      body = o.form;
    }
    let res;
    try {
      res = await fetch(url, { method, headers, body, credentials: "omit", cache: "no-store" });
    } catch (err) {
      return { ok: false, status: 0, body: null, code: "network.error", detail: String(err) };
    }
    let parsed = null;
    try {
      parsed = await res.json();
    } catch (err) {
      parsed = null;
    }
    const code = res.ok ? null : (parsed && parsed.error) || "http.error";
    const detail = res.ok ? null : detailText(parsed && parsed.detail);
    return { ok: res.ok, status: res.status, body: parsed, code, detail };
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  function focus(node) {
    if (!node) return;
    if (!node.hasAttribute("tabindex")) node.setAttribute("tabindex", "-1");
    node.focus();
  }

  // The tab's own storage: gone when the tab closes, never sent anywhere by itself.
  function store(key, value) {
    try {
      if (value === null) sessionStorage.removeItem(key);
      else sessionStorage.setItem(key, value);
    } catch (err) {
      /* storage disabled: the value lives in the page only */
    }
  }

  function load(key) {
    try {
      return sessionStorage.getItem(key);
    } catch (err) {
      return null;
    }
  }

  function bytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(0) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  function randomId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const a = new Uint8Array(16);
    crypto.getRandomValues(a);
    return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function clock(date) {
    return date.toLocaleTimeString("zh-CN", { hour12: false });
  }

  window.SG = {
    data, el, bi, label, say, reason, reasonItem, reasonList, showError, api, sleep, focus,
    store, load, bytes, randomId, clock,
  };
})();
