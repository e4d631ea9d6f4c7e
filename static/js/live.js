/* Live updates over the WebSocket /ws/events/. The server sends each organization only its own events
   (marketplace.consumers). Every event is re-dispatched on the document as a DOM event named "live:<event>"
   (e.g. "live:usage.recorded", with the event as `detail`) for page scripts such as usage.js to follow.

   Besides that, two things happen here:
   - on "booking.status" the status badges of that booking are relabelled;
   - regions marked data-live-reload reload through htmx when an event they name arrives: the attribute holds
     event names separated by spaces (empty means "booking.status"), and htmx is sent the name with dots as dashes
     ("allocation.state" → hx-trigger="allocation-state"). data-live-booking="<id>" limits a region to one booking.

   Reconnects with a growing delay unless the server refused the person outright. */
(function () {
  "use strict";

  var REFUSED = { 4401: true, 4403: true };
  var DEFAULT_RELOAD = "booking.status";
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

  function reloadsOn(region) {
    var names = (region.getAttribute("data-live-reload") || "").trim();
    return (names || DEFAULT_RELOAD).split(/\s+/);
  }

  function reload(event) {
    if (typeof window.htmx === "undefined") {
      return;
    }
    document.querySelectorAll("[data-live-reload]").forEach(function (region) {
      if (reloadsOn(region).indexOf(event.event) === -1) {
        return;
      }
      var only = region.getAttribute("data-live-booking");
      if (!only || only === event.booking) {
        window.htmx.trigger(region, event.event.replace(/\./g, "-"), event);
      }
    });
  }

  function dispatch(event) {
    document.dispatchEvent(new CustomEvent("live:" + event.event, { detail: event }));
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
      if (!event || typeof event.event !== "string") {
        return;
      }
      if (event.event === "booking.status") {
        relabel(event);
      }
      reload(event);
      dispatch(event);
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
