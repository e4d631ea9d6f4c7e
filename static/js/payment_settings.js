// Saving a card for autopay on the payment settings page: the server creates a SetupIntent (usage off_session);
// the browser confirms it with Stripe; then the server asks Stripe whether it succeeded and records the card
// (Stripe's setup_intent.succeeded webhook does the same, whichever comes first).
(function () {
  "use strict";
  if (typeof Stripe === "undefined") {
    return;
  }
  let stripe = null;
  let cardElement = null;
  let clientSecret = null;

  function part(id) {
    return document.getElementById(id);
  }

  function showError(message) {
    const errors = part("card-setup-errors");
    errors.textContent = message || "";
    errors.hidden = !message;
  }

  async function post(url, body) {
    const box = part("card-setup");
    const response = await fetch(url, {
      method: "POST",
      headers: { "X-CSRFToken": box.dataset.csrf, Accept: "application/json" },
      credentials: "same-origin",
      body: body,
    });
    const data = await response.json().catch(function () { return {}; });
    return { ok: response.ok, data: data };
  }

  async function start(button) {
    const box = part("card-setup");
    button.disabled = true;
    showError("");
    let answer = { ok: false, data: {} };
    try {
      answer = await post(box.dataset.setupUrl);
    } catch (error) {
      answer = { ok: false, data: {} };
    }
    if (!answer.ok || !answer.data.client_secret) {
      showError(answer.data.detail || box.dataset.genericError);
      button.disabled = false;
      return;
    }
    clientSecret = answer.data.client_secret;
    stripe = stripe || Stripe(box.dataset.publishableKey);
    cardElement = stripe.elements().create("card");
    cardElement.mount("#setup-element");
    button.hidden = true;
    part("card-setup-form").hidden = false;
  }

  async function confirm() {
    const box = part("card-setup");
    const submit = part("card-setup-submit");
    submit.disabled = true;
    showError("");
    const result = await stripe.confirmCardSetup(clientSecret, { payment_method: { card: cardElement } });
    if (result && result.error) {
      showError(result.error.message || box.dataset.genericError);
      submit.disabled = false;
      return;
    }
    const form = new FormData();
    form.append("setup_intent", result.setupIntent.id);
    const answer = await post(box.dataset.doneUrl, form);
    if (!answer.ok) {
      showError(answer.data.detail || box.dataset.genericError);
      submit.disabled = false;
      return;
    }
    window.location.reload();
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("#card-setup-start");
    if (button) {
      start(button);
    }
  });
  document.addEventListener("submit", function (event) {
    if (event.target.id === "card-setup-form") {
      event.preventDefault();
      if (cardElement) {
        confirm();
      }
    }
  });
})();
