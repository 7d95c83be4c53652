// The "IoTee" sidebar panel (administrators): a live table of commands with filters, paging,
// a details view with the timeline and retry chain, and retry / delete / purge / send.
// A plain web component; Home Assistant sets `hass`, `narrow`, `route` and `panel` on it.
// Talks to the integration only through its websocket API (iotee/commands/*, iotee/devices).

const common = await import(new URL(`./iotee-common.js${new URL(import.meta.url).search}`, import.meta.url));
const {
  BASE_STYLE, RETRYABLE, SOURCE_LABELS, STATUS_LABELS, esc, formatDateTime, formatDuration,
  formatTime, statusChip, targetLabel, tookMs,
} = common;

const PAGE = 50;
const RANGES = [
  ["", "Any time"],
  ["1h", "Last hour"],
  ["24h", "Last 24 hours"],
  ["7d", "Last 7 days"],
  ["30d", "Last 30 days"],
  ["custom", "Custom range"],
];
const RANGE_MS = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };

const STYLE = `
  ${BASE_STYLE}
  :host { display: block; min-height: 100vh; background: var(--primary-background-color); }
  .toolbar { display: flex; align-items: center; gap: 8px; height: var(--header-height, 56px);
    padding: 0 16px 0 4px; background: var(--app-header-background-color, var(--primary-color));
    color: var(--app-header-text-color, var(--text-primary-color, #fff));
    border-bottom: var(--app-header-border-bottom, none); box-sizing: border-box; }
  .toolbar .title { flex: 1; font-size: 20px; font-weight: 400; margin-left: 12px; }
  .toolbar button { color: inherit; border-color: currentColor; }
  .content { padding: 16px; max-width: 1400px; margin: 0 auto; }
  .filters { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin-bottom: 12px; }
  .filters input[type=search] { min-width: 200px; }
  .live { margin-left: auto; font-size: 13px; color: var(--secondary-text-color); }
  .live::before { content: "●"; color: var(--success-color, #43a047); margin-right: 4px; }
  .live.off::before { color: var(--disabled-text-color, #999); }
  ha-card, .card { display: block; background: var(--ha-card-background, var(--card-background-color, #fff));
    border-radius: var(--ha-card-border-radius, 12px); overflow: auto;
    border: 1px solid var(--ha-card-border-color, var(--divider-color, #e0e0e0)); }
  table { width: 100%; border-collapse: collapse; font-size: 14px; }
  th { text-align: left; font-weight: 500; color: var(--secondary-text-color); padding: 10px;
    border-bottom: 1px solid var(--divider-color); white-space: nowrap; }
  td { padding: 6px 10px; border-bottom: 1px solid var(--divider-color); vertical-align: middle; }
  td button { padding: 3px 12px; font-size: 13px; }
  tbody tr { cursor: pointer; }
  tbody tr:hover { background: var(--secondary-background-color, rgba(127,127,127,0.08)); }
  tr.fresh { animation: fresh 2s ease-out; }
  @keyframes fresh { from { background: rgba(3, 155, 229, 0.25); } to { background: transparent; } }
  td { white-space: nowrap; }
  td.error { color: var(--error-color); white-space: normal; min-width: 160px; }
  td.user { white-space: normal; }
  .empty, .more { padding: 24px; text-align: center; color: var(--secondary-text-color); }
  .more { padding: 12px; }
  dialog { border: none; border-radius: 16px; padding: 0; max-width: min(760px, 94vw); width: 100%;
    background: var(--card-background-color, #fff); color: var(--primary-text-color);
    box-shadow: 0 8px 32px rgba(0,0,0,0.4); }
  dialog::backdrop { background: rgba(0,0,0,0.5); }
  .dialog-head { display: flex; align-items: center; gap: 12px; padding: 20px 24px 8px; }
  .dialog-head h2 { flex: 1; margin: 0; font-size: 20px; font-weight: 400; }
  .dialog-body { padding: 8px 24px 16px; max-height: 70vh; overflow: auto; }
  .dialog-actions { display: flex; gap: 8px; justify-content: flex-end; padding: 12px 24px 20px;
    flex-wrap: wrap; }
  .dialog-actions .spacer { flex: 1; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: 6px 16px; margin: 0 0 16px; }
  dt { color: var(--secondary-text-color); }
  dd { margin: 0; word-break: break-all; }
  h3 { font-size: 15px; font-weight: 500; margin: 16px 0 8px; }
  ol.timeline { list-style: none; margin: 0; padding: 0 0 0 8px; }
  ol.timeline li { position: relative; padding: 0 0 14px 22px; border-left: 2px solid var(--divider-color); }
  ol.timeline li:last-child { border-left-color: transparent; }
  ol.timeline li::before { content: ""; position: absolute; left: -7px; top: 2px; width: 12px;
    height: 12px; border-radius: 50%; background: var(--info-color, #039be5); }
  ol.timeline li.status-completed::before { background: var(--success-color, #43a047); }
  ol.timeline li.status-failed::before { background: var(--error-color, #db4437); }
  ol.timeline li.status-timeout::before, ol.timeline li.late::before { background: var(--warning-color, #ffa600); }
  ol.timeline .at { color: var(--secondary-text-color); font-size: 13px; margin-left: 8px; }
  ul.chain { list-style: none; margin: 0; padding: 0; }
  ul.chain li { display: flex; gap: 12px; align-items: center; padding: 6px 8px; border-radius: 8px; cursor: pointer; }
  ul.chain li:hover { background: var(--secondary-background-color, rgba(127,127,127,0.08)); }
  ul.chain li.current { font-weight: 500; cursor: default; }
  .form { display: grid; grid-template-columns: max-content 1fr; gap: 12px 16px; align-items: center; }
  .notice { padding: 12px 16px; border-radius: 8px; background: var(--secondary-background-color); margin-bottom: 12px; }
`;

