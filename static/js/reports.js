/* Finance report charts: <canvas data-chart="aging|cash" data-source="<id of a json_script block>">. The block
   holds {"currency", "labels": [...], "datasets": [{"key", "label", "data": ["12.50", ...]}]}; amounts are
   decimal strings (never floats on the server), turned into numbers only to draw. */
(function () {
  "use strict";

  var AGING_COLORS = {
    current: "--bs-success",
    days_1_30: "--bs-info",
    days_31_60: "--bs-warning",
    days_61_90: "--bs-orange",
    over_90: "--bs-danger"
  };
  var CASH_COLORS = { invoiced: "--bs-primary", received: "--bs-success" };
  var FALLBACK = {
    "--bs-success": "#198754", "--bs-info": "#0dcaf0", "--bs-warning": "#ffc107", "--bs-orange": "#fd7e14",
    "--bs-danger": "#dc3545", "--bs-primary": "#0d6efd"
  };

  function color(style, name) {
    return style.getPropertyValue(name).trim() || FALLBACK[name];
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-source"));
    if (!source || typeof window.Chart === "undefined") {
      return;
    }
    var data = JSON.parse(source.textContent);
    var kind = canvas.getAttribute("data-chart");
    var stacked = kind === "aging";
    var colors = stacked ? AGING_COLORS : CASH_COLORS;
    var style = getComputedStyle(document.documentElement);
    var chart = new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: data.datasets.map(function (set) {
          return {
            label: set.label,
            data: set.data.map(Number),
            backgroundColor: color(style, colors[set.key]),
            stack: stacked ? "owed" : set.key
          };
        })
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          tooltip: {
            callbacks: {
              label: function (item) {
                return item.dataset.label + ": " + data.datasets[item.datasetIndex].data[item.dataIndex] + " " + data.currency;
              }
            }
          }
        },
        scales: {
          x: { stacked: stacked, ticks: { autoSkip: true, maxRotation: 45 } },
          y: { stacked: stacked, beginAtZero: true, title: { display: true, text: data.currency } }
        }
      }
    });
    canvas.chart = chart;
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll('canvas[data-chart="aging"], canvas[data-chart="cash"]').forEach(draw);
  });
})();
