/* Live usage of bookings, fed by live.js's DOM events.

   - "live:usage.recorded": every element <... data-usage-for="<booking id>" data-usage-figure="device_hours|amount|
     records|last_end"> shows the event's figures at once (the booking page's "usage so far", the center's bookings
     table), and the element data-usage-empty-for="<id>" ("no usage reported yet") goes away. A usage chart of that
     booking then refetches its series from its data-url (once per burst of events) and redraws.
   - "live:usage.utilization": the element data-usage-now-for="<id>" shows its data-template with {percent} and
     {time} filled in.

   The chart: <canvas data-chart="usage" data-source="<id of a json_script block>" data-url="<usage.json URL>"
   data-booking="<id>">; the block holds the booking's usage.json answer. The canvas keeps its Chart instance as
   `canvas.chart` and the number of points drawn in data-points. */
(function () {
  "use strict";

  var REFETCH_DELAY = 750;
  var refetchTimers = {};

  function pad(number) {
    return number < 10 ? "0" + number : String(number);
  }

  function utc(iso) {
    var moment = new Date(iso);
    if (isNaN(moment.getTime())) {
      return null;
    }
    return {
      date: moment.getUTCFullYear() + "-" + pad(moment.getUTCMonth() + 1) + "-" + pad(moment.getUTCDate()),
      minutes: pad(moment.getUTCHours()) + ":" + pad(moment.getUTCMinutes()),
      seconds: pad(moment.getUTCHours()) + ":" + pad(moment.getUTCMinutes()) + ":" + pad(moment.getUTCSeconds())
    };
  }

  function each(selector, attribute, booking, callback) {
    document.querySelectorAll(selector).forEach(function (element) {
      if (element.getAttribute(attribute) === booking) {
        callback(element);
      }
    });
  }

  // --- usage so far ----------------------------------------------------------------------------------------

  function figureText(name, data) {
    if (name === "device_hours") {
      return data.device_hours;
    }
    if (name === "amount") {
      return data.amount + " " + data.currency;
    }
    if (name === "records") {
      return String(data.records);
    }
    if (name === "last_end") {
      var at = data.last_end ? utc(data.last_end) : null;
      return at ? at.date + " " + at.minutes + " UTC" : "—";
    }
    return null;
  }

  function showFigures(data) {
    if (!data || !data.booking || !data.records) {
      return; // nothing metered yet: the dashes stay
    }
    each("[data-usage-for]", "data-usage-for", data.booking, function (element) {
      var text = figureText(element.getAttribute("data-usage-figure"), data);
      if (text !== null && element.textContent !== text) {
        element.textContent = text;
      }
    });
    each("[data-usage-empty-for]", "data-usage-empty-for", data.booking, function (element) {
      element.hidden = true;
    });
  }

  // --- utilization now -------------------------------------------------------------------------------------

  function showUtilization(event) {
    var fraction = parseFloat(event.utilization);
    var at = utc(event.at);
    if (isNaN(fraction) || !at) {
      return;
    }
    var percent = Math.round(fraction * 100) + "%";
    each("[data-usage-now-for]", "data-usage-now-for", event.booking, function (element) {
      var template = element.getAttribute("data-template") || "{percent} {time}";
      element.textContent = template.replace("{percent}", percent).replace("{time}", at.seconds);
      element.setAttribute("data-utilization", event.utilization);
      element.hidden = false;
    });
  }

  // --- the chart -------------------------------------------------------------------------------------------

  function series(payload) {
    var points = (payload && payload.points) || [];
    return {
      labels: points.map(function (point) {
        var at = utc(point.start);
        return at ? at.date.slice(5) + " " + at.minutes : point.start;
      }),
      utilization: points.map(function (point) {
        return point.utilization === null ? null : Math.round(parseFloat(point.utilization) * 1000) / 10;
      }),
      cumulative: points.map(function (point) {
        return parseFloat(point.cumulative_device_hours);
      })
    };
  }

  function redraw(canvas, payload) {
    var data = series(payload);
    var chart = canvas.chart;
    chart.data.labels = data.labels;
    chart.data.datasets[0].data = data.utilization;
    chart.data.datasets[1].data = data.cumulative;
    chart.data.datasets[1].pointRadius = data.cumulative.length > 12 ? 0 : 3;
    chart.update("none");
    canvas.setAttribute("data-points", String(data.labels.length));
  }

  function draw(canvas) {
    if (canvas.chart || typeof window.Chart === "undefined") {
      return;
    }
    var source = document.getElementById(canvas.getAttribute("data-source"));
    var payload;
    try {
      payload = source ? JSON.parse(source.textContent) : { points: [] };
    } catch (error) {
      payload = { points: [] };
    }
    var data = series(payload);
    var style = getComputedStyle(document.documentElement);
    var bars = style.getPropertyValue("--bs-info").trim() || "#0dcaf0";
    var line = style.getPropertyValue("--bs-primary").trim() || "#0d6efd";
    canvas.chart = new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [
          {
            type: "bar",
            label: canvas.getAttribute("data-label-utilization"),
            data: data.utilization,
            backgroundColor: bars,
            yAxisID: "percent",
            order: 2
          },
          {
            type: "line",
            label: canvas.getAttribute("data-label-cumulative"),
            data: data.cumulative,
            borderColor: line,
            backgroundColor: line,
            // Points only while there are few: a single bucket would otherwise draw nothing at all.
            pointRadius: data.cumulative.length > 12 ? 0 : 3,
            tension: 0.1,
            yAxisID: "hours",
            order: 1
          }
        ]
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { ticks: { autoSkip: true, maxRotation: 0, autoSkipPadding: 12 } },
          percent: { type: "linear", position: "left", min: 0, max: 100 },
          hours: { type: "linear", position: "right", beginAtZero: true, grid: { drawOnChartArea: false } }
        }
      }
    });
    canvas.setAttribute("data-points", String(data.labels.length));
  }

  function refetch(canvas) {
    var url = canvas.getAttribute("data-url");
    if (!url) {
      return;
    }
    window
      .fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("usage " + response.status);
        }
        return response.json();
      })
      .then(function (payload) {
        showFigures(payload);
        if (canvas.chart) {
          redraw(canvas, payload);
        }
      })
      .catch(function () {
        // The figures from the event are shown already; the chart catches up with the next event or reload.
      });
  }

  function scheduleRefetch(booking) {
    each('canvas[data-chart="usage"]', "data-booking", booking, function (canvas) {
      window.clearTimeout(refetchTimers[booking]);
      refetchTimers[booking] = window.setTimeout(function () {
        refetch(canvas);
      }, REFETCH_DELAY);
    });
  }

  document.addEventListener("live:usage.recorded", function (event) {
    showFigures(event.detail);
    scheduleRefetch(event.detail.booking);
  });

  document.addEventListener("live:usage.utilization", function (event) {
    showUtilization(event.detail);
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll('canvas[data-chart="usage"]').forEach(draw);
  });
})();
