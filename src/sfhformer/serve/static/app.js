// The page of `sfhformer serve`: plain JavaScript, no framework, no network beyond this server.
// API: see the server (sfhformer.serve.app). Every /api call sends the X-Token header when the
// page was opened with ?token=... (kept in sessionStorage for this tab, removed from the URL).
"use strict";

(() => {
  const TOKEN_KEY = "sfhformer-token";
  const POLL_MS = 300;
  const MAX_POLL_FAILURES = 20; // consecutive network failures while polling before giving up

  const $ = (sel, root = document) => root.querySelector(sel);

  let token = null;
  let models = [];
  let chosen = []; // the File objects to restore
  let resultCount = 0;
  const results = new Set();

  // ---- token -------------------------------------------------------------------------------

  function initToken() {
    let url;
    try {
      url = new URL(window.location.href);
    } catch (e) {
      return;
    }
    const fromUrl = url.searchParams.get("token");
    if (fromUrl !== null) {
      token = fromUrl || null;
      try {
        if (token) sessionStorage.setItem(TOKEN_KEY, token);
      } catch (e) { /* storage disabled: the token lives in this page only */ }
      url.searchParams.delete("token");
      const rest = url.searchParams.toString();
      history.replaceState(history.state, "", url.pathname + (rest ? "?" + rest : "") + url.hash);
    } else {
      try {
        token = sessionStorage.getItem(TOKEN_KEY);
      } catch (e) { token = null; }
    }
  }

  function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    if (token) headers.set("X-Token", token);
    return fetch(path, { ...options, headers, cache: "no-store", credentials: "same-origin" });
  }

  // ---- errors ------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, retryable = false) {
      super(message);
      this.retryable = retryable;
    }
  }

  function sentence(text) {
    text = String(text).trim().replace(/\s+/g, " ");
    if (!text) return text;
    text = text.charAt(0).toUpperCase() + text.slice(1);
    return /[.!?]$/.test(text) ? text : text + ".";
  }

  function describeDetail(detail) {
    if (detail == null) return "";
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail) && detail.length) { // FastAPI's validation errors
      const d = detail[0];
      if (d && typeof d === "object") {
        const where = Array.isArray(d.loc) ? d.loc.filter((x) => x !== "body").join(".") : "";
        return (where ? where + ": " : "") + (d.msg || JSON.stringify(d));
      }
      return String(d);
    }
    return typeof detail === "object" ? JSON.stringify(detail) : String(detail);
  }

  // One sentence that says what went wrong with a response that is not ok.
  async function responseError(res) {
    let detail = "";
    try {
      const body = await res.clone().json();
      detail = describeDetail(body && body.detail);
    } catch (e) {
      try {
        detail = (await res.text()).trim().slice(0, 300);
      } catch (e2) { detail = ""; }
    }
    detail = detail.replace(/[.\s]+$/, "");
    if (res.status === 503) {
      const after = parseInt(res.headers.get("Retry-After") || "", 10);
      const seconds = Number.isFinite(after) && after > 0 ? after : null;
      const what = !detail ? "The server is busy" : /busy/i.test(detail) ? sentence(detail).slice(0, -1)
        : `The server is busy (${detail})`;
      if (/retry|try again/i.test(what)) return new ApiError(what + (seconds ? ` (in ${seconds} s).` : "."), true);
      return new ApiError(`${what}; please retry ${seconds ? `in ${seconds} s` : "in a moment"}.`, true);
    }
    if (res.status === 401) {
      return new ApiError("This server needs its access token: open the address that `sfhformer serve` printed " +
        "(the one ending in ?token=...).");
    }
    if (detail) return new ApiError(sentence(detail), res.status >= 500);
    if (res.status === 413) return new ApiError("The file is too large for this server.");
    return new ApiError(`The server answered ${res.status}${res.statusText ? " " + res.statusText : ""}.`,
      res.status >= 500);
  }

  function messageOf(e) {
    if (e instanceof ApiError) return e.message;
    if (e instanceof TypeError) return "The server cannot be reached; is `sfhformer serve` still running?";
    return sentence(e && e.message ? e.message : String(e));
  }

  function showError(message) {
    const box = $("#error");
    box.textContent = message;
    box.hidden = false;
  }

  function clearError() {
    const box = $("#error");
    box.textContent = "";
    box.hidden = true;
  }

  // ---- models and options ------------------------------------------------------------------

  function modelLabel(m) {
    let text = m.label || m.id;
    const extra = [];
    if (m.task && !text.includes(m.task)) extra.push(m.task);
    if (m.preset && !text.includes(m.preset)) extra.push(m.preset);
    if (extra.length) text += ` (${extra.join(", ")})`;
    return text;
  }

  function currentModel() {
    const id = $("#model").value;
    return models.find((m) => m.id === id) || null;
  }

  function megapixels(n) {
    return (n / 1e6).toFixed(n < 1e6 ? 2 : 1) + " megapixels";
  }

  function applyDefaults() {
    const m = currentModel();
    if (!m) return;
    $("#tile").value = m.tile == null || m.tile === 0 ? "" : String(m.tile);
    $("#overlap").value = m.tile_overlap == null ? "" : String(m.tile_overlap);
    $("#ensemble").checked = Boolean(m.ensemble);
    const budget = m.max_pixels ? `, up to ${megapixels(m.max_pixels)} (larger images are tiled)` : "";
    $("#tile-hint").textContent = `Empty or 0: the whole image in one pass${budget}.` +
      (m.tile ? ` This model's default: ${m.tile} px tiles.` : "");
  }

  async function loadModels() {
    const select = $("#model");
    try {
      const res = await api("api/models");
      if (!res.ok) throw await responseError(res);
      const data = await res.json();
      models = Array.isArray(data.models) ? data.models : [];
      select.replaceChildren(...models.map((m) => new Option(modelLabel(m), m.id)));
      if (!models.length) {
        select.replaceChildren(new Option("No models on this server", ""));
        showError("The server has no models to offer.");
        return;
      }
      select.disabled = false;
      applyDefaults();
    } catch (e) {
      select.replaceChildren(new Option("Models could not be loaded", ""));
      showError(messageOf(e));
    }
  }

  async function loadHealth() {
    try {
      const res = await api("api/health");
      if (!res.ok) return;
      const h = await res.json();
      $("#server-status").textContent = `Running on ${h.device || "?"}` +
        (h.max_queue ? `; ${h.queued || 0} of ${h.max_queue} queue places taken` : "");
    } catch (e) { /* the models call reports an unreachable server */ }
  }

  function readInt(input, what) {
    const raw = input.value.trim();
    if (raw === "") return null;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0) throw new ApiError(`${what} must be a whole number of pixels, 0 or more.`);
    return n;
  }

  function readOptions() {
    const model = $("#model").value;
    if (!model) throw new ApiError("Choose a model first (none could be loaded from the server).");
    const tile = readInt($("#tile"), "The tile");
    const overlap = readInt($("#overlap"), "The tile overlap");
    return { model, tile: tile == null ? 0 : tile, overlap, ensemble: $("#ensemble").checked };
  }

  // ---- chosen files ------------------------------------------------------------------------

  function isImageFile(f) {
    return (f.type && f.type.startsWith("image/")) || /\.(png|jpe?g|tiff?|webp|bmp|gif|ppm|pgm)$/i.test(f.name);
  }

  function setChosen(files) {
    chosen = Array.from(files).filter(isImageFile);
    const list = $("#chosen");
    list.replaceChildren(...chosen.map((f) => {
      const li = document.createElement("li");
      li.textContent = `${f.name} (${(f.size / 1024).toFixed(f.size < 10240 ? 1 : 0)} KiB)`;
      return li;
    }));
    const skipped = files.length - chosen.length;
    if (skipped) showError(`${skipped} of the dropped files ${skipped === 1 ? "is" : "are"} not an image and ` +
      `${skipped === 1 ? "was" : "were"} left out.`);
  }

  function wireDrop() {
    const zone = $("#drop");
    const input = $("#file");
    input.addEventListener("change", () => { clearError(); setChosen(input.files); });
    ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (e) => {
      e.preventDefault();
      zone.classList.add("dragging");
    }));
    ["dragleave", "dragend"].forEach((type) => zone.addEventListener(type, (e) => {
      if (e.target === zone || !zone.contains(e.relatedTarget)) zone.classList.remove("dragging");
    }));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("dragging");
      clearError();
      const files = e.dataTransfer ? e.dataTransfer.files : null;
      if (!files || !files.length) return;
      try { input.files = files; } catch (err) { /* older browsers: keep our own list */ }
      setChosen(files);
    });
    // a file dropped next to the zone must not replace the page
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => e.preventDefault());
  }

  // ---- one result --------------------------------------------------------------------------

  function fmtPsnr(v) {
    return v == null ? "identical" : `${v.toFixed(2)} dB`;
  }

  function fmtSsim(v) {
    return v == null ? "n/a" : v.toFixed(4);
  }

  function stem(name) {
    const i = name.lastIndexOf(".");
    return i > 0 ? name.slice(0, i) : name;
  }

  class Result {
    constructor(file, options, clean) {
      this.file = file;
      this.options = options;
      this.clean = clean;
      this.id = null;
      this.job = null;
      this.timer = null;
      this.pollFailures = 0;
      this.blobUrls = [];
      this.spectrumLoaded = false;
      this.gone = false;
      this.n = ++resultCount;

      this.el = $("#result-template").content.firstElementChild.cloneNode(true);
      this.q = (sel) => this.el.querySelector(sel);
      this.q(".name").textContent = file.name;
      this.q(".progress").setAttribute("aria-label", `Progress of ${file.name}`);
      this.wireTabs();
      this.wireViewer();
      this.q(".download").addEventListener("click", () => this.download());
      this.q(".retry").addEventListener("click", () => this.submit());
      results.add(this);
    }

    // -- state --

    setState(state, count = "") {
      this.el.dataset.state = state;
      this.q(".state").textContent = state;
      this.q(".count").textContent = count;
    }

    update(job) {
      const p = job.progress || {};
      const done = Number(p.done) || 0;
      const total = Number(p.total) || 0;
      const bar = this.q(".progress");
      if (total > 0 && (job.state !== "queued" || done > 0)) {
        bar.max = total;
        bar.value = Math.min(done, total);
      } else {
        bar.removeAttribute("value"); // indeterminate while queued
      }
      this.setState(job.state, total > 0 && job.state === "running" ? `${done} of ${total}` : "");
    }

    fail(message, retryable) {
      this.stopPolling();
      this.setState("error");
      this.q(".count").textContent = message;
      const bar = this.q(".progress");
      bar.max = 1;
      bar.value = 0;
      this.q(".retry").hidden = !retryable;
      showError(`${this.file.name}: ${message}`);
    }

    stopPolling() {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
    }

    // -- the job --

    async submit() {
      this.stopPolling();
      this.q(".retry").hidden = true;
      this.q(".download").disabled = true;
      this.q(".progress").removeAttribute("value");
      this.setState("uploading");
      const o = this.options;
      const form = new FormData();
      form.append("image", this.file, this.file.name);
      if (this.clean) form.append("clean", this.clean, this.clean.name);
      form.append("model", o.model);
      form.append("tile", String(o.tile));
      if (o.overlap != null) form.append("tile_overlap", String(o.overlap));
      form.append("ensemble", o.ensemble ? "true" : "false");
      try {
        const res = await api("api/restore", { method: "POST", body: form });
        if (!res.ok) throw await responseError(res);
        const job = await res.json();
        this.id = job.id;
        this.el.dataset.job = job.id;
        this.setState(job.state || "queued");
        this.schedulePoll();
      } catch (e) {
        this.fail(messageOf(e), !(e instanceof ApiError) || e.retryable);
      }
    }

    schedulePoll() {
      if (!this.gone) this.timer = setTimeout(() => this.poll(), POLL_MS);
    }

    async poll() {
      this.timer = null;
      let res;
      try {
        res = await api(`api/jobs/${encodeURIComponent(this.id)}`);
      } catch (e) {
        if (++this.pollFailures >= MAX_POLL_FAILURES) this.fail(messageOf(e), false);
        else this.schedulePoll();
        return;
      }
      this.pollFailures = 0;
      if (!res.ok) {
        if (res.status === 404) {
          this.fail("This job is no longer on the server (it expired, or the server restarted).", true);
        } else {
          const e = await responseError(res);
          this.fail(e.message, e.retryable);
        }
        return;
      }
      const job = await res.json();
      if (this.gone) return;
      this.job = job;
      this.update(job);
      if (job.state === "done") this.finish(job);
      else if (job.state === "error") this.fail(sentence(job.error || "the restoration failed"), true);
      else this.schedulePoll();
    }

    async finish(job) {
      const bar = this.q(".progress");
      bar.max = 1;
      bar.value = 1;
      this.q(".count").textContent = job.width && job.height ? `${job.width} × ${job.height}` : "";
      this.q(".download").disabled = false;
      const m = job.metrics;
      if (m) {
        const metrics = this.q(".metrics");
        metrics.textContent = `PSNR ${fmtPsnr(m.psnr)}` +
          (m.input_psnr !== undefined ? ` (input ${fmtPsnr(m.input_psnr)})` : "") +
          `, SSIM ${fmtSsim(m.ssim)}` + (m.input_ssim !== undefined ? ` (input ${fmtSsim(m.input_ssim)})` : "") +
          " against the clean reference";
        metrics.hidden = false;
      }
      try {
        const base = `api/jobs/${encodeURIComponent(this.id)}/preview/`;
        const [before, after] = await Promise.all([this.blobUrl(base + "input"), this.blobUrl(base + "output")]);
        await Promise.all([this.show(this.q("img.before"), before), this.show(this.q("img.after"), after)]);
        this.el.classList.add("ready");
        this.applyZoom();
      } catch (e) {
        showError(`${this.file.name}: the preview could not be shown: ${messageOf(e)}`);
      }
    }

    async blobUrl(path) {
      const res = await api(path);
      if (!res.ok) throw await responseError(res);
      const url = URL.createObjectURL(await res.blob());
      this.blobUrls.push(url);
      return url;
    }

    show(img, url) {
      return new Promise((resolve, reject) => {
        img.onload = () => resolve();
        img.onerror = () => reject(new ApiError("the browser could not decode the image."));
        img.src = url;
      });
    }

    async download() {
      const button = this.q(".download");
      button.disabled = true;
      try {
        const res = await api(`api/jobs/${encodeURIComponent(this.id)}/result`);
        if (!res.ok) throw await responseError(res);
        const blob = await res.blob();
        let name = this.job && this.job.filename;
        if (!name) {
          const cd = res.headers.get("Content-Disposition") || "";
          const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
          name = match ? decodeURIComponent(match[1]) : `${stem(this.file.name)}_restored.png`;
        }
        const url = URL.createObjectURL(blob);
        const a = document.createElement("a");
        a.href = url;
        a.download = name;
        a.hidden = true;
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
      } catch (e) {
        showError(`${this.file.name}: the download failed: ${messageOf(e)}`);
      } finally {
        button.disabled = false;
      }
    }

    async loadSpectrum() {
      if (this.spectrumLoaded || !this.id) return;
      const status = this.q(".spectrum-status");
      if (!this.job || this.job.state !== "done") {
        status.textContent = "The spectra are drawn when the restoration is done.";
        return;
      }
      this.spectrumLoaded = true;
      status.textContent = "Drawing the spectra…";
      try {
        const url = await this.blobUrl(`api/jobs/${encodeURIComponent(this.id)}/spectrum`);
        await this.show(this.q("img.spectrum"), url);
        status.textContent = "";
      } catch (e) {
        this.spectrumLoaded = false;
        status.textContent = "";
        showError(`${this.file.name}: the spectra could not be shown: ${messageOf(e)}`);
      }
    }

    // -- tabs --

    wireTabs() {
      const tabs = [this.q(".tab-compare"), this.q(".tab-frequency")];
      const panels = [this.q(".panel-compare"), this.q(".panel-frequency")];
      tabs.forEach((tab, i) => {
        tab.id = `r${this.n}-tab-${i}`;
        panels[i].id = `r${this.n}-panel-${i}`;
        tab.setAttribute("aria-controls", panels[i].id);
        panels[i].setAttribute("aria-labelledby", tab.id);
        tab.addEventListener("click", () => this.selectTab(i));
        tab.addEventListener("keydown", (e) => {
          let j = null;
          if (e.key === "ArrowRight") j = (i + 1) % tabs.length;
          else if (e.key === "ArrowLeft") j = (i - 1 + tabs.length) % tabs.length;
          else if (e.key === "Home") j = 0;
          else if (e.key === "End") j = tabs.length - 1;
          if (j !== null) {
            e.preventDefault();
            this.selectTab(j);
            tabs[j].focus();
          }
        });
      });
      this.tabs = tabs;
      this.panels = panels;
    }

    selectTab(i) {
      this.tabs.forEach((tab, j) => {
        tab.setAttribute("aria-selected", String(i === j));
        tab.tabIndex = i === j ? 0 : -1;
        this.panels[j].hidden = i !== j;
      });
      if (this.tabs[i].classList.contains("tab-frequency")) this.loadSpectrum();
    }

    // -- before/after viewer --

    wireViewer() {
      const slider = this.q(".slider");
      const stage = this.q(".stage");
      const setPos = () => {
        stage.style.setProperty("--pos", `${slider.value}%`);
        slider.setAttribute("aria-valuetext", `${slider.value}% before, ${100 - slider.value}% after`);
      };
      slider.addEventListener("input", setPos);
      setPos();
      const zoom = this.q(".zoom");
      zoom.addEventListener("change", () => this.applyZoom());
      const step = (d) => {
        const i = Math.max(0, Math.min(zoom.options.length - 1, zoom.selectedIndex + d));
        if (i !== zoom.selectedIndex) {
          zoom.selectedIndex = i;
          this.applyZoom();
        }
      };
      this.q(".zoom-in").addEventListener("click", () => step(1));
      this.q(".zoom-out").addEventListener("click", () => step(-1));
      const toggle = this.q(".view-toggle");
      toggle.addEventListener("click", () => {
        const side = toggle.getAttribute("aria-pressed") !== "true";
        toggle.setAttribute("aria-pressed", String(side));
        toggle.textContent = side ? "Slider view" : "Side by side";
        stage.classList.toggle("side", side);
        this.q(".slider-label").hidden = side;
        this.applyZoom();
      });
      if (window.ResizeObserver) {
        let width = 0;
        new ResizeObserver(() => {
          const now = this.q(".viewer").clientWidth;
          if (now !== width) {
            width = now;
            this.applyZoom();
          }
        }).observe(this.q(".viewer"));
      }
    }

    // Fit: the largest size at which the image(s) fit the viewer's width and most of the
    // window's height; 100%, 200%, ...: that many screen pixels per image pixel (the viewer scrolls).
    applyZoom() {
      const zoom = this.q(".zoom");
      const stage = this.q(".stage");
      const viewer = this.q(".viewer");
      const img = this.q("img.before");
      const w = img.naturalWidth;
      const h = img.naturalHeight;
      this.q(".zoom-out").disabled = zoom.selectedIndex === 0;
      this.q(".zoom-in").disabled = zoom.selectedIndex === zoom.options.length - 1;
      if (!w || !h || !viewer.clientWidth) return; // not loaded yet, or in the hidden tab
      const fit = zoom.value === "fit";
      let scale;
      if (fit) {
        const side = stage.classList.contains("side");
        const gap = side ? parseFloat(getComputedStyle(stage).columnGap) || 0 : 0;
        const width = (viewer.clientWidth - gap) / (side ? 2 : 1);
        const height = Math.max(160, window.innerHeight * 0.55);
        scale = Math.min(width / w, height / h);
      } else {
        scale = Number(zoom.value); // in CSS pixels
      }
      stage.style.setProperty("--pane-w", `${Math.max(1, Math.floor(w * scale))}px`);
      stage.classList.toggle("zoomed", !fit);
      stage.classList.toggle("pixelated", scale >= 2);
    }

    remove() {
      this.gone = true;
      this.stopPolling();
      this.blobUrls.forEach((u) => URL.revokeObjectURL(u));
      this.el.remove();
      results.delete(this);
    }
  }

  // ---- the form ----------------------------------------------------------------------------

  async function onSubmit(e) {
    e.preventDefault();
    clearError();
    if (!chosen.length) {
      showError("Choose at least one image to restore first.");
      $("#file").focus();
      return;
    }
    let options;
    try {
      options = readOptions();
    } catch (err) {
      showError(messageOf(err));
      return;
    }
    const clean = $("#clean").files[0] || null;
    const button = $("#restore");
    button.disabled = true;
    const list = $("#results");
    const batch = chosen.map((file) => new Result(file, options, clean));
    batch.forEach((r) => list.append(r.el));
    $("#clear").hidden = false;
    try {
      for (const r of batch) await r.submit(); // uploads one at a time; the server queues the work
    } finally {
      button.disabled = false;
    }
  }

  function init() {
    initToken();
    wireDrop();
    $("#model").addEventListener("change", applyDefaults);
    $("#form").addEventListener("submit", onSubmit);
    $("#clear").addEventListener("click", () => {
      [...results].forEach((r) => r.remove());
      $("#clear").hidden = true;
      clearError();
    });
    loadModels();
    loadHealth();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
