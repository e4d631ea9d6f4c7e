// Paying an invoice by card on its page with Stripe's Payment Element. The server creates (once) the
// PaymentIntent for what is still owed; the browser confirms it with Stripe; Stripe's webhook, not this script,
// tells the platform that the invoice is paid.
(function () {
  "use strict";
  const box = document.getElementById("card-payment");
  const start = document.getElementById("card-pay-start");
  if (!box || !start || typeof Stripe === "undefined") {
    return;
  }
  const form = document.getElementById("card-form");
  const submit = document.getElementById("card-submit");
  const errors = document.getElementById("card-errors");
  let stripe = null;
  let elements = null;

  function showError(message) {
    errors.textContent = message || "";
    errors.hidden = !message;
  }

  start.addEventListener("click", async function () {
    start.disabled = true;
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
      start.disabled = false;
      return;
    }
    stripe = Stripe(box.dataset.publishableKey);
    elements = stripe.elements({ clientSecret: body.client_secret });
    elements.create("payment").mount("#payment-element");
    start.hidden = true;
    form.hidden = false;
  });

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
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
  });
})();
