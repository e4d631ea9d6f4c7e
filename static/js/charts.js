/* Availability charts: <canvas data-chart="availability" data-source="<id of a json_script block>">. The block
   holds {"devices", "slots": [ISO UTC starts], "booked": [...], "free": [...]}; labels come from data-label-*. */
(function () {
  "use strict";

  function slotLabel(iso) {
    // "2026-11-03T06:00Z" → "11-03 06:00": the page says the times are UTC.
    return iso.slice(5, 10) + " " + iso.slice(11, 16);
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-source"));
    if (!source || typeof window.Chart === "undefined") {
      return;
    }
    var data = JSON.parse(source.textContent);
    var style = getComputedStyle(document.documentElement);
    var booked = style.getPropertyValue("--bs-warning").trim() || "#ffc107";
    var free = style.getPropertyValue("--bs-success").trim() || "#198754";
    var chart = new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.slots.map(slotLabel),
        datasets: [
          { label: canvas.getAttribute("data-label-booked"), data: data.booked, backgroundColor: booked, stack: "devices" },
          { label: canvas.getAttribute("data-label-free"), data: data.free, backgroundColor: free, stack: "devices" }
        ]
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: true, ticks: { autoSkip: true, maxRotation: 0, autoSkipPadding: 12 } },
          y: { stacked: true, beginAtZero: true, suggestedMax: data.devices, ticks: { precision: 0 } }
        }
      }
    });
    canvas.chart = chart;
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll('canvas[data-chart="availability"]').forEach(draw);
  });
})();
