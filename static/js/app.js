/* Our own browser code. Every script is a static file: the pages carry no inline script or event handler, so a
   Content-Security-Policy without 'unsafe-inline' can be turned on. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.content) {
      return meta.content;
    }
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // htmx requests carry Django's CSRF token in the header Django checks.
  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token) {
      event.detail.headers["X-CSRFToken"] = token;
    }
  });

  // Forms that destroy something ask first. Listening in the capture phase runs this before htmx's own handler,
  // so a cancelled confirmation stops both a normal submit and an htmx request.
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      var question = form instanceof HTMLFormElement ? form.getAttribute("data-confirm") : null;
      if (question && !window.confirm(question)) {
        event.preventDefault();
        event.stopPropagation();
      }
    },
    true
  );

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-http deployments have no clipboard API: fall back to selecting and copying.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (error) {
        ok = false;
      }
      document.body.removeChild(area);
      if (ok) {
        resolve();
      } else {
        reject(new Error("copy refused"));
      }
    });
  }

  // <button data-copy-target="element-id" data-copied-label="Copied">: copies that element's value or text.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy-target]") : null;
    if (!button) {
      return;
    }
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    if (!source) {
      return;
    }
    var text = "value" in source ? source.value : source.textContent;
    var original = button.textContent;
    copyText(text).then(
      function () {
        button.textContent = button.getAttribute("data-copied-label") || original;
        button.classList.add("btn-success");
        window.setTimeout(function () {
          button.textContent = original;
          button.classList.remove("btn-success");
        }, 2000);
      },
      function () {
        if (typeof source.select === "function") {
          source.select();
        }
      }
    );
  });
})();
