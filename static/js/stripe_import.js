/* Live progress of a Stripe import on the Stripe reconciliation page, fed by live.js's DOM events.

   "live:stripe_import.progress" (one per committed page of balance transactions, then per page of payouts) writes
   the event's figures into the progress line <... data-stripe-progress data-template-transactions="…"
   data-template-payouts="…"> at once: the template for the event's phase, with __PAGES__, __IMPORTED__ and
   __PAYOUTS__ filled in. A page opened before the import started has no progress line yet: the live region
   (#stripe-body) is reloaded once to show it. The end of the import ("stripe_import.finished") reloads the region
   through live.js (data-live-reload), since the payouts and fees change with it. */
(function () {
  "use strict";

  var reloading = false;

  function fill(template, event) {
    return template
      .replace("__PAGES__", String(event.pages || 0))
      .replace("__IMPORTED__", String(event.imported || 0))
      .replace("__PAYOUTS__", String(event.payouts || 0));
  }

  function progress(domEvent) {
    var event = domEvent.detail || {};
    var line = document.querySelector("[data-stripe-progress]");
    if (!line || line.getAttribute("data-run") !== String(event.run)) {
      var region = document.getElementById("stripe-body");
      if (region && !reloading && typeof window.htmx !== "undefined") {
        reloading = true;
        window.htmx.trigger(region, "stripe_import-started", event);
        window.setTimeout(function () {
          reloading = false;
        }, 2000);
      }
      return;
    }
    var template = line.getAttribute(event.phase === "payouts" ? "data-template-payouts" : "data-template-transactions");
    var text = line.querySelector("[data-stripe-progress-text]");
    if (template && text) {
      text.textContent = fill(template, event);
    }
    line.setAttribute("data-pages", String(event.pages || 0));
    line.setAttribute("data-imported", String(event.imported || 0));
  }

  document.addEventListener("live:stripe_import.progress", progress);
})();
