// The demo's glue: the key from the form goes to the elements' `token` property (direct mode).
const form = document.getElementById("setup");
const keyInput = document.getElementById("api-key");
const recipient = document.getElementById("recipient");
const lang = document.getElementById("lang");
const main = document.getElementById("elements");

keyInput.value = sessionStorage.getItem("sendwerk-demo-key") ?? "";
lang.value = sessionStorage.getItem("sendwerk-demo-lang") ?? "en";

function show() {
  const key = keyInput.value.trim();
  if (!key) return;
  sessionStorage.setItem("sendwerk-demo-key", key);
  sessionStorage.setItem("sendwerk-demo-lang", lang.value);
  document.documentElement.lang = lang.value;
  // Fresh elements, so they load with the new key and language.
  for (const card of main.querySelectorAll("[data-element]")) {
    const el = document.createElement(card.dataset.element);
    el.token = key;
    if (card.dataset.pageSize) el.setAttribute("page-size", card.dataset.pageSize);
    if (el.localName === "sendwerk-connector-settings") el.setAttribute("test-recipient", recipient.value);
    card.replaceChildren(el);
  }
  main.hidden = false;
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  show();
});
show();
