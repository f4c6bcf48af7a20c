/* global document, sessionStorage, fetch, setTimeout, clearTimeout */
// The Backup page: plain browser JavaScript, served as is (no build step). It reads
// GET /api/v1/deployments every POLL_MS with the key the user typed, sent only as a header.

const KEY_STORAGE = "tidemark.apiKey";
const POLL_MS = 2000;

const STATE_LABELS = {
  inactive: "inactive",
  initial_sync: "initial sync",
  active: "active",
  stopped: "stopped",
  resync_required: "resync required",
  terminated: "terminated",
};

const byId = (id) => document.getElementById(id);
const ui = {
  signIn: byId("sign-in"),
  form: byId("sign-in-form"),
  keyInput: byId("api-key"),
  signInError: byId("sign-in-error"),
  session: byId("session"),
  updated: byId("updated"),
  signOut: byId("sign-out"),
  dashboard: byId("dashboard"),
  connectionError: byId("connection-error"),
  empty: byId("empty"),
  list: byId("deployments"),
  announce: byId("announce"),
};

class Unauthorized extends Error {}

/** Deployment id → its card's elements, so a refresh changes text in place (focus and screen readers keep their place). */
const cards = new Map();
let pollTimer;
// Bumped on sign-out so a request still in flight cannot bring data back afterwards.
let session = 0;

const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

/** A local time, with its date unless it is today. */
function formatTime(date) {
  const today = new Date().toDateString() === date.toDateString();
  return (today ? timeFormat : dateTimeFormat).format(date);
}

function phaseLabel(name) {
  return name.replaceAll("_", " ");
}

function formatBytes(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function formatOpTime(ts) {
  return formatTime(new Date(ts.t * 1000));
}

function ago(iso) {
  const when = new Date(iso);
  return `${formatDuration((Date.now() - when.getTime()) / 1000)} ago (${formatTime(when)})`;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function setAttr(node, name, value) {
  if (value === null) node.removeAttribute(name);
  else if (node.getAttribute(name) !== String(value)) node.setAttribute(name, String(value));
}

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---- API ----

async function getDeployments(key) {
  let response;
  try {
    response = await fetch("/api/v1/deployments", {
      headers: { authorization: `Bearer ${key}`, accept: "application/json" },
      cache: "no-store",
    });
  } catch (error) {
    throw new Error(`cannot reach the server (${error instanceof Error ? error.message : error})`);
  }
  if (response.status === 401) throw new Unauthorized("the key was not accepted");
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.error ?? `the server answered ${response.status}`);
  }
  const body = await response.json();
  return body.deployments;
}

// ---- rendering ----

function createPhaseRow(cardId, phase) {
  const row = make("li", "phase-row");
  row.dataset.phase = phase.name;
  const nameId = `${cardId}-phase-${phase.name}`;
  const name = make("span", "phase-name", phaseLabel(phase.name));
  name.id = nameId;
  const status = make("span", "phase-status");
  const detail = make("span", "phase-detail");
  const bar = make("div", "bar");
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-labelledby", nameId);
  bar.setAttribute("aria-valuemin", "0");
  const fill = make("div", "fill");
  bar.append(fill);
  row.append(name, status, detail, bar);
  return { row, status, detail, bar, fill };
}

function phaseDetail(phase) {
  // "0 of 0 slices" on a phase not reached yet says nothing.
  if (phase.status === "pending" && phase.done === 0) return "";
  if (phase.unit === "bytes") {
    if (phase.total !== null) return `${formatBytes(phase.done)} of ${formatBytes(phase.total)}`;
    return phase.done > 0 ? formatBytes(phase.done) : "";
  }
  if (phase.unit === "slices" && phase.total !== null) return `${phase.done} of ${phase.total} slices`;
  if (phase.unit === "documents" && phase.total !== null)
    return phase.total === 0 ? "no missing documents" : `${phase.done} of ${phase.total} missing documents`;
  if (phase.unit === "indexes" && phase.total !== null) return `${phase.done} of ${phase.total} indexes`;
  return "";
}

