/* A voucher program's budget burn: <canvas data-chart="budget" data-source="<id of a json_script block>">.
   The block holds billing.selectors.vouchers.burn_chart: {"currency", "budget": "1000000.00",
   "points": [{"at": RFC 3339 UTC, "granted": "…", "redeemed": "…"}]}, cumulative amounts after each change.
   Both series are step lines (an amount holds until the next change); the budget is a flat dashed line.
   Labels come from data-label-redeemed, data-label-granted and data-label-budget. */
(function () {
  "use strict";

  function label(iso) {
    // "2026-11-03T06:00:00Z" → "2026-11-03 06:00": the page says the times are UTC.
    return iso.slice(0, 10) + " " + iso.slice(11, 16);
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-source"));
    if (!source || canvas.chart || typeof window.Chart === "undefined") {
      return;
    }
    var data;
    try {
      data = JSON.parse(source.textContent);
    } catch (error) {
      return;
    }
    var points = data.points || [];
    var budget = parseFloat(data.budget);
    var style = getComputedStyle(document.documentElement);
    var redeemed = style.getPropertyValue("--bs-danger").trim() || "#dc3545";
    var granted = style.getPropertyValue("--bs-primary").trim() || "#0d6efd";
    var ceiling = style.getPropertyValue("--bs-secondary").trim() || "#6c757d";
    canvas.chart = new window.Chart(canvas, {
      type: "line",
      data: {
        labels: points.map(function (point) {
          return label(point.at);
        }),
        datasets: [
          {
            label: canvas.getAttribute("data-label-redeemed") + " (" + data.currency + ")",
            data: points.map(function (point) {
              return parseFloat(point.redeemed);
            }),
            borderColor: redeemed,
            backgroundColor: redeemed,
            stepped: true,
            fill: false,
            pointRadius: points.length > 24 ? 0 : 3
          },
          {
            label: canvas.getAttribute("data-label-granted") + " (" + data.currency + ")",
            data: points.map(function (point) {
              return parseFloat(point.granted);
            }),
            borderColor: granted,
            backgroundColor: granted,
            stepped: true,
            pointRadius: points.length > 24 ? 0 : 3
          },
          {
            label: canvas.getAttribute("data-label-budget") + " (" + data.currency + ")",
            data: points.map(function () {
              return budget;
            }),
            borderColor: ceiling,
            backgroundColor: ceiling,
            borderDash: [6, 4],
            pointRadius: 0
          }
        ]
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { ticks: { autoSkip: true, maxRotation: 0, autoSkipPadding: 12 } },
          y: { beginAtZero: true, suggestedMax: budget }
        }
      }
    });
    canvas.setAttribute("data-points", String(points.length));
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll('canvas[data-chart="budget"]').forEach(draw);
  });
})();
