// The dashboard card `custom:iotee-commands-card`: the last commands of one IoTee device or
// entity, live, with status chips, time, error and a retry button for failed ones.
//   type: custom:iotee-commands-card
//   entity: lock.front_door        # or  device: <HA device id or hardware id>
//   limit: 5                       # optional, 1-20
//   title: Front door commands     # optional
// Loaded on every dashboard by the integration (no resource to add); listed in the card picker.

const common = await import(new URL(`./iotee-common.js${new URL(import.meta.url).search}`, import.meta.url));
const { BASE_STYLE, RETRYABLE, esc, formatAgo, formatDuration, statusChip, targetLabel, tookMs } = common;

const DEFAULT_LIMIT = 5;

const STYLE = `
  ${BASE_STYLE}
  ha-card { display: block; padding: 0 0 8px; }
  .header { padding: 16px 16px 8px; font-size: 20px; font-weight: 400; }
  ul { list-style: none; margin: 0; padding: 0; }
  li { display: flex; align-items: center; gap: 12px; padding: 8px 16px; }
  .what { flex: 1; min-width: 0; }
  .what .line { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  .what .error-text { font-size: 13px; }
  .secondary { font-size: 13px; }
  .empty { padding: 8px 16px 12px; color: var(--secondary-text-color); }
  button { padding: 4px 12px; font-size: 13px; }
`;

class IoteeCommandsCard extends HTMLElement {
  static getConfigElement() {
    return document.createElement("iotee-commands-card-editor");
  }

  static getStubConfig(hass) {
    const entity = Object.values(hass?.entities || {}).find((e) => e.platform === "iotee" && e.device_id);
    return entity ? { device: entity.device_id, limit: DEFAULT_LIMIT } : { limit: DEFAULT_LIMIT };
  }

  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this._commands = [];
    this._error = "";
    // Set before this element was defined: hand own properties over to the setters.
    for (const name of ["hass"]) {
      if (Object.prototype.hasOwnProperty.call(this, name)) {
        const value = this[name];
        delete this[name];
        this[name] = value;
      }
    }
  }

  setConfig(config) {
    if (!config || (!config.device && !config.entity)) {
      throw new Error("Choose an IoTee device or entity for this card");
    }
    const limit = Number(config.limit ?? DEFAULT_LIMIT);
    if (!Number.isInteger(limit) || limit < 1 || limit > 20) {
      throw new Error("limit must be a whole number from 1 to 20");
    }
    const changed = JSON.stringify(config) !== JSON.stringify(this._config);
    this._config = { ...config, limit };
    if (changed && this._hass) this._restart();
    this._render();
  }

  set hass(hass) {
    const first = !this._hass;
    this._hass = hass;
    if (first && this.isConnected) this._restart();
    else this._render();
  }

  connectedCallback() {
    if (this._hass && this._config && !this._unsubscribe) this._restart();
  }

  disconnectedCallback() {
    this._stop();
  }

  getCardSize() {
    return 1 + Math.ceil((this._config?.limit ?? DEFAULT_LIMIT) * 0.75);
  }

  getGridOptions() {
    return { columns: 6, min_columns: 4, rows: "auto" };
  }

  _scope() {
    return this._config.entity ? { entity_id: this._config.entity } : { device: this._config.device };
  }

  _stop() {
    if (this._unsubscribe) {
      const unsubscribe = this._unsubscribe;
      this._unsubscribe = null;
      Promise.resolve(unsubscribe()).catch(() => {});
    }
    clearInterval(this._ticker);
  }

  async _restart() {
    this._stop();
    const generation = (this._generation = (this._generation || 0) + 1);
    const scope = this._scope();
    try {
      this._unsubscribe = await this._hass.connection.subscribeMessage((event) => {
        if (generation === this._generation) this._onEvent(event);
      }, { type: "iotee/commands/subscribe", ...scope });
      const page = await this._hass.callWS({
        type: "iotee/commands/list", ...scope, limit: this._config.limit,
      });
      if (generation !== this._generation) return;
      const live = new Map(this._commands.map((c) => [c.command_id, c]));
      this._commands = page.commands.map((c) => live.get(c.command_id) || c);
      this._error = "";
    } catch (err) {
      this._error = err.message || String(err);
    }
    this._ticker = setInterval(() => this._render(), 30000);
    this._render();
  }

  _onEvent(event) {
    if (event.purged) {
      this._restart();
      return;
    }
    if (event.deleted) {
      const gone = new Set(event.deleted);
      this._commands = this._commands.filter((c) => !gone.has(c.command_id));
    } else {
      const command = event.command;
      const index = this._commands.findIndex((c) => c.command_id === command.command_id);
      if (index >= 0) this._commands[index] = command;
      else if (event.old_status === null) this._commands.unshift(command);
      this._commands = this._commands.slice(0, this._config.limit);
    }
    this._render();
  }

  _title() {
    if (this._config.title) return this._config.title;
    const hass = this._hass;
    if (this._config.entity) {
      const state = hass?.states[this._config.entity];
      return state?.attributes.friendly_name || this._config.entity;
    }
    const device = hass?.devices?.[this._config.device];
    return device?.name_by_user || device?.name || "IoTee commands";
  }

  async _retry(commandId) {
    try {
      await this._hass.callWS({ type: "iotee/commands/retry", command_id: commandId });
    } catch (err) {
      this.dispatchEvent(new CustomEvent("hass-notification", {
        detail: { message: `Retry failed: ${err.message || err}` }, bubbles: true, composed: true,
      }));
    }
  }

  _render() {
    if (!this._config) return;
    const hass = this._hass;
    const canRetry = Boolean(hass?.user?.is_admin);
    const rows = this._commands.map((c) => {
      const took = tookMs(c);
      const what = `${c.command}${c.relay !== null && !this._config.entity ? ` · ${targetLabel(c)}` : ""}`;
      return `<li>
        ${statusChip(c.status)}
        <div class="what">
          <div class="line">${esc(what)} <span class="secondary">${esc(formatAgo(hass, c.created_at))}${took !== null ? ` · ${esc(formatDuration(took))}` : ""}</span></div>
          ${c.error ? `<div class="line error-text" title="${esc(c.error)}">${esc(c.error)}</div>` : ""}
        </div>
        ${canRetry && RETRYABLE.has(c.status) ? `<button data-id="${esc(c.command_id)}">Retry</button>` : ""}
      </li>`;
    }).join("");
    this.shadowRoot.innerHTML = `
      <style>${STYLE}</style>
      <ha-card>
        <div class="header">${esc(this._title())}</div>
        ${this._error ? `<div class="empty error-text">${esc(this._error)}</div>` : ""}
        ${rows ? `<ul>${rows}</ul>` : this._error ? "" : '<div class="empty">No commands yet</div>'}
      </ha-card>`;
    for (const button of this.shadowRoot.querySelectorAll("button[data-id]")) {
      button.addEventListener("click", () => this._retry(button.dataset.id));
    }
  }
}

