// Video activation (R7): code -> camera -> challenge -> recording -> upload -> result.
// The camera is opened before the code is sent, so a refused camera costs no challenge.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const READY_S = 2; // the face at rest before the first action (a turn needs it)
  const ACTION_S = 3; // each action's countdown
  const TAIL_MS = 1000;
  const POLL_MS = 1000;
  const SLOW_MS = 60000;

  let stream = null;
  let challenge = null;
  let busy = false;

  function stopCamera() {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    $("preview").srcObject = null;
  }

  function cameraError(err) {
    const name = err && err.name;
    if (name === "NotAllowedError" || name === "SecurityError") return "camera.denied";
    if (name === "NotFoundError" || name === "OverconstrainedError") return "camera.missing";
    if (name === "NotReadableError" || name === "AbortError") return "camera.busy";
    return "camera.unsupported";
  }

  function openCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return Promise.reject({ name: "Unsupported" });
    }
    return navigator.mediaDevices.getUserMedia({
      audio: false,
      video: {
        facingMode: "user",
        width: { ideal: 640 },
        height: { ideal: 480 },
        frameRate: { ideal: 30, max: 30 },
      },
    });
  }

  // The API takes WebM or MP4 (Safari records MP4).
  function recorderType() {
    if (!window.MediaRecorder) return null;
    for (const t of ["video/webm;codecs=vp8", "video/webm;codecs=vp9", "video/webm", "video/mp4"]) {
      if (MediaRecorder.isTypeSupported(t)) return t;
    }
    return "";
  }

  function invalid(input, zh, en) {
    input.setAttribute("aria-invalid", "true");
    $("code-error").replaceChildren(SG.el("p", {}, SG.bi(zh, en)));
    input.focus();
  }

  function fail(code, detail) {
    SG.showError($("code-error"), code, detail);
    $("status").replaceChildren();
    $("start").disabled = false;
    SG.focus($("code-error"));
  }

  function renderActions(actions) {
    $("actions").replaceChildren(
      ...actions.map((a) => SG.el("li", { "data-action": a }, SG.label("actions", a)))
    );
  }

  function markAction(index) {
    Array.from($("actions").children).forEach((li, i) => {
      li.classList.toggle("done", i < index);
      if (i === index) li.setAttribute("aria-current", "step");
      else li.removeAttribute("aria-current");
    });
  }

  $("code-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const iccidInput = $("iccid");
    const codeInput = $("code");
    const iccid = iccidInput.value.replace(/\s+/g, "");
    const code = codeInput.value.trim();
    iccidInput.removeAttribute("aria-invalid");
    codeInput.removeAttribute("aria-invalid");
    $("code-error").replaceChildren();
    if (!/^\d{19,20}$/.test(iccid)) {
      invalid(iccidInput, "ICCID 应为 19-20 位数字。", "The ICCID is 19-20 digits.");
      return;
    }
    if (code.length < 4 || code.length > 16) {
      invalid(codeInput, "请填写卡套上的激活码。", "Enter the activation code from the SIM pack.");
      return;
    }
    $("start").disabled = true;
    SG.say($("status"), "正在打开摄像头…", "Opening the camera…");
    try {
      stream = await openCamera();
    } catch (err) {
      fail(cameraError(err));
      return;
    }
    if (recorderType() === null) {
      stopCamera();
      fail("recorder.unsupported");
      return;
    }
    $("preview").srcObject = stream;
    SG.say($("status"), "正在获取验证动作…", "Getting your challenge…");
    const r = await SG.api("POST", "/v1/activations", { json: { iccid, code } });
    if (!r.ok) {
      stopCamera();
      fail(r.code, r.detail);
      return;
    }
    challenge = r.body;
    renderActions(challenge.actions);
    $("step-code").hidden = true;
    $("step-video").hidden = false;
    $("record").hidden = false;
    $("record").disabled = false;
    SG.say(
      $("status"),
      "准备好后点“开始录制”。",
      "Press “Start recording” when you are ready."
    );
    SG.focus($("h-video"));
  });

  // The prompt: what to do now (announced) and a countdown (shown, not announced).
  function showPrompt(step, zh, en) {
    const count = SG.el("span", { class: "count", "aria-hidden": "true" });
    $("prompt").replaceChildren(
      step ? SG.el("span", { class: "step" }, step) : "",
      SG.el("span", { class: "do" }, SG.bi(zh, en)),
      count
    );
    $("prompt").hidden = false;
    return count;
  }

  async function countdown(seconds, count) {
    for (let s = seconds; s > 0; s--) {
      count.textContent = String(s);
      await SG.sleep(1000);
    }
  }

  async function runPrompts(actions) {
    await countdown(READY_S, showPrompt(null, "准备，请正对镜头", "Get ready: look at the camera"));
    const n = actions.length;
    for (let i = 0; i < n; i++) {
      markAction(i);
      const t = SG.data.actions[actions[i]] || { zh: actions[i], en: actions[i] };
      const step = SG.bi(`第 ${i + 1}/${n} 步`, `Step ${i + 1} of ${n}`);
      await countdown(ACTION_S, showPrompt(step, t.zh, t.en));
    }
    markAction(n);
    showPrompt(null, "保持不动", "Hold still");
    await SG.sleep(TAIL_MS);
  }

  $("record").addEventListener("click", async () => {
    if (busy || !stream || !challenge) return;
    busy = true;
    $("record").disabled = true;
    $("record").hidden = true;
    const type = recorderType();
    const opts = { videoBitsPerSecond: 1500000 };
    if (type) opts.mimeType = type;
    let recorder;
    try {
      recorder = new MediaRecorder(stream, opts);
    } catch (err) {
      finish(false, ["recorder.unsupported"]);
      return;
    }
    const chunks = [];
    recorder.ondataavailable = (e) => {
      if (e.data && e.data.size) chunks.push(e.data);
    };
    const stopped = new Promise((resolve) => {
      recorder.onstop = resolve;
    });
    recorder.start(500);
    $("rec").hidden = false;
    SG.say($("status"), "正在录制，请按提示做动作。", "Recording: do the actions shown.");
    await runPrompts(challenge.actions);
    recorder.stop();
    await stopped;
    $("rec").hidden = true;
    $("prompt").hidden = true;
    stopCamera();
    upload(new Blob(chunks, { type: recorder.mimeType || type || "video/webm" }));
  });

  function upload(blob) {
    $("upload").hidden = false;
    const bar = $("progress");
    bar.value = 0;
    SG.say($("status"), "正在上传视频…", "Uploading the video…");
    const form = new FormData();
    form.append("video", blob, blob.type.indexOf("mp4") >= 0 ? "activation.mp4" : "activation.webm");
    form.append("mirrored", "false"); // the preview is mirrored by CSS; the recording is not
    const xhr = new XMLHttpRequest();
    xhr.open("POST", challenge.upload_url);
    xhr.setRequestHeader("Authorization", "Bearer " + challenge.token);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      const pct = Math.round((e.loaded * 100) / e.total);
      bar.value = pct;
      $("progress-text").textContent = `${pct}% · ${SG.bytes(e.loaded)} / ${SG.bytes(e.total)}`;
    };
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch (err) {
        body = null;
      }
      if (xhr.status === 202) {
        bar.value = 100;
        $("progress-text").textContent = `100% · ${SG.bytes(blob.size)}`;
        poll();
      } else {
        finish(false, [(body && body.error) || "http.error"]);
      }
    };
    xhr.onerror = () => finish(false, ["network.error"]);
    xhr.send(form);
  }

  async function poll() {
    SG.say($("status"), "视频已上传，正在核验，请稍候…", "Uploaded. Checking, please wait…");
    const started = Date.now();
    let slowShown = false;
    for (;;) {
      const url = "/v1/activations/" + encodeURIComponent(challenge.challenge_id);
      const r = await SG.api("GET", url, { token: challenge.token });
      if (r.ok && r.body.result) {
        finish(r.body.result === "activated", r.body.reasons || []);
        return;
      }
      if (!r.ok && r.status >= 400 && r.status < 500) {
        finish(false, [r.code]);
        return;
      }
      if (!slowShown && Date.now() - started > SLOW_MS) {
        slowShown = true;
        SG.say(
          $("status"),
          "核验比平时慢，请保持本页打开。",
          "The check is taking longer than usual; keep this page open."
        );
      }
      await SG.sleep(POLL_MS);
    }
  }

  function finish(activated, reasons) {
    stopCamera();
    $("step-video").hidden = true;
    $("upload").hidden = true;
    const verdict = $("verdict");
    verdict.className = "verdict " + (activated ? "ok" : "bad");
    verdict.dataset.result = activated ? "activated" : "failed";
    verdict.replaceChildren(
      SG.el("span", { class: "mark", "aria-hidden": "true", text: activated ? "✔" : "✘" }),
      SG.el("span", { class: "zh", text: activated ? "SIM 卡已激活" : "未能激活" }),
      SG.el("span", {
        class: "en",
        lang: "en",
        text: activated ? "Your SIM card is active" : "Not activated",
      }),
      SG.el(
        "span",
        { class: "next" },
        activated
          ? SG.bi("重启手机后即可使用。", "Restart your phone to start using it.")
          : SG.bi("请看下面的原因和建议，然后重试。", "See why below, then try again.")
      )
    );
    SG.reasonList($("reasons"), activated ? [] : reasons);
    $("again").hidden = activated;
    $("step-result").hidden = false;
    $("status").replaceChildren();
    SG.focus($("h-result"));
  }

  $("again").addEventListener("click", () => {
    busy = false;
    challenge = null;
    $("step-result").hidden = true;
    $("verdict").removeAttribute("data-result");
    $("verdict").replaceChildren();
    $("reasons").replaceChildren();
    $("step-code").hidden = false;
    $("start").disabled = false;
    $("code-error").replaceChildren();
    $("actions").replaceChildren();
    $("progress").value = 0;
    $("progress-text").textContent = "";
    SG.focus($("h-code"));
  });
})();