function updatePhaseRow(parts, phase) {
  const { row, status, detail, bar, fill } = parts;
  row.dataset.status = phase.status;
  setText(status, phase.status);
  const text = phaseDetail(phase);
  setText(detail, text);
  // The API's own figures, so the bar says what `tidemark deployments show` says.
  if (phase.total !== null) {
    setAttr(bar, "aria-valuemax", phase.total);
    setAttr(bar, "aria-valuenow", phase.done);
  } else {
    setAttr(bar, "aria-valuemax", 1);
    // Running without a known total: indeterminate, which is no aria-valuenow at all.
    setAttr(bar, "aria-valuenow", phase.status === "done" ? 1 : phase.status === "pending" ? 0 : null);
  }
  setAttr(bar, "aria-valuetext", text ? `${phase.status}, ${text}` : phase.status);
  let percent = 0;
  if (phase.status === "done") percent = 100;
  else if (phase.total) percent = Math.min(100, (phase.done / phase.total) * 100);
  const indeterminate = phase.status === "running" && phase.total === null;
  bar.classList.toggle("indeterminate", indeterminate);
  const width = indeterminate ? "" : `${percent.toFixed(1)}%`;
  // Setting a style property from script is allowed by the page's CSP; a style attribute is not.
  if (fill.style.width !== width) fill.style.width = width;
}

function createCard(d) {
  const cardId = `deployment-${d.id}`;
  const root = make("article", "deployment");
  root.id = cardId;
  root.dataset.deploymentId = d.id;
  root.setAttribute("aria-labelledby", `${cardId}-name`);

  const header = make("header", "deployment-header");
  const name = make("h3", "deployment-name");
  name.id = `${cardId}-name`;
  const state = make("span", "state");
  header.append(name, state);

  const phaseLine = make("p", "current-phase", "Phase: ");
  const phase = make("strong", "phase-value");
  phaseLine.append(phase);

  const alert = make("div", "alert");
  alert.setAttribute("role", "alert");
  const alertTitle = make("strong", "alert-title");
  const alertText = make("span", "alert-text");
  const alertHint = make("span", "alert-hint");
  alert.append(alertTitle, " ", alertText, alertHint);

  const facts = make("dl", "facts");
  const fact = (label, key) => {
    const wrapper = make("div", "fact");
    wrapper.dataset.fact = key;
    const value = make("dd");
    wrapper.append(make("dt", "", label), value);
    facts.append(wrapper);
    return value;
  };
  const headTime = fact("Head time", "head-time");
  const lag = fact("Lag", "lag");
  const lastOplog = fact("Last oplog received", "last-oplog");
  const agent = fact("Agent", "agent");
  const slices = fact("Stored slices", "slices");
  const lastSnapshot = fact("Last snapshot", "last-snapshot");
  const restorable = fact("Restorable", "restorable");

  const phasesTitle = make("h4", "visually-hidden", "Phases");
  const phases = make("ol", "phases");
  root.append(header, phaseLine, alert, facts, phasesTitle, phases);
  return {
    cardId,
    root,
    name,
    state,
    phase,
    alert,
    alertTitle,
    alertText,
    alertHint,
    headTime,
    lag,
    lastOplog,
    agent,
    slices,
    lastSnapshot,
    restorable,
    phases,
    phaseRows: new Map(),
    lastState: undefined,
  };
}

function deploymentProblem(d) {
  if (d.daemon?.error) {
    return {
      title: "Backup daemon stopped for this deployment:",
      text: d.daemon.error,
      hint: " Its head database stays where it was until the cause is fixed and the server restarts; see the server log.",
    };
  }
  if (d.state === "resync_required") {
    return {
      title: "Resync required:",
      text: d.resyncReason ?? "the oplog no longer reaches back to where the backup stopped.",
      hint: ` Run: tidemark backup resync ${d.name}`,
    };
  }
  return null;
}

