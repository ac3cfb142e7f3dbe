// A demo storefront: post an order as an agent, follow it to the decision (polling).
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const KEY = "simgate.agent-key";
  const POLL_MS = 1000;
  const STATUSES = ["received", "verifying", "checking", "waiting_lookup", "decided"];
  const SECTIONS = ["step-key", "step-order", "step-track"];
  const FILES = ["id-front", "id-back", "selfie"];
  const TONES = { approved: "ok", rejected: "bad" };

  let tracking = 0; // bumps on every new order, stops an older poll loop

  function show(id, heading) {
    SECTIONS.forEach((s) => {
      $(s).hidden = s !== id;
    });
    if (heading) SG.focus($(heading));
  }

  function key() {
    return SG.load(KEY);
  }

  function signOut(code) {
    SG.store(KEY, null);
    tracking++;
    $("status").replaceChildren();
    if (code) SG.showError($("key-error"), code);
    else $("key-error").replaceChildren();
    show("step-key", "h-key");
  }

  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("agent-key").value.trim();
    if (!value) {
      SG.showError($("key-error"), "auth.missing_key");
      $("agent-key").focus();
      return;
    }
    SG.store(KEY, value);
    $("agent-key").value = "";
    $("key-error").replaceChildren();
    showOrder();
  });

  async function loadNumbers() {
    SG.say($("status"), "正在加载可选号码…", "Loading numbers…");
    const r = await SG.api("GET", "/v1/numbers?limit=20", { token: key() });
    $("status").replaceChildren();
    if (r.status === 401 || r.status === 403) {
      signOut(r.code);
      return false;
    }
    if (!r.ok) {
      SG.showError($("order-error"), r.code, r.detail);
      return false;
    }
    $("msisdn").replaceChildren(
      ...r.body.msisdns.map((m) => SG.el("option", { value: m, text: m }))
    );
    if (!r.body.msisdns.length) {
      $("order-error").replaceChildren(
        SG.el("p", {}, SG.bi("没有可选号码。", "No numbers are available."))
      );
      return false;
    }
    return true;
  }

  async function showOrder() {
    $("order-error").replaceChildren();
    $("submit-order").disabled = false;
    show("step-order", "h-order");
    await loadNumbers();
  }

  FILES.forEach((id) => {
    $(id).addEventListener("change", () => {
      const f = $(id).files[0];
      const out = document.querySelector(`.picked[data-for="${id}"]`);
      out.replaceChildren(f ? SG.bi(`已选择 ✓ ${SG.bytes(f.size)}`, "photo selected") : "");
    });
  });
  $("sign-out").addEventListener("click", () => signOut(null));
  $("new-order").addEventListener("click", () => {
    tracking++;
    showOrder();
  });

  function problem(input, zh, en) {
    input.setAttribute("aria-invalid", "true");
    $("order-error").replaceChildren(SG.el("p", {}, SG.bi(zh, en)));
    input.focus();
  }

  $("order-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = $("order-form");
    form.querySelectorAll("[aria-invalid]").forEach((n) => n.removeAttribute("aria-invalid"));
    $("order-error").replaceChildren();
    const name = $("name").value.trim();
    const idNumber = $("id-number").value.trim().toUpperCase();
    if (!$("msisdn").value) return problem($("msisdn"), "请选择号码。", "Pick a number.");
    if (!name) return problem($("name"), "请填写姓名。", "Type the name.");
    if (!/^[1-9]\d{16}[\dX]$/.test(idNumber)) {
      return problem(
        $("id-number"),
        "身份证号码应为 18 位：17 位数字加一位数字或 X。",
        "The ID number is 18 characters: 17 digits and a digit or X."
      );
    }
    for (const id of FILES) {
      if (!$(id).files[0]) return problem($(id), "请选择全部三张照片。", "Pick all three photos.");
    }
    const body = new FormData();
    body.append("msisdn", $("msisdn").value);
    body.append("name", name);
    body.append("id_number", idNumber);
    body.append("delivery", form.elements.delivery.value);
    body.append("id_front", $("id-front").files[0]);
    body.append("id_back", $("id-back").files[0]);
    body.append("selfie", $("selfie").files[0]);
    $("submit-order").disabled = true;
    SG.say($("status"), "正在提交订单…", "Submitting the order…");
    const r = await SG.api("POST", "/v1/orders", {
      token: key(),
      form: body,
      headers: { "Idempotency-Key": SG.randomId() },
    });
    $("status").replaceChildren();
    if (!r.ok) {
      if (r.status === 401) return signOut(r.code);
      SG.showError($("order-error"), r.code, r.detail);
      $("submit-order").disabled = false;
      if (r.code === "order.msisdn_unavailable" || r.code === "order.unknown_msisdn") {
        await loadNumbers();
      }
      SG.focus($("order-error"));
      return;
    }
    // What was typed is not kept on the page: from now on, only the API's masked view.
    form.reset();
    FILES.forEach((id) => {
      document.querySelector(`.picked[data-for="${id}"]`).replaceChildren();
    });
    track(r.body.order_id);
  });

  function renderInfo(order) {
    $("order-info").replaceChildren(
      SG.el("dt", {}, SG.bi("订单", "Order")),
      SG.el("dd", {}, SG.el("code", { text: order.order_id })),
      SG.el("dt", {}, SG.bi("号码", "Number")),
      SG.el("dd", { text: order.msisdn }),
      SG.el("dt", {}, SG.bi("证件号码", "ID number")),
      SG.el("dd", {}, SG.el("code", { id: "masked-id", text: order.id_number_masked || "—" }))
    );
  }

  function renderTimeline(seen, current) {
    $("timeline").replaceChildren(
      ...STATUSES.filter((s) => s !== "waiting_lookup" || seen[s]).map((s) => {
        const li = SG.el(
          "li",
          { "data-status": s, class: seen[s] ? "seen" : "" },
          SG.label("statuses", s)
        );
        if (s === current) li.setAttribute("aria-current", "step");
        if (seen[s]) li.append(SG.el("time", { text: SG.clock(seen[s]) }));
        return li;
      })
    );
  }

  function renderDecision(order) {
    const verdict = $("verdict");
    const outcome = (SG.data.outcomes || {})[order.outcome] || {
      zh: order.outcome,
      en: order.outcome,
    };
    verdict.className = "verdict " + (TONES[order.outcome] || "warn");
    verdict.dataset.outcome = order.outcome;
    verdict.replaceChildren(
      SG.el("span", {
        class: "mark",
        "aria-hidden": "true",
        text: order.outcome === "approved" ? "✔" : order.outcome === "rejected" ? "✘" : "…",
      }),
      SG.el("span", { class: "zh", text: outcome.zh }),
      SG.el("span", { class: "en", lang: "en", text: outcome.en })
    );
    const mode = order.ship_mode && (SG.data.ship_modes || {})[order.ship_mode];
    if (mode) verdict.append(SG.el("span", { class: "next" }, SG.bi(mode.zh, mode.en)));
    if (order.seconds_to_decision !== null && order.seconds_to_decision !== undefined) {
      const s = order.seconds_to_decision.toFixed(1);
      verdict.append(SG.el("span", { class: "next" }, SG.bi(`用时 ${s} 秒`, `decided in ${s} s`)));
    }
    SG.reasonList($("reasons"), order.reasons || []);
    SG.reasonList($("notes"), order.notes || []);
    $("notes-title").hidden = !(order.notes || []).length;
    $("decision").hidden = false;
  }

  async function track(orderId) {
    const mine = ++tracking;
    const seen = {};
    let last = null;
    $("decision").hidden = true;
    $("verdict").removeAttribute("data-outcome");
    $("track-error").replaceChildren();
    $("order-info").replaceChildren();
    renderTimeline(seen, null);
    show("step-track", "h-track");
    while (mine === tracking) {
      const r = await SG.api("GET", "/v1/orders/" + encodeURIComponent(orderId), { token: key() });
      if (mine !== tracking) return;
      if (r.ok) {
        const order = r.body;
        if (!last) renderInfo(order);
        const idx = STATUSES.indexOf(order.status);
        // A poll can miss a short stage: every main stage up to this one was passed.
        STATUSES.slice(0, idx + 1).forEach((s) => {
          if (!seen[s] && (s !== "waiting_lookup" || s === order.status)) seen[s] = new Date();
        });
        if (order.status !== last) {
          last = order.status;
          renderTimeline(seen, order.status);
          const t = SG.data.statuses[order.status] || { zh: order.status, en: order.status };
          SG.say($("status"), t.zh, t.en);
        }
        if (order.status === "decided") {
          renderDecision(order);
          return;
        }
      } else if (r.status >= 400 && r.status < 500) {
        SG.showError($("track-error"), r.code, r.detail);
        return;
      }
      await SG.sleep(POLL_MS);
    }
  }

  if (key()) showOrder();
  else show("step-key", null);
})();