function sinceFor(range) {
  return RANGE_MS[range] ? new Date(Date.now() - RANGE_MS[range]).toISOString() : undefined;
}

class IoteePanel extends HTMLElement {
  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this._filters = { device: "", relay: "", status: "", source: "", range: "", from: "", to: "", search: "" };
    this._rows = [];
    this._next = null;
    this._devices = [];
    this._users = {};
    this._fresh = new Set();
    this._unsubscribe = null;
    this._generation = 0;
    this._detail = null;
    // Home Assistant may have set these before this element was defined: own properties then
    // hide the setters below, so hand them over.
    for (const name of ["narrow", "route", "panel", "hass"]) {
      if (Object.prototype.hasOwnProperty.call(this, name)) {
        const value = this[name];
        delete this[name];
        this[name] = value;
      }
    }
  }

  set hass(hass) {
    const first = !this._hass;
    this._hass = hass;
    if (first) {
      this._render();
      this._start();
    } else if (this._menu) {
      this._menu.hass = hass;
    }
  }

  get hass() {
    return this._hass;
  }

  set narrow(narrow) {
    this._narrow = narrow;
    if (this._menu) this._menu.narrow = narrow;
  }

  connectedCallback() {
    if (this._hass && !this._unsubscribe) this._refresh();
  }

  disconnectedCallback() {
    this._stopLive();
  }

  async _start() {
    try {
      const [devices, users] = await Promise.all([
        this._hass.callWS({ type: "iotee/devices" }),
        this._hass.callWS({ type: "config/auth/list" }).catch(() => []),
      ]);
      this._devices = devices.devices;
      for (const user of users) this._users[user.id] = user.name;
    } catch (err) {
      this._showNotice(err.message || String(err));
    }
    this._renderFilters();
    this._refresh();
  }

  // ---- querying ---------------------------------------------------------------------------

  _query() {
    const f = this._filters;
    const query = {};
    if (f.device) query.device = f.device;
    if (f.relay === "lock" || f.relay === "reboot") query.target = f.relay;
    else if (f.relay) query.relay = Number(f.relay);
    if (f.status) query.status = f.status;
    if (f.source) query.source = f.source;
    if (f.range === "custom") {
      if (f.from) query.since = new Date(f.from).toISOString();
      if (f.to) query.until = new Date(f.to).toISOString();
    } else if (f.range) {
      query.since = sinceFor(f.range);
    }
    if (f.search.trim()) query.command_id = f.search.trim();
    return query;
  }

  async _refresh() {
    const generation = ++this._generation;
    this._stopLive();
    const query = this._query();
    this._pendingEvents = [];
    this._loading = true;
    this._setLive(false);
    try {
      this._unsubscribe = await this._hass.connection.subscribeMessage(
        (event) => this._onEvent(event, generation),
        { type: "iotee/commands/subscribe", ...query },
      );
      const page = await this._hass.callWS({ type: "iotee/commands/list", ...query, limit: PAGE });
      if (generation !== this._generation) return;
      this._rows = page.commands;
      this._next = page.next;
      this._loading = false;
      for (const event of this._pendingEvents) this._apply(event);
      this._pendingEvents = [];
      this._setLive(true);
      this._showNotice("");
    } catch (err) {
      if (generation !== this._generation) return;
      this._loading = false;
      this._rows = [];
      this._next = null;
      this._showNotice(err.message || String(err));
    }
    this._renderRows();
  }

  async _loadMore() {
    if (!this._next) return;
    const generation = this._generation;
    const page = await this._hass.callWS({
      type: "iotee/commands/list", ...this._query(), limit: PAGE, before: this._next,
    });
    if (generation !== this._generation) return;
    const known = new Set(this._rows.map((row) => row.command_id));
    this._rows.push(...page.commands.filter((row) => !known.has(row.command_id)));
    this._next = page.next;
    this._renderRows();
  }

  _stopLive() {
    if (this._unsubscribe) {
      const unsubscribe = this._unsubscribe;
      this._unsubscribe = null;
      Promise.resolve(unsubscribe()).catch(() => {});
    }
  }

  _onEvent(event, generation) {
    if (generation !== this._generation) return;
    if (this._loading) {
      this._pendingEvents.push(event);
      return;
    }
    this._apply(event);
    this._renderRows();
  }

  _apply(event) {
    if (event.purged) {
      this._refresh();
      return;
    }
    if (event.deleted) {
      const gone = new Set(event.deleted);
      this._rows = this._rows.filter((row) => !gone.has(row.command_id));
      return;
    }
    const command = event.command;
    const index = this._rows.findIndex((row) => row.command_id === command.command_id);
    if (index >= 0) {
      this._rows[index] = command;
    } else if (event.old_status === null) {
      this._rows.unshift(command);
      this._fresh.add(command.command_id);
    }
    const detail = this._detail;
    if (detail && detail.chain.some((item) => item.command_id === command.command_id)) {
      this._openDetail(detail.command.command_id, false);
    } else if (detail && command.retry_of && detail.chain.some((item) => item.command_id === command.retry_of)) {
      this._openDetail(detail.command.command_id, false);
    }
  }

  // ---- actions ----------------------------------------------------------------------------

  async _retry(commandId) {
    try {
      const retry = await this._hass.callWS({ type: "iotee/commands/retry", command_id: commandId });
      this._toast(`Retrying ${retry.command} (${retry.device_name || retry.hardware_id}) as ${retry.command_id}`);
      return retry;
    } catch (err) {
      this._toast(`Retry failed: ${err.message || err}`);
      return null;
    }
  }

  async _delete(commandId) {
    try {
      await this._hass.callWS({ type: "iotee/commands/delete", command_id: commandId });
      this._rows = this._rows.filter((row) => row.command_id !== commandId);
      this._renderRows();
      this._closeDialog();
      this._toast("Command deleted");
    } catch (err) {
      this._toast(`Delete failed: ${err.message || err}`);
    }
  }

  _toast(message) {
    this.dispatchEvent(new CustomEvent("hass-notification", {
      detail: { message }, bubbles: true, composed: true,
    }));
  }

  // ---- rendering --------------------------------------------------------------------------

  _render() {
    this.shadowRoot.innerHTML = `
      <style>${STYLE}</style>
      <div class="toolbar">
        <span class="menu"></span>
        <div class="title">IoTee commands</div>
        <button data-action="send">Send command</button>
        <button data-action="purge">Purge…</button>
      </div>
      <div class="content">
        <div class="notice" hidden></div>
        <div class="filters"></div>
        <div class="card"><table>
          <thead><tr>
            <th>When</th><th>Device · target</th><th>Command</th><th>Status</th>
            <th>Took</th><th>Source</th><th>User</th><th>Error</th><th></th>
          </tr></thead>
          <tbody></tbody>
        </table><div class="more"></div></div>
      </div>
      <dialog></dialog>`;
    if (customElements.get("ha-menu-button")) {
      this._menu = document.createElement("ha-menu-button");
      this._menu.hass = this._hass;
      this._menu.narrow = this._narrow;
      this.shadowRoot.querySelector(".menu").append(this._menu);
    }
    this.shadowRoot.addEventListener("click", (ev) => this._onClick(ev));
    this.shadowRoot.addEventListener("change", (ev) => this._onChange(ev));
    this.shadowRoot.addEventListener("input", (ev) => this._onInput(ev));
    this._renderFilters();
    this._renderRows();
  }

  _showNotice(text) {
    const notice = this.shadowRoot.querySelector(".notice");
    if (!notice) return;
    notice.hidden = !text;
    notice.textContent = text;
  }

  _setLive(live) {
    const badge = this.shadowRoot.querySelector(".live");
    if (badge) {
      badge.classList.toggle("off", !live);
      badge.textContent = live ? "Live" : "Connecting…";
    }
  }

  _device(hardwareId) {
    return this._devices.find((device) => device.hardware_id === hardwareId);
  }

  _renderFilters() {
    const f = this._filters;
    const option = (value, label, selected) =>
      `<option value="${esc(value)}"${selected === value ? " selected" : ""}>${esc(label)}</option>`;
    const device = this._device(f.device);
    const targets = [["", "Any target"]];
    if (device) {
      for (let relay = 1; relay <= device.relays; relay += 1) targets.push([String(relay), `Relay ${relay}`]);
      if (device.commands.some((c) => c.kind === "lock")) targets.push(["lock", "Lock"]);
      if (device.commands.some((c) => c.kind === "reboot")) targets.push(["reboot", "Restart"]);
    } else {
      const most = Math.max(0, ...this._devices.map((d) => d.relays));
      for (let relay = 1; relay <= most; relay += 1) targets.push([String(relay), `Relay ${relay}`]);
    }
    this.shadowRoot.querySelector(".filters").innerHTML = `
      <select name="device" aria-label="Device">${option("", "All devices", f.device)}
        ${this._devices.map((d) => option(d.hardware_id, d.name, f.device)).join("")}</select>
      <select name="relay" aria-label="Target">${targets.map(([v, l]) => option(v, l, f.relay)).join("")}</select>
      <select name="status" aria-label="Status">${option("", "Any status", f.status)}
        ${Object.entries(STATUS_LABELS).map(([v, l]) => option(v, l, f.status)).join("")}</select>
      <select name="source" aria-label="Source">${option("", "Any source", f.source)}
        ${Object.entries(SOURCE_LABELS).map(([v, l]) => option(v, l, f.source)).join("")}</select>
      <select name="range" aria-label="Time range">${RANGES.map(([v, l]) => option(v, l, f.range)).join("")}</select>
      ${f.range === "custom" ? `
        <input type="datetime-local" name="from" aria-label="From" value="${esc(f.from)}">
        <input type="datetime-local" name="to" aria-label="To" value="${esc(f.to)}">` : ""}
      <input type="search" name="search" aria-label="Command id" placeholder="Search command id" value="${esc(f.search)}">
      <span class="live off">Connecting…</span>`;
  }

  _userLabel(row) {
    if (row.user_id) return this._users[row.user_id] || "A user";
    if (row.api_key_id) return `API key ${row.api_key_id}`;
    return "—";
  }

  _renderRows() {
    const body = this.shadowRoot.querySelector("tbody");
    if (!body) return;
    const hass = this._hass;
    body.innerHTML = this._rows.map((row) => `
      <tr data-id="${esc(row.command_id)}" class="${this._fresh.has(row.command_id) ? "fresh" : ""}">
        <td class="when">${esc(formatDateTime(hass, row.created_at, false))}</td>
        <td>${esc(row.device_name || row.hardware_id)} <span class="secondary">· ${esc(targetLabel(row))}</span></td>
        <td>${esc(row.command)}${row.retry_of ? ' <span class="secondary">(retry)</span>' : ""}</td>
        <td>${statusChip(row.status)}</td>
        <td>${esc(formatDuration(tookMs(row)))}</td>
        <td>${esc(SOURCE_LABELS[row.source] || row.source)}</td>
        <td class="user">${esc(this._userLabel(row))}</td>
        <td class="error">${esc(row.error || "")}</td>
        <td>${RETRYABLE.has(row.status) ? `<button data-action="retry" data-id="${esc(row.command_id)}">Retry</button>` : ""}</td>
      </tr>`).join("");
    this._fresh.clear();
    const more = this.shadowRoot.querySelector(".more");
    if (this._loading) more.textContent = "Loading…";
    else if (!this._rows.length) more.textContent = "No commands match these filters.";
    else if (this._next) more.innerHTML = '<button data-action="more">Load more</button>';
    else more.textContent = `${this._rows.length} command${this._rows.length === 1 ? "" : "s"}`;
  }

  // ---- events -----------------------------------------------------------------------------

  _onChange(ev) {
    const name = ev.target.name;
    if (!(name in this._filters) || name === "search") return;
    this._filters[name] = ev.target.value;
    if (name === "device") this._filters.relay = "";
    if (name === "device" || name === "range") this._renderFilters();
    this._refresh();
  }

  _onInput(ev) {
    if (ev.target.name !== "search") return;
    this._filters.search = ev.target.value;
    clearTimeout(this._searchTimer);
    this._searchTimer = setTimeout(() => this._refresh(), 300);
  }

  _onClick(ev) {
    const action = ev.composedPath().find((el) => el.dataset?.action)?.dataset.action;
    const target = ev.composedPath().find((el) => el.dataset?.id);
    if (action === "retry") {
      ev.stopPropagation();
      this._retry(target.dataset.id);
    } else if (action === "more") {
      this._loadMore();
    } else if (action === "send") {
      this._openSend();
    } else if (action === "purge") {
      this._openPurge();
    } else if (action) {
      this._onDialogAction(action, target);
    } else if (target && target.tagName === "TR") {
      this._openDetail(target.dataset.id, true);
    }
  }

  _onDialogAction(action, target) {
    const id = target?.dataset.id;
    if (action === "close") this._closeDialog();
    else if (action === "open") this._openDetail(id, false);
    else if (action === "detail-retry") this._retry(id);
    else if (action === "delete") {
      const button = this.shadowRoot.querySelector('[data-action="delete"]');
      button.dataset.action = "delete-confirm";
      button.textContent = "Delete for good";
      button.classList.add("primary");
    } else if (action === "delete-confirm") this._delete(id);
    else if (action === "purge-confirm") this._purge();
    else if (action === "send-confirm") this._send();
  }

  // ---- dialogs ----------------------------------------------------------------------------

  _dialog(html) {
    const dialog = this.shadowRoot.querySelector("dialog");
    dialog.innerHTML = html;
    if (!dialog.open) dialog.showModal();
    dialog.onclose = () => {
      this._detail = null;
    };
    return dialog;
  }

  _closeDialog() {
    const dialog = this.shadowRoot.querySelector("dialog");
    this._detail = null;
    if (dialog.open) dialog.close();
  }

  async _openDetail(commandId, open) {
    let got;
    try {
      got = await this._hass.callWS({ type: "iotee/commands/get", command_id: commandId });
    } catch (err) {
      this._toast(err.message || String(err));
      return;
    }
    const dialog = this.shadowRoot.querySelector("dialog");
    if (!open && !dialog.open) return;
    this._detail = got;
    this._dialog(this._detailHtml(got));
  }

  _detailHtml({ command, chain }) {
    const hass = this._hass;
    const created = new Date(command.created_at).getTime();
    const offset = (iso) => `+${formatDuration(new Date(iso).getTime() - created)}`;
    const timeoutS = (new Date(command.deadline).getTime() - created) / 1000;
    const steps = command.history.map((step, index) => `
      <li class="status-${esc(step.status)}">${esc(STATUS_LABELS[step.status] || step.status)}
        <span class="at">${esc(formatTime(hass, step.at))}${index ? ` · ${esc(offset(step.at))}` : ""}</span>
        ${index === command.history.length - 1 && command.error ? `<div class="error-text">${esc(command.error)}</div>` : ""}
      </li>`);
    if (command.late_confirmation) {
      steps.push(`<li class="late">Late confirmation
        <span class="at">${esc(formatTime(hass, command.late_confirmation_at))} · ${esc(offset(command.late_confirmation_at))}</span>
        <div class="mono">${esc(command.late_confirmation)}</div></li>`);
    }
    const field = (label, value, cls = "") => (value === null || value === undefined || value === ""
      ? "" : `<dt>${esc(label)}</dt><dd class="${cls}">${esc(value)}</dd>`);
    const chainHtml = chain.length > 1 ? `
      <h3>Retry chain</h3>
      <ul class="chain">${chain.map((item) => `
        <li data-action="open" data-id="${esc(item.command_id)}" class="${item.command_id === command.command_id ? "current" : ""}">
          ${statusChip(item.status)}
          <span>${esc(formatDateTime(hass, item.created_at))}</span>
          <span class="mono">${esc(item.command_id)}</span>
          <span class="secondary">${item.command_id === command.command_id ? "this command" : item.retry_of ? "retry" : "original"}</span>
        </li>`).join("")}</ul>` : "";
    return `
      <div class="dialog-head">
        <h2>${esc(command.device_name || command.hardware_id)} · ${esc(targetLabel(command))} · ${esc(command.command)}</h2>
        ${statusChip(command.status)}
      </div>
      <div class="dialog-body">
        <dl>
          ${field("Command id", command.command_id, "mono")}
          ${field("Device", `${command.device_name || ""} (${command.hardware_id})`)}
          ${field("Created", formatDateTime(hass, command.created_at))}
          ${field("Timeout", `${timeoutS} s (deadline ${formatTime(hass, command.deadline)})`)}
          ${field("Source", SOURCE_LABELS[command.source] || command.source)}
          ${field("User", this._userLabel(command) === "—" ? "" : this._userLabel(command))}
          ${field("Topic", command.topic, "mono")}
          ${field("Payload", command.payload, "mono")}
          ${Object.keys(command.params || {}).length ? field("Params", JSON.stringify(command.params), "mono") : ""}
          ${field("Error code", command.error_code, "mono")}
          ${field("Error", command.error)}
          ${field("Retry of", command.retry_of, "mono")}
        </dl>
        <h3>Timeline</h3>
        <ol class="timeline">${steps.join("")}</ol>
        ${chainHtml}
      </div>
      <div class="dialog-actions">
        <button class="danger" data-action="delete" data-id="${esc(command.command_id)}">Delete</button>
        <span class="spacer"></span>
        ${RETRYABLE.has(command.status) ? `<button class="primary" data-action="detail-retry" data-id="${esc(command.command_id)}">Retry</button>` : ""}
        <button data-action="close" autofocus>Close</button>
      </div>`;
  }

  _openPurge() {
    this._dialog(`
      <div class="dialog-head"><h2>Purge old commands</h2></div>
      <div class="dialog-body">
        <div class="form">
          <label for="days">Older than (days)</label>
          <input id="days" name="purge-days" type="number" min="0" step="1" value="30">
        </div>
        <p class="secondary">Every finished command created before then is deleted for good.
          Open commands are kept.</p>
      </div>
      <div class="dialog-actions">
        <button data-action="close" autofocus>Cancel</button>
        <button class="danger primary" data-action="purge-confirm">Purge</button>
      </div>`);
  }

  async _purge() {
    const days = Number(this.shadowRoot.querySelector('[name="purge-days"]').value);
    try {
      const result = await this._hass.callWS({ type: "iotee/commands/purge", older_than_days: days });
      this._closeDialog();
      this._toast(`Purged ${result.deleted} command${result.deleted === 1 ? "" : "s"}`);
      this._refresh();
    } catch (err) {
      this._toast(`Purge failed: ${err.message || err}`);
    }
  }

  _openSend() {
    const devices = this._devices;
    this._dialog(`
      <div class="dialog-head"><h2>Send a command</h2></div>
      <div class="dialog-body"><div class="form">
        <label for="send-device">Device</label>
        <select id="send-device" name="send-device">${devices.map((d) => `<option value="${esc(d.hardware_id)}">${esc(d.name)}</option>`).join("")}</select>
        <label for="send-relay">Target</label>
        <select id="send-relay" name="send-relay"></select>
        <label for="send-command">Command</label>
        <select id="send-command" name="send-command"></select>
      </div></div>
      <div class="dialog-actions">
        <button data-action="close">Cancel</button>
        <button class="primary" data-action="send-confirm">Send</button>
      </div>`);
    const root = this.shadowRoot;
    const deviceSelect = root.querySelector('[name="send-device"]');
    const relaySelect = root.querySelector('[name="send-relay"]');
    const commandSelect = root.querySelector('[name="send-command"]');
    const fillCommands = () => {
      const device = this._device(deviceSelect.value);
      const relay = relaySelect.value;
      let names;
      if (relay === "device") names = device.commands.filter((c) => c.kind !== "relay").map((c) => c.name);
      else {
        names = device.commands.filter((c) => c.kind === "relay").map((c) => c.name);
        if (device.relay_locks.includes(Number(relay))) names.push("unlock", "lock");
      }
      commandSelect.innerHTML = names.map((n) => `<option>${esc(n)}</option>`).join("");
    };
    const fillTargets = () => {
      const device = this._device(deviceSelect.value);
      const options = [];
      for (let relay = 1; relay <= device.relays; relay += 1) options.push([String(relay), `Relay ${relay}`]);
      if (device.commands.some((c) => c.kind !== "relay")) options.push(["device", "The device itself"]);
      relaySelect.innerHTML = options.map(([v, l]) => `<option value="${v}">${esc(l)}</option>`).join("");
      fillCommands();
    };
    deviceSelect.onchange = fillTargets;
    relaySelect.onchange = fillCommands;
    if (devices.length) fillTargets();
  }

  async _send() {
    const root = this.shadowRoot;
    const relay = root.querySelector('[name="send-relay"]').value;
    const message = {
      type: "iotee/commands/send",
      device: root.querySelector('[name="send-device"]').value,
      command: root.querySelector('[name="send-command"]').value,
    };
    if (relay && relay !== "device") message.relay = Number(relay);
    try {
      const sent = await this._hass.callWS(message);
      this._closeDialog();
      this._toast(`Sent ${sent.command} to ${sent.device_name || sent.hardware_id}`);
    } catch (err) {
      this._toast(`Not sent: ${err.message || err}`);
    }
  }
}

if (!customElements.get("iotee-panel")) customElements.define("iotee-panel", IoteePanel);