function describeAgent(agent) {
  if (!agent.lastSeen) return "not seen yet";
  const parts = [`seen ${ago(agent.lastSeen)}`];
  if (agent.hostname) parts.push(`on ${agent.hostname}`);
  if (agent.version) parts.push(`(v${agent.version})`);
  let text = parts.join(" ");
  if (agent.activity) text += `: ${agent.activity}`;
  return text;
}

function updateCard(card, d) {
  setText(card.name, d.name);
  const stateLabel = STATE_LABELS[d.state] ?? d.state;
  setText(card.state, stateLabel);
  card.state.dataset.state = d.state;
  card.root.dataset.state = d.state;
  setText(card.phase, d.phase ? phaseLabel(d.phase) : "not started");

  const problem = deploymentProblem(d);
  card.root.classList.toggle("has-problem", problem !== null);
  card.alert.hidden = problem === null;
  setText(card.alertTitle, problem?.title ?? "");
  setText(card.alertText, problem?.text ?? "");
  setText(card.alertHint, problem?.hint ?? "");

  setText(card.headTime, d.head.appliedTs ? formatOpTime(d.head.appliedTs) : "none yet");
  setText(card.lag, d.head.lagSeconds === null ? "—" : formatDuration(d.head.lagSeconds));
  let lastOplog = "none yet";
  if (d.oplog.lastReceivedAt) {
    lastOplog = ago(d.oplog.lastReceivedAt);
    if (d.oplog.lastTs) lastOplog += `, newest entry ${formatOpTime(d.oplog.lastTs)}`;
  }
  setText(card.lastOplog, lastOplog);
  const snap = d.lastSnapshot;
  setText(
    card.lastSnapshot,
    snap ? `${snap.wallTime ? ago(snap.wallTime) : formatOpTime(snap.ts)}, ${snap.storeKind}` : "none yet",
  );
  const r = d.restorable;
  setText(
    card.restorable,
    r
      ? `${r.from} → ${r.to}` +
          (r.gaps > 0 ? ` (${r.gaps} gap${r.gaps > 1 ? "s" : ""}: tidemark restore ranges ${d.name})` : "")
      : "nothing yet (needs a snapshot)",
  );
  setText(card.agent, describeAgent(d.agent));
  const s = d.slices;
  setText(
    card.slices,
    `${s.documents.count} documents (${formatBytes(s.documents.bytes)}), ` +
      `${s.oplog.count} oplog (${formatBytes(s.oplog.bytes)}, ${s.oplog.entries} entries)`,
  );

  const names = d.phases.map((p) => p.name).join(",");
  if (card.phases.dataset.names !== names) {
    card.phaseRows.clear();
    card.phases.replaceChildren();
    for (const p of d.phases) {
      const parts = createPhaseRow(card.cardId, p);
      card.phaseRows.set(p.name, parts);
      card.phases.append(parts.row);
    }
    card.phases.dataset.names = names;
  }
  for (const p of d.phases) {
    const parts = card.phaseRows.get(p.name);
    parts.row.classList.toggle("current", p.name === d.phase && d.state !== "active");
    updatePhaseRow(parts, p);
  }

  if (card.lastState !== undefined && card.lastState !== d.state) {
    setText(ui.announce, `${d.name}: ${stateLabel}`);
  }
  card.lastState = d.state;
}

function render(deployments) {
  ui.empty.hidden = deployments.length > 0;
  const seen = new Set();
  let previous = null;
  for (const d of deployments) {
    let card = cards.get(d.id);
    if (!card) {
      card = createCard(d);
      cards.set(d.id, card);
    }
    updateCard(card, d);
    // Keep the API's order without re-inserting cards that are already in place.
    const expected = previous ? previous.nextSibling : ui.list.firstChild;
    if (expected !== card.root) ui.list.insertBefore(card.root, expected);
    previous = card.root;
    seen.add(d.id);
  }
  for (const [id, card] of cards) {
    if (!seen.has(id)) {
      card.root.remove();
      cards.delete(id);
    }
  }
  setText(ui.updated, `Updated ${new Date().toLocaleTimeString()}`);
}

