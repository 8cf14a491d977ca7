// hanode status page: keeps the server-rendered page current from the
// node's live stream (/v2/status/events). Every event carries the page's
// live part as HTML rendered by the server; this script swaps it in, keeps
// the ages counting between events, and reconnects when the stream is lost.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var conn = document.getElementById("conn");
  var updated = document.getElementById("updated");
  if (!live || !conn || !window.EventSource) {
    return;
  }
  var es = null;
  var shown = null; // the last fragment swapped in
  var got = Date.now(); // when the ages on the page were rendered, roughly
  var last = 0; // when the last event arrived
  var opened = 0; // when the current stream was opened
  var retries = 0;
  var staleMs = 15000; // three heartbeats

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }
  // age formats like page.go's fmtAge.
  function age(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + pad(s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h" + pad(Math.floor(s % 3600 / 60)) + "m";
    return Math.floor(s / 86400) + "d" + pad(Math.floor(s % 86400 / 3600)) + "h";
  }
  function tick() {
    var since = Date.now() - got;
    var els = live.querySelectorAll("[data-age]");
    for (var i = 0; i < els.length; i++) {
      els[i].textContent = age(Number(els[i].getAttribute("data-age")) + since);
    }
    if (last && updated) {
      updated.textContent = "updated " + age(Date.now() - last) + " ago";
    }
  }
  function mark(state, text) {
    conn.setAttribute("data-state", state);
    conn.textContent = text;
  }
  function open() {
    opened = Date.now();
    es = new EventSource("v2/status/events");
    es.addEventListener("status", function (e) {
      if (e.data !== shown) {
        live.innerHTML = e.data;
        shown = e.data;
        var v = document.getElementById("view");
        if (v && v.getAttribute("data-title")) {
          document.title = v.getAttribute("data-title");
        }
      }
      got = last = Date.now();
      retries = 0;
      mark("live", "live");
      tick();
    });
    es.onerror = function () {
      if (es.readyState === 2) { // closed for good (refused): try again later
        mark("lost", "offline, retrying");
        es = null;
        retries++;
        setTimeout(open, Math.min(30000, 2000 * retries));
      } else {
        mark("lost", "reconnecting");
      }
    };
  }
  open();
  setInterval(function () {
    tick();
    // A stream silent for three heartbeats is dead (the node froze, or a
    // proxy holds it): open a new one.
    if (es && Date.now() - Math.max(last, opened) > staleMs) {
      es.close();
      mark("lost", "reconnecting");
      open();
    }
  }, 1000);
})();
