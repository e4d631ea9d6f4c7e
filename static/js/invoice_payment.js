// Paying an invoice by card on its page with Stripe's Payment Element. The server creates (once) the
// PaymentIntent for what is still owed; the browser confirms it with Stripe; Stripe's webhook, not this script,
// tells the platform that the invoice is paid. Handlers are delegated from the document because the payment
// section reloads itself (htmx, live.js) when a payment arrives.
(function () {
  "use strict";
  if (typeof Stripe === "undefined") {
    return;
  }
  let stripe = null;
  let elements = null;

  function part(id) {
    return document.getElementById(id);
  }

  function showError(message) {
    const errors = part("card-errors");
    if (errors) {
      errors.textContent = message || "";
      errors.hidden = !message;
    }
  }

  async function start(button) {
    const box = part("card-payment");
    button.disabled = true;
    showError("");
    let body = {};
    let ok = false;
    try {
      const response = await fetch(box.dataset.intentUrl, {
        method: "POST",
        headers: { "X-CSRFToken": box.dataset.csrf, Accept: "application/json" },
        credentials: "same-origin",
      });
      body = await response.json().catch(function () { return {}; });
      ok = response.ok;
    } catch (error) {
      ok = false;
    }
    if (!ok || !body.client_secret) {
      showError(body.detail || box.dataset.genericError);
      button.disabled = false;
      return;
    }
    stripe = stripe || Stripe(box.dataset.publishableKey);
    elements = stripe.elements({ clientSecret: body.client_secret });
    elements.create("payment").mount("#payment-element");
    button.hidden = true;
    part("card-form").hidden = false;
  }

  async function confirm(form) {
    const box = part("card-payment");
    const submit = part("card-submit");
    submit.disabled = true;
    showError("");
    const result = await stripe.confirmPayment({
      elements: elements,
      confirmParams: { return_url: box.dataset.returnUrl.split("?")[0] },
    });
    // Only reached when the payment could not be confirmed (otherwise Stripe redirects to return_url).
    if (result && result.error) {
      showError(result.error.message || box.dataset.genericError);
      submit.disabled = false;
    }
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("#card-pay-start");
    if (button) {
      start(button);
    }
  });
  document.addEventListener("submit", function (event) {
    if (event.target.id === "card-form") {
      event.preventDefault();
      if (elements) {
        confirm(event.target);
      }
    }
  });
})();
