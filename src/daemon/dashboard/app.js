// switchyard's dashboard: keeps the page's live part current from the daemon's
// server-sent events (the server renders it; this only swaps it in), and shows times
// relative to now. Served from the binary; no other script, no network but the daemon.
"use strict";

(function () {
  const root = document.getElementById("live");
  const conn = document.getElementById("conn");
  // The server's clock minus ours: times on the page are the server's.
  let skew = 0;

  function readSkew() {
    const stamp = root && root.querySelector("[data-now]");
    if (stamp) {
      const server = Date.parse(stamp.getAttribute("data-now"));
      if (!Number.isNaN(server)) skew = server - Date.now();
    }
  }

  function span(ms) {
    ms = Math.max(0, ms);
    if (ms < 1000) return ms + " ms";
    const s = Math.floor(ms / 1000);
    if (s < 60) return (ms / 1000).toFixed(1) + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + "m " + String(s % 60).padStart(2, "0") + "s";
    const h = Math.floor(m / 60);
    return h + "h " + String(m % 60).padStart(2, "0") + "m";
  }

  function roughly(ms) {
    const s = Math.round(Math.abs(ms) / 1000);
    if (s < 60) return s + "s";
    const m = Math.round(s / 60);
    if (m < 60) return m + "m";
    const h = Math.round(m / 60);
    if (h < 48) return h + "h";
    return Math.round(h / 24) + "d";
  }

  function tick() {
    const now = Date.now() + skew;
    document.querySelectorAll("[data-since]").forEach(function (el) {
      const since = Date.parse(el.getAttribute("data-since"));
      if (Number.isNaN(since)) return;
      if (el.tagName === "PROGRESS") {
        el.value = Math.min(now - since, Number(el.max));
        el.classList.toggle("over", now - since > Number(el.max));
      } else {
        el.textContent = span(now - since);
      }
    });
    document.querySelectorAll("time[data-ago]").forEach(function (el) {
      const at = Date.parse(el.getAttribute("datetime"));
      if (!Number.isNaN(at)) el.textContent = roughly(now - at) + " ago";
    });
    document.querySelectorAll("[data-until]").forEach(function (el) {
      const until = Date.parse(el.getAttribute("data-until"));
      if (Number.isNaN(until)) return;
      el.textContent = until > now ? "in " + roughly(until - now) : "now";
    });
  }

  // What someone is typing in a form of the live part survives the swap.
  function keyOf(el) {
    return (el.form ? el.form.getAttribute("action") : "") + "|" + el.name;
  }

  function swap(html) {
    const kept = {};
    let focused = null;
    root.querySelectorAll("input[name], select[name], textarea[name]").forEach(function (el) {
      if (el.type === "hidden") return;
      kept[keyOf(el)] = el.value;
      if (el === document.activeElement) focused = keyOf(el);
    });
    root.innerHTML = html;
    root.querySelectorAll("input[name], select[name], textarea[name]").forEach(function (el) {
      const key = keyOf(el);
      if (el.type !== "hidden" && key in kept) el.value = kept[key];
      if (key === focused) el.focus();
    });
    readSkew();
    tick();
  }

  function status(text, cls) {
    if (!conn) return;
    conn.textContent = text;
    conn.className = "conn " + cls;
  }

  readSkew();
  tick();
  setInterval(tick, 1000);

  if (root && root.dataset.live && window.EventSource) {
    const source = new EventSource(root.dataset.live);
    source.addEventListener("page", function (e) {
      swap(e.data);
      status("live", "ok");
    });
    source.addEventListener("open", function () {
      status("live", "ok");
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {
        status("disconnected: reload the page", "lost");
      } else {
        status("reconnecting…", "lost");
      }
    });
  }
})();
