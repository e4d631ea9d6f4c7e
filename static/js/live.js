/* Live booking updates over the WebSocket /ws/events/. The server sends each organization only its own events
   (marketplace.consumers); on "booking.status" this script relabels the status badges of that booking and asks
   the regions marked data-live-reload to reload through htmx (optionally only for one booking:
   data-live-booking="<id>"). Reconnects with a growing delay unless the server refused the person outright. */
(function () {
  "use strict";

  var REFUSED = { 4401: true, 4403: true };
  var delay = 1000;

  function statusLabels() {
    var block = document.getElementById("booking-status-labels");
    try {
      return block ? JSON.parse(block.textContent) : {};
    } catch (error) {
      return {};
    }
  }

  function relabel(event) {
    var labels = statusLabels();
    document.querySelectorAll("[data-booking-id]").forEach(function (holder) {
      if (holder.getAttribute("data-booking-id") !== event.booking) {
        return;
      }
      var badge = holder.matches("[data-booking-status]") ? holder : holder.querySelector("[data-booking-status]");
      if (!badge) {
        return;
      }
      badge.classList.remove("booking-status-" + badge.getAttribute("data-booking-status"));
      badge.classList.add("booking-status-" + event.status);
      badge.setAttribute("data-booking-status", event.status);
      badge.textContent = labels[event.status] || event.status;
    });
  }

  function reload(event) {
    if (typeof window.htmx === "undefined") {
      return;
    }
    document.querySelectorAll("[data-live-reload]").forEach(function (region) {
      var only = region.getAttribute("data-live-booking");
      if (!only || only === event.booking) {
        window.htmx.trigger(region, "booking-status", event);
      }
    });
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + "/ws/events/");
    socket.addEventListener("open", function () {
      delay = 1000;
      document.documentElement.setAttribute("data-live", "connected");
    });
    socket.addEventListener("message", function (message) {
      var event;
      try {
        event = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      if (event && event.event === "booking.status") {
        relabel(event);
        reload(event);
      }
    });
    socket.addEventListener("close", function (closing) {
      document.documentElement.setAttribute("data-live", "disconnected");
      if (REFUSED[closing.code]) {
        return;
      }
      window.setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    });
  }

  document.addEventListener("DOMContentLoaded", connect);
})();
