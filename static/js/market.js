/* The market's pages: countdowns to a booking's start or end, forms that must not be sent twice, and catalog
   searches whose URL carries only the filters that are set. Loaded only by the pages that use it. */
(function () {
  "use strict";

  // --- countdowns: <span data-countdown data-start="ISO" data-end="ISO"> -------------------------------------

  function labels() {
    var holder = document.getElementById("countdown-labels");
    var data = holder ? holder.dataset : {};
    return {
      startsIn: data.startsIn || "starts in {time}",
      endsIn: data.endsIn || "ends in {time}",
      ended: data.ended || "ended",
      days: data.days || "d"
    };
  }

  function pad(number) {
    return number < 10 ? "0" + number : String(number);
  }

  function duration(milliseconds, words) {
    var seconds = Math.max(0, Math.floor(milliseconds / 1000));
    var days = Math.floor(seconds / 86400);
    seconds -= days * 86400;
    var clock = pad(Math.floor(seconds / 3600)) + ":" + pad(Math.floor((seconds % 3600) / 60)) + ":" + pad(seconds % 60);
    return days > 0 ? days + words.days + " " + clock : clock;
  }

  function tick() {
    var words = labels();
    var now = Date.now();
    document.querySelectorAll("[data-countdown]").forEach(function (element) {
      var start = Date.parse(element.getAttribute("data-start"));
      var end = Date.parse(element.getAttribute("data-end"));
      if (isNaN(start) || isNaN(end)) {
        return;
      }
      var text;
      if (now < start) {
        text = words.startsIn.replace("{time}", duration(start - now, words));
      } else if (now < end) {
        text = words.endsIn.replace("{time}", duration(end - now, words));
      } else {
        text = words.ended;
      }
      if (element.textContent !== text) {
        element.textContent = text;
      }
    });
  }

  // --- forms sent once: <form data-once> (booking, cancelling) -----------------------------------------------

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-once") || event.defaultPrevented) {
      return;
    }
    if (form.dataset.sent === "true") {
      event.preventDefault();
      return;
    }
    form.dataset.sent = "true";
    form.querySelectorAll("button[type=submit]").forEach(function (button) {
      button.disabled = true;
    });
  });

  // --- catalog: leave empty filters out of the request, so the shared URL lists only what was chosen -----------

  document.addEventListener("htmx:configRequest", function (event) {
    var form = event.detail.elt;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-drop-empty")) {
      return;
    }
    new FormData(form).forEach(function (value, name) {
      if (value === "") {
        delete event.detail.parameters[name];
      }
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    window.setInterval(tick, 1000);
  });
})();
