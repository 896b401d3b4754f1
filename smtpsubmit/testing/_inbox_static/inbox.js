// smtpsubmit web inbox: refresh the message list when the server announces a message.
// Plain JavaScript, no build step. The server sends Server-Sent Events on /api/events and
// renders (and escapes) the rows itself: this script only swaps them in.
"use strict";
(function () {
  const rows = document.getElementById("messages");
  if (!rows || !window.EventSource) {
    return;
  }
  async function refresh() {
    const response = await fetch(rows.dataset.rows, { cache: "no-store" });
    if (response.ok) {
      rows.innerHTML = await response.text();
    }
  }
  const events = new EventSource("/api/events");
  // "open" too: a message that arrived while (re)connecting is listed all the same.
  events.addEventListener("open", function () {
    document.body.dataset.live = "connected";
    refresh();
  });
  events.addEventListener("message", refresh);
  events.addEventListener("error", function () {
    document.body.dataset.live = "disconnected";
  });
})();
