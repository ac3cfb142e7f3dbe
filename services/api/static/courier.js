// The door check (R6): the courier's round, two photos, the worker's verdict.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "simgate.courier-token";
  const POLL_MS = 1000;
  const OPEN = ["assigned", "failed"];
  const SECTIONS = ["step-token", "step-round", "step-check", "step-result"];

  let current = null;
  let facePreviewUrl = null;

  function show(id, heading) {
    SECTIONS.forEach((s) => {
      $(s).hidden = s !== id;
    });
    if (heading) SG.focus($(heading));
  }

  function token() {
    return SG.load(TOKEN_KEY);
  }

  function signOut(code) {
    SG.store(TOKEN_KEY, null);
    $("token").value = "";
    $("status").replaceChildren();
    if (code) SG.showError($("token-error"), code);
    else $("token-error").replaceChildren();
    show("step-token", "h-token");
  }

  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("token").value.trim();
    if (!value) {
      SG.showError($("token-error"), "auth.missing_key");
      $("token").focus();
      return;
    }
    SG.store(TOKEN_KEY, value);
    $("token").value = "";
    $("token-error").replaceChildren();
    showRound();
  });

  async function showRound() {
    show("step-round", "h-round");
    $("round-error").replaceChildren();
    SG.say($("status"), "正在加载派送单…", "Loading your deliveries…");
    const r = await SG.api("GET", "/v1/deliveries", { token: token() });
    $("status").replaceChildren();
    if (r.status === 401 || r.status === 403) {
      signOut(r.code);
      return;
    }
    if (!r.ok) {
      SG.showError($("round-error"), r.code, r.detail);
      return;
    }
    renderRound(r.body);
    SG.say($("status"), `共 ${r.body.length} 单`, `${r.body.length} deliveries`);
  }

  function renderRound(deliveries) {
    $("round-empty").hidden = deliveries.length > 0;
    $("deliveries").replaceChildren(
      ...deliveries.map((d) => {
        const li = SG.el(
          "li",
          { "data-order": d.order_id, "data-status": d.status },
          SG.el("strong", {}, SG.bi("订单", "Order"), " ", SG.el("code", { text: d.order_id })),
          SG.el(
            "div",
            { class: "meta" },
            SG.bi("号码", "Number"),
            ": " + d.msisdn + " · ICCID: " + (d.iccid || "—")
          ),
          SG.el("span", { class: "pill" }, SG.label("deliveries", d.status))
        );
        if (d.failed_attempts) {
          li.append(
            " ",
            SG.el(
              "span",
              { class: "meta" },
              SG.bi(`已失败 ${d.failed_attempts} 次`, `${d.failed_attempts} failed`)
            )
          );
        }
        if (OPEN.includes(d.status)) {
          const b = SG.el(
            "button",
            { type: "button", class: "open" },
            SG.bi("核验并交付", "Check and hand over")
          );
          b.addEventListener("click", () => openCheck(d));
          li.append(b);
        }
        return li;
      })
    );
  }

  function openCheck(d) {
    current = d;
    $("order-info").replaceChildren(
      SG.el("dt", {}, SG.bi("订单", "Order")),
      SG.el("dd", {}, SG.el("code", { text: d.order_id })),
      SG.el("dt", {}, SG.bi("号码", "Number")),
      SG.el("dd", { text: d.msisdn }),
      SG.el("dt", {}, SG.bi("卡号", "ICCID")),
      SG.el("dd", {}, SG.el("code", { text: d.iccid || "—" }))
    );
    $("check-form").reset();
    $("id-picked").textContent = "";
    setFacePreview(null);
    $("check-error").replaceChildren();
    $("submit-check").disabled = false;
    $("status").replaceChildren();
    $("verdict").removeAttribute("data-result"); // the previous attempt's result is gone
    $("verdict").replaceChildren();
    $("reasons").replaceChildren();
    show("step-check", "h-check");
  }

  function setFacePreview(file) {
    if (facePreviewUrl) URL.revokeObjectURL(facePreviewUrl);
    facePreviewUrl = file ? URL.createObjectURL(file) : null;
    $("face-preview").hidden = !file;
    if (file) $("face-preview").src = facePreviewUrl;
    else $("face-preview").removeAttribute("src");
  }

  // The card photo is not previewed: a page shows no ID number, not even as pixels.
  $("id-photo").addEventListener("change", () => {
    const f = $("id-photo").files[0];
    $("id-picked").replaceChildren(
      f ? SG.bi(`已选择 ✓ ${SG.bytes(f.size)}`, "photo selected") : ""
    );
  });
  $("face-photo").addEventListener("change", () => setFacePreview($("face-photo").files[0]));
  $("back").addEventListener("click", showRound);
  $("done").addEventListener("click", showRound);
  $("refresh").addEventListener("click", showRound);
  $("sign-out").addEventListener("click", () => signOut(null));
  $("retry").addEventListener("click", () => openCheck(current));

  $("check-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const idPhoto = $("id-photo").files[0];
    const facePhoto = $("face-photo").files[0];
    if (!idPhoto || !facePhoto) {
      $("check-error").replaceChildren(
        SG.el("p", {}, SG.bi("请拍摄两张照片。", "Take both photos."))
      );
      (idPhoto ? $("face-photo") : $("id-photo")).focus();
      return;
    }
    $("submit-check").disabled = true;
    $("check-error").replaceChildren();
    SG.say($("status"), "正在上传照片…", "Uploading the photos…");
    const form = new FormData();
    form.append("id_photo", idPhoto, idPhoto.name || "id.jpg");
    form.append("face_photo", facePhoto, facePhoto.name || "face.jpg");
    const url = "/v1/deliveries/" + encodeURIComponent(current.order_id) + "/handover";
    const r = await SG.api("POST", url, { token: token(), form });
    if (!r.ok) {
      $("status").replaceChildren();
      if (r.status === 401) {
        signOut(r.code);
        return;
      }
      SG.showError($("check-error"), r.code, r.detail);
      $("submit-check").disabled = false;
      SG.focus($("check-error"));
      return;
    }
    await poll(r.body.status_url);
  });

  async function poll(statusUrl) {
    SG.say($("status"), "正在核验，请稍候…", "Checking, please wait…");
    for (;;) {
      const r = await SG.api("GET", statusUrl, { token: token() });
      if (r.ok && (r.body.result === "handed_over" || r.body.result === "refused")) {
        await showResult(r.body);
        return;
      }
      if (!r.ok && r.status >= 400 && r.status < 500) {
        $("status").replaceChildren();
        SG.showError($("check-error"), r.code, r.detail);
        $("submit-check").disabled = false;
        return;
      }
      await SG.sleep(POLL_MS);
    }
  }

  async function showResult(attempt) {
    const ok = attempt.result === "handed_over";
    const reasons = attempt.reasons.slice();
    let canRetry = !ok;
    if (!ok) {
      // After the last allowed failure the delivery locks: say so, and offer no retry.
      const r = await SG.api("GET", "/v1/deliveries", { token: token() });
      const d = r.ok ? r.body.find((x) => x.order_id === attempt.order_id) : null;
      if (d && !OPEN.includes(d.status)) {
        canRetry = false;
        if (d.status === "locked") reasons.push("handover.locked");
      }
    }
    const verdict = $("verdict");
    verdict.className = "verdict " + (ok ? "ok" : "bad");
    verdict.dataset.result = attempt.result;
    verdict.replaceChildren(
      SG.el("span", { class: "mark", "aria-hidden": "true", text: ok ? "✔" : "✘" }),
      SG.el("span", { class: "zh", text: ok ? "已交付" : "不能交付" }),
      SG.el("span", {
        class: "en",
        lang: "en",
        text: ok ? "Handed over" : "Refused: do not hand over",
      }),
      SG.el(
        "span",
        { class: "next" },
        ok
          ? SG.bi("SIM 卡已激活，请交给收件人。", "The SIM is active: give it to the recipient.")
          : SG.bi("原因如下。", "Why:")
      )
    );
    SG.reasonList($("reasons"), reasons);
    $("retry").hidden = !canRetry;
    $("status").replaceChildren();
    show("step-result", "h-result");
  }

  if (token()) showRound();
  else show("step-token", null);
})();