// ---- session ----

function showSignInError(message) {
  setText(ui.signInError, message);
  ui.signInError.hidden = !message;
}

function schedulePoll() {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, POLL_MS);
}

async function poll() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (!key) return signOut();
  const mine = session;
  try {
    const deployments = await getDeployments(key);
    if (mine !== session) return;
    ui.connectionError.hidden = true;
    render(deployments);
  } catch (error) {
    if (mine !== session) return;
    if (error instanceof Unauthorized) {
      return signOut("The server no longer accepts this key. Sign in again.");
    }
    setText(ui.connectionError, `Not updated: ${error.message}. Retrying; the figures below may be stale.`);
    ui.connectionError.hidden = false;
  }
  schedulePoll();
}

function showDashboard(deployments) {
  ui.signIn.hidden = true;
  ui.dashboard.hidden = false;
  ui.session.hidden = false;
  render(deployments);
  schedulePoll();
}

function signOut(message = "") {
  session++;
  clearTimeout(pollTimer);
  sessionStorage.removeItem(KEY_STORAGE);
  cards.clear();
  ui.list.replaceChildren();
  ui.empty.hidden = true;
  ui.connectionError.hidden = true;
  setText(ui.updated, "");
  setText(ui.announce, "");
  ui.dashboard.hidden = true;
  ui.session.hidden = true;
  ui.signIn.hidden = false;
  ui.keyInput.value = "";
  showSignInError(message);
  ui.keyInput.focus();
}

async function signIn(key) {
  // A header value must be visible ASCII; anything else cannot be a key and fetch() would throw.
  if (!/^[\x21-\x7e]+$/.test(key)) {
    showSignInError("That is not an API key: keys have no spaces or accented characters.");
    return;
  }
  const submit = ui.form.querySelector("button[type=submit]");
  submit.disabled = true;
  ui.form.setAttribute("aria-busy", "true");
  const mine = ++session;
  try {
    const deployments = await getDeployments(key);
    if (mine !== session) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    ui.keyInput.value = "";
    showSignInError("");
    showDashboard(deployments);
  } catch (error) {
    if (mine !== session) return;
    showSignInError(
      error instanceof Unauthorized
        ? "Wrong key: the server did not accept it. Use its admin key: TIDEMARK_ADMIN_KEY, or the key tidemark server printed when it first started."
        : `Cannot sign in: ${error.message}.`,
    );
    ui.keyInput.select();
  } finally {
    submit.disabled = false;
    ui.form.removeAttribute("aria-busy");
  }
}

ui.form.addEventListener("submit", (event) => {
  // Never let the browser submit the form: the key must not travel anywhere but the header.
  event.preventDefault();
  const key = ui.keyInput.value.trim();
  if (!key) return showSignInError("Enter the API key.");
  void signIn(key);
});

ui.signOut.addEventListener("click", () => signOut());

const stored = sessionStorage.getItem(KEY_STORAGE);
if (stored) {
  ui.signIn.hidden = true;
  void (async () => {
    const mine = session;
    try {
      const deployments = await getDeployments(stored);
      if (mine === session) showDashboard(deployments);
    } catch (error) {
      if (mine !== session) return;
      if (error instanceof Unauthorized) signOut("The server no longer accepts this key. Sign in again.");
      else {
        // Keep the key: the server may just be restarting; show the page and keep trying.
        showDashboard([]);
        ui.empty.hidden = true;
        setText(ui.connectionError, `Not updated: ${error.message}. Retrying.`);
        ui.connectionError.hidden = false;
      }
    }
  })();
}
