// Shared by the IoTee panel and the IoTee commands card: words, formatting and status colours.
// Plain ES module, no dependencies; served by the integration itself.

export const STATUS_LABELS = {
  pending: "Pending",
  published: "Published",
  acknowledged: "Acknowledged",
  completed: "Completed",
  failed: "Failed",
  timeout: "Timed out",
};

export const SOURCE_LABELS = {
  api: "REST API",
  wlte: "WLTE API",
  service: "Action",
  entity: "Entity",
  websocket: "Panel / card",
};

export const RETRYABLE = new Set(["failed", "timeout"]);
export const TERMINAL = new Set(["completed", "failed", "timeout"]);

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escape text for HTML. */
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** What a command acts on: "Relay 2", "Lock" or "Restart". */
export function targetLabel(command) {
  if (command.relay !== null && command.relay !== undefined) return `Relay ${command.relay}`;
  return command.command === "reboot" ? "Restart" : "Lock";
}

function zone(hass) {
  return hass?.locale?.time_zone === "server" ? hass.config?.time_zone : undefined;
}

function language(hass) {
  return hass?.locale?.language || hass?.language || navigator.language;
}

/** A timestamp as date and time with seconds, in the user's language and time zone. */
export function formatDateTime(hass, iso, withYear = true) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(language(hass), {
    timeZone: zone(hass),
    year: withYear ? "numeric" : undefined,
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

/** A timestamp as time of day with milliseconds (for the timeline). */
export function formatTime(hass, iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleTimeString(language(hass), {
    timeZone: zone(hass),
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    fractionalSecondDigits: 3,
  });
}

/** "3 min ago", in the user's language. */
export function formatAgo(hass, iso, now = Date.now()) {
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  const rtf = new Intl.RelativeTimeFormat(language(hass), { numeric: "auto" });
  const steps = [
    [60, "second"],
    [3600, "minute", 60],
    [86400, "hour", 3600],
    [Infinity, "day", 86400],
  ];
  for (const [limit, unit, size = 1] of steps) {
    if (Math.abs(seconds) < limit) return rtf.format(Math.round(seconds / size), unit);
  }
  return "";
}

/** A duration in milliseconds: "48 ms", "1.5 s". */
export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** How long the device took to end the command (null while it is open). */
export function tookMs(command) {
  if (!TERMINAL.has(command.status)) return null;
  const end = command.history[command.history.length - 1];
  return new Date(end.at).getTime() - new Date(command.created_at).getTime();
}

/** The status chip. */
export function statusChip(status) {
  return `<span class="chip status-${esc(status)}">${esc(STATUS_LABELS[status] || status)}</span>`;
}

/** CSS for chips, buttons and form controls, from the Home Assistant theme variables. */
export const BASE_STYLE = `
  :host { color: var(--primary-text-color); font-family: var(--ha-font-family-body, Roboto, sans-serif); }
  .chip { display: inline-block; padding: 2px 10px; border-radius: 12px; font-size: 12px;
    font-weight: 500; line-height: 18px; white-space: nowrap;
    color: var(--text-primary-color, #fff); background: var(--state-icon-color, #44739e); }
  .chip.status-completed { background: var(--success-color, #43a047); }
  .chip.status-failed { background: var(--error-color, #db4437); }
  .chip.status-timeout { background: var(--warning-color, #ffa600); color: #000; }
  .chip.status-pending, .chip.status-published, .chip.status-acknowledged {
    background: var(--info-color, #039be5); }
  button { font: inherit; font-size: 14px; font-weight: 500; cursor: pointer; border-radius: 18px;
    padding: 6px 16px; border: 1px solid var(--divider-color, #ccc); background: transparent;
    color: var(--primary-color); }
  button:hover { background: var(--secondary-background-color, rgba(127,127,127,0.1)); }
  button.primary { background: var(--primary-color); color: var(--text-primary-color, #fff);
    border-color: var(--primary-color); }
  button.danger { color: var(--error-color, #db4437); border-color: var(--error-color, #db4437); }
  button.danger.primary { background: var(--error-color, #db4437); color: #fff; }
  button:disabled { opacity: 0.5; cursor: default; }
  select, input { font: inherit; font-size: 14px; color: var(--primary-text-color);
    background: var(--card-background-color, var(--ha-card-background, #fff));
    border: 1px solid var(--divider-color, #ccc); border-radius: 8px; padding: 7px 10px;
    color-scheme: light dark; }
  .error-text { color: var(--error-color, #db4437); }
  .secondary { color: var(--secondary-text-color); }
  .mono { font-family: var(--ha-font-family-code, ui-monospace, monospace); font-size: 13px; }
`;