const EDITOR_SCHEMA = [
  { name: "entity", selector: { entity: { filter: { integration: "iotee" } } } },
  { name: "device", selector: { device: { filter: { integration: "iotee" } } } },
  { name: "title", selector: { text: {} } },
  { name: "limit", selector: { number: { min: 1, max: 20, mode: "box" } } },
];
const EDITOR_LABELS = {
  entity: "Entity (or a device below)",
  device: "Device (instead of an entity)",
  title: "Title",
  limit: "Commands shown",
};

class IoteeCommandsCardEditor extends HTMLElement {
  setConfig(config) {
    this._config = config;
    this._render();
  }

  set hass(hass) {
    this._hass = hass;
    this._render();
  }

  _render() {
    if (!this._hass || !this._config) return;
    if (!this._form) {
      this._form = document.createElement("ha-form");
      this._form.computeLabel = (schema) => EDITOR_LABELS[schema.name] || schema.name;
      this._form.addEventListener("value-changed", (ev) => {
        const config = { ...ev.detail.value };
        for (const key of Object.keys(config)) if (config[key] === "" || config[key] === undefined) delete config[key];
        this.dispatchEvent(new CustomEvent("config-changed", {
          detail: { config }, bubbles: true, composed: true,
        }));
      });
      this.append(this._form);
    }
    this._form.hass = this._hass;
    this._form.schema = EDITOR_SCHEMA;
    this._form.data = this._config;
  }
}

if (!customElements.get("iotee-commands-card")) {
  customElements.define("iotee-commands-card", IoteeCommandsCard);
  customElements.define("iotee-commands-card-editor", IoteeCommandsCardEditor);
}
window.customCards = window.customCards || [];
if (!window.customCards.some((card) => card.type === "iotee-commands-card")) window.customCards.push({
  type: "iotee-commands-card",
  name: "IoTee commands",
  description: "The last commands of an IoTee device or entity, live, with a retry button.",
  preview: false,
});
