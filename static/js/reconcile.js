/* The reconciliation workbench: a long bank statement import's progress, live. The server sends
   "bank_statement.progress" events ({statement, phase: lines|matching|done|failed, done, total}) over the WebSocket
   that live.js keeps open; live.js re-dispatches them as "live:bank_statement.progress" DOM events, and this script
   moves the bar of that statement. When the import is done, "bank_statement.imported" reloads the page's live
   region (data-live-reload, handled by live.js), which shows the lines and their matches.

   Also: a <select data-autosubmit> submits its form when changed (the workbench's period picker). */
(function () {
  "use strict";

  var PHASES = {
    lines: "Storing lines",
    matching: "Matching",
    done: "Imported",
    failed: "Import failed: nothing was stored",
  };

  function labelOf(holder, event) {
    // The page gives each phase's words in the person's language; English is the fallback.
    var phase = holder.getAttribute("data-phase-" + event.phase) || PHASES[event.phase] || event.phase;
    if (event.phase === "failed") {
      return phase;
    }
    return phase + " " + event.done + " / " + event.total;
  }

  document.addEventListener("live:bank_statement.progress", function (dom) {
    var event = dom.detail || {};
    document.querySelectorAll("#import-progress").forEach(function (holder) {
      if (holder.getAttribute("data-statement") !== event.statement) {
        return;
      }
      var share = event.total ? Math.round((100 * event.done) / event.total) : 0;
      var bar = holder.querySelector(".progress-bar");
      var frame = holder.querySelector(".progress");
      var label = holder.querySelector("[data-testid='progress-label']");
      if (bar) {
        bar.style.width = share + "%";
        bar.classList.toggle("bg-danger", event.phase === "failed");
      }
      if (frame) {
        frame.setAttribute("aria-valuenow", String(share));
      }
      if (label) {
        label.textContent = labelOf(holder, event);
      }
      holder.setAttribute("data-phase", event.phase);
    });
  });

  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field instanceof HTMLSelectElement && field.hasAttribute("data-autosubmit") && field.form) {
      field.form.submit();
    }
  });
})();
