/**
 * @sendwerk/elements: web components for a platform's Sendwerk pages. Importing this module
 * defines <sendwerk-connector-settings>, <sendwerk-domain-setup> and <sendwerk-message-log>.
 */
import { SendwerkConnectorSettings } from "./connector-settings.js";
import { SendwerkDomainSetup } from "./domain-setup.js";
import { SendwerkMessageLog } from "./message-log.js";

export { SendwerkElement, type FetchFunc, type Failure } from "./base.js";
export { SendwerkConnectorSettings, defaultPorts, securityForPort } from "./connector-settings.js";
export { SendwerkDomainSetup } from "./domain-setup.js";
export { SendwerkMessageLog } from "./message-log.js";
export { registerLocale, englishStrings, type Dictionary } from "./i18n.js";

const elements: [string, CustomElementConstructor][] = [
  ["sendwerk-connector-settings", SendwerkConnectorSettings],
  ["sendwerk-domain-setup", SendwerkDomainSetup],
  ["sendwerk-message-log", SendwerkMessageLog],
];
for (const [name, ctor] of elements) {
  // A page that loads the bundle twice keeps the first definition instead of throwing.
  if (!customElements.get(name)) customElements.define(name, ctor);
}

declare global {
  interface HTMLElementTagNameMap {
    "sendwerk-connector-settings": SendwerkConnectorSettings;
    "sendwerk-domain-setup": SendwerkDomainSetup;
    "sendwerk-message-log": SendwerkMessageLog;
  }
}
