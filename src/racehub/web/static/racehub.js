// Small behaviours without inline script (the CSP forbids it).

// A page rendered in answer to a form's POST (the form refused, shown again with its
// problems) names the GET address of the form's page: the address bar shows that one, so a
// reload asks for the page again instead of re-posting (or a 405 on a POST-only path).
(function showTheFormPageAddress() {
  const address = document.body && document.body.dataset.pageUrl;
  if (address && address.startsWith("/") && !address.startsWith("//")) {
    history.replaceState(history.state, "", address);
  }
})();
document.addEventListener("change", (event) => {
  const el = event.target;
  if (el instanceof HTMLSelectElement && el.hasAttribute("data-autosubmit")) {
    el.form.requestSubmit();
  }
});

// A "select every row on this page" box: ticks or unticks the rows of its form.
document.addEventListener("change", (event) => {
  const el = event.target;
  if (!(el instanceof HTMLInputElement) || !el.dataset.selectPage) return;
  const form = el.dataset.selectPage;
  for (const box of document.querySelectorAll(`input[name="ids"][form="${form}"]`)) {
    box.checked = el.checked;
  }
});

// A form marked data-swap-errors shows what the server answered to a refused request (a
// 4xx naming the problem) in its target, as it shows a success; htmx would drop it.
document.addEventListener("htmx:beforeSwap", (event) => {
  const status = event.detail.xhr.status;
  const source = event.detail.requestConfig && event.detail.requestConfig.elt;
  if (status >= 400 && status < 500 && source && source.closest("[data-swap-errors]")) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});

function csrfToken() {
  const headers = document.body.getAttribute("hx-headers");
  return headers ? JSON.parse(headers)["X-CSRF-Token"] : "";
}

// <details data-remember="key">: open or closed as the operator last left it (default: as rendered).
function restoreRememberedPanels() {
  for (const panel of document.querySelectorAll("details[data-remember]")) {
    const saved = localStorage.getItem("panel:" + panel.dataset.remember);
    if (saved !== null) panel.open = saved === "open";
    panel.addEventListener("toggle", () => {
      localStorage.setItem("panel:" + panel.dataset.remember, panel.open ? "open" : "closed");
    });
  }
}

// C05: when an import ends, hand back to the page that started it (importCaller:{uuid}).
function handBackFinishedImport() {
  const progress = document.getElementById("import-progress");
  if (!progress || progress.dataset.terminal !== "true") return;
  const key = "importCaller:" + progress.dataset.importId;
  const caller = localStorage.getItem(key);
  const targets = JSON.parse(progress.dataset.callers || "{}");
  if (caller && targets[caller]) {
    localStorage.removeItem(key); // once: the progress page stays reachable afterwards
    window.location.assign(targets[caller]);
  }
}

// Upload forms of the import pipeline: Upload stays disabled (with a tooltip saying what is
// missing) until every required input is filled; the file goes to POST /api/imports.
function setUpImportUpload(form) {
  const button = form.querySelector("button[type=submit]");
  const errorBox = form.querySelector(".upload-error");
  const required = JSON.parse(form.dataset.required || "{}");
  const dropZone = form.querySelector(".drop-zone");
  const fileInput = form.querySelector("input[type=file]");

  function missing() {
    return Object.entries(required)
      .filter(([name]) => {
        const input = form.elements[name];
        return input.type === "file" ? input.files.length === 0 : !input.value;
      })
      .map(([, why]) => why);
  }
  function refresh() {
    const reasons = missing();
    button.disabled = reasons.length > 0;
    button.title = reasons.join(" and ");
    const chosen = form.querySelector(".chosen-file");
    if (chosen) chosen.textContent = fileInput.files.length ? fileInput.files[0].name : "";
  }
  form.addEventListener("input", refresh);
  form.addEventListener("change", refresh);
  if (dropZone) {
    dropZone.addEventListener("dragover", (event) => {
      event.preventDefault();
      dropZone.classList.add("dragging");
    });
    dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
    dropZone.addEventListener("drop", (event) => {
      event.preventDefault();
      dropZone.classList.remove("dragging");
      if (event.dataTransfer.files.length) {
        fileInput.files = event.dataTransfer.files;
        refresh();
      }
    });
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (missing().length) return;
    const query = new URLSearchParams({ importType: form.dataset.importType });
    for (const name of Object.keys(required)) {
      const input = form.elements[name];
      if (input.type !== "file") query.set(name, input.value);
    }
    const body = new FormData();
    body.append("file", fileInput.files[0]);
    button.disabled = true;
    errorBox.textContent = "";
    const response = await fetch("/api/imports?" + query, {
      method: "POST", body, headers: { "X-CSRF-Token": csrfToken(), Accept: "application/json" },
    });
    const payload = await response.json().catch(() => ({}));
    if (response.status === 201) {
      localStorage.setItem("importCaller:" + payload.id, form.dataset.caller);
      window.location.assign("/imports/" + payload.id);
      return;
    }
    errorBox.textContent = payload.detail || "The upload failed (" + response.status + ").";
    refresh();
  });
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  restoreRememberedPanels();
  handBackFinishedImport();
  for (const form of document.querySelectorAll("form[data-import-upload]")) setUpImportUpload(form);
});
document.addEventListener("htmx:afterSettle", handBackFinishedImport);

// E11: the "Export to timing system" modal. The server holds the rules (lock, AF-2 refusal,
// permissions); this only shows them: mode dropdown before the lock, label + "Unlock to
// change" after it, the mandatory confirmation, and the missing-registration-id warning.
function setUpTimingExport() {
  const dialog = document.getElementById("timing-export-dialog");
  const unlockDialog = document.getElementById("timing-unlock-dialog");
  if (!dialog || !unlockDialog) return;
  const $ = (root, name) => root.querySelector("[data-te-" + name + "]");
  const state = { eventId: null, canChangeMode: false, preflight: null };

  function showError(box, message) {
    box.textContent = message || "";
    box.hidden = !message;
  }

  async function problemText(response) {
    const payload = await response.json().catch(() => ({}));
    return payload.detail || "The request failed (" + response.status + ").";
  }

  function refreshGenerate() {
    const p = state.preflight;
    const generate = $(dialog, "generate");
    const reasons = [];
    if (!$(dialog, "confirm").checked) reasons.push("Tick the confirmation first");
    if (p && p.missingRegistrationCount > 0 && !$(dialog, "accept-missing").checked) {
      reasons.push("accept the participants without a registration id (or fix them)");
    }
    generate.disabled = !p || reasons.length > 0;
    generate.title = reasons.join(", and ");
  }

  function render(p) {
    state.preflight = p;
    const locked = Boolean(p.lockedAt);
    $(dialog, "mode-edit").hidden = locked;
    $(dialog, "mode-locked").hidden = !locked;
    const select = $(dialog, "mode-select");
    select.value = p.mode;
    select.disabled = !state.canChangeMode;
    select.title = state.canChangeMode ? "" : "Changing the mode needs the EVENT_MANAGER role";
    $(dialog, "mode-label").textContent = p.mode;
    $(dialog, "locked-at").textContent = locked ? new Date(p.lockedAt).toLocaleString() : "";
    const unlock = $(dialog, "unlock");
    unlock.disabled = !state.canChangeMode;
    unlock.title = state.canChangeMode ? "" : "Changing the mode needs the EVENT_MANAGER role";
    $(dialog, "row-count").textContent = String(p.rowCount);
    const missing = $(dialog, "missing");
    missing.hidden = p.missingRegistrationCount === 0;
    $(dialog, "missing-count").textContent = String(p.missingRegistrationCount);
    const list = $(dialog, "missing-list");
    list.replaceChildren();
    for (const ep of p.missingRegistrationIds) {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = ep.editUrl;
      link.textContent = ep.name + (ep.bib ? " (bib " + ep.bib + ")" : " (no bib)");
      item.append(link);
      list.append(item);
    }
    if (p.missingRegistrationIds.length < p.missingRegistrationCount) {
      const more = document.createElement("li");
      more.textContent = "and " + (p.missingRegistrationCount - p.missingRegistrationIds.length)
        + " more";
      list.append(more);
    }
    $(dialog, "accept-missing").checked = false;
    refreshGenerate();
  }

  async function load() {
    const response = await fetch("/api/events/" + state.eventId + "/timing-export/preflight", {
      headers: { Accept: "application/json" },
    });
    if (!response.ok) {
      showError($(dialog, "error"), await problemText(response));
      return false;
    }
    render(await response.json());
    return true;
  }

  async function patchMode(mode, acknowledgeOverride) {
    const body = { preferredTimingIdentifier: mode };
    if (acknowledgeOverride) body.acknowledgeOverride = true;
    return fetch("/api/events/" + state.eventId, {
      method: "PATCH",
      body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", Accept: "application/json",
                 "X-CSRF-Token": csrfToken() },
    });
  }

  async function open(button) {
    state.eventId = button.dataset.timingExport;
    state.canChangeMode = button.dataset.canChangeMode === "true";
    state.preflight = null;
    $(dialog, "event-name").textContent = button.dataset.eventName || "";
    $(dialog, "confirm").checked = false;
    showError($(dialog, "error"), "");
    refreshGenerate();
    dialog.showModal();
    await load();
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-timing-export]");
    if (button && !button.disabled) open(button);
  });
  $(dialog, "close").addEventListener("click", () => dialog.close());
  $(dialog, "confirm").addEventListener("change", refreshGenerate);
  $(dialog, "accept-missing").addEventListener("change", refreshGenerate);

  $(dialog, "mode-select").addEventListener("change", async (event) => {
    const select = event.target;
    showError($(dialog, "error"), "");
    select.disabled = true;
    const response = await patchMode(select.value, false);
    if (!response.ok) {
      showError($(dialog, "error"), await problemText(response));
      select.value = state.preflight.mode;
      select.disabled = !state.canChangeMode;
      return;
    }
    $(dialog, "confirm").checked = false; // the confirmation was about the previous mode
    await load();
  });

  $(dialog, "generate").addEventListener("click", () => {
    const p = state.preflight;
    if (!p || $(dialog, "generate").disabled) return;
    const query = new URLSearchParams({ format: "csv" });
    if ($(dialog, "bom").checked) query.set("bom", "1");
    if (p.missingRegistrationCount > 0) query.set("acceptMissingIds", "1");
    dialog.close();
    window.location.assign("/api/events/" + state.eventId + "/timing-export?" + query);
  });

  $(dialog, "unlock").addEventListener("click", () => {
    const select = $(unlockDialog, "unlock-select");
    for (const option of select.options) option.disabled = option.value === state.preflight.mode;
    select.value = [...select.options].find((o) => !o.disabled).value;
    showError($(unlockDialog, "unlock-error"), "");
    unlockDialog.showModal();
  });
  $(unlockDialog, "unlock-cancel").addEventListener("click", () => unlockDialog.close());
  $(unlockDialog, "unlock-confirm").addEventListener("click", async () => {
    const response = await patchMode($(unlockDialog, "unlock-select").value, true);
    if (!response.ok) {
      showError($(unlockDialog, "unlock-error"), await problemText(response));
      return;
    }
    unlockDialog.close();
    $(dialog, "confirm").checked = false;
    await load();
  });
}

document.addEventListener("DOMContentLoaded", setUpTimingExport);

// Exports: the status page puts a running export on a watch list (localStorage); every
// page polls the watched exports and shows a notice when one completes or fails.
const EXPORT_WATCH_KEY = "exports:watch";

function watchedExports() {
  try { return JSON.parse(localStorage.getItem(EXPORT_WATCH_KEY) || "[]"); } catch { return []; }
}

function setWatchedExports(ids) {
  localStorage.setItem(EXPORT_WATCH_KEY, JSON.stringify([...new Set(ids)].slice(-20)));
}

function watchExportOnStatusPage() {
  const status = document.getElementById("export-status");
  if (!status) return;
  if (["queued", "running"].includes(status.dataset.exportState)) {
    setWatchedExports([...watchedExports(), status.dataset.exportId]);
  }
}

function showExportNotice(exp) {
  const box = document.getElementById("export-notices");
  if (!box || box.querySelector(`[data-export-id="${exp.id}"]`)) return;
  const onItsPage = window.location.pathname === exp.statusUrl;
  if (onItsPage) return; // its own status page already shows the result
  const notice = document.createElement("div");
  notice.className = "notice " + exp.status;
  notice.dataset.exportId = exp.id;
  notice.setAttribute("role", "status");
  const text = document.createElement("span");
  const link = document.createElement("a");
  if (exp.status === "completed") {
    text.textContent = `Export ready: ${exp.title} (${exp.rowCount} rows). `;
    link.href = exp.downloadUrl;
    link.textContent = "Download";
    link.setAttribute("download", "");
  } else {
    text.textContent = `Export ${exp.status}: ${exp.title}. ${exp.message || ""} `;
    link.href = exp.statusUrl;
    link.textContent = "Open";
  }
  const close = document.createElement("button");
  close.type = "button";
  close.className = "link";
  close.textContent = "Dismiss";
  close.addEventListener("click", () => notice.remove());
  notice.append(text, link, close);
  box.append(notice);
}

async function pollWatchedExports() {
  const ids = watchedExports();
  if (!ids.length || !document.getElementById("export-notices")) return;
  const keep = [];
  for (const id of ids) {
    let response;
    try {
      response = await fetch("/api/exports/" + id, { headers: { Accept: "application/json" } });
    } catch {
      keep.push(id); // offline for a moment: try again
      continue;
    }
    if (!response.ok) continue; // gone, or another tenant now: stop watching
    const exp = await response.json();
    if (["queued", "running", "paused"].includes(exp.status)) keep.push(id);
    else if (["completed", "failed"].includes(exp.status)) showExportNotice(exp);
  }
  const current = watchedExports().filter((id) => !ids.includes(id));
  setWatchedExports([...keep, ...current]);
  if (watchedExports().length) window.setTimeout(pollWatchedExports, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  watchExportOnStatusPage();
  pollWatchedExports();
});

// Forms with data-confirm ask first (delete a connection, remove a member, discard a run):
// a modal <dialog> with the question, the form's own button to go on and Cancel, which has
// the focus (a stray Enter cancels). Escape cancels too; focus goes back where it was.
function confirmDialog() {
  let dialog = document.getElementById("confirm-dialog");
  if (dialog) return dialog;
  dialog = document.createElement("dialog");
  dialog.id = "confirm-dialog";
  dialog.className = "modal";
  dialog.setAttribute("role", "alertdialog");
  dialog.setAttribute("aria-labelledby", "confirm-dialog-question");
  const question = document.createElement("p");
  question.id = "confirm-dialog-question";
  const buttons = document.createElement("div");
  buttons.className = "row";
  const proceed = document.createElement("button");
  proceed.type = "button";
  proceed.className = "danger";
  proceed.dataset.confirmProceed = "";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.textContent = "Cancel";
  cancel.dataset.confirmCancel = "";
  cancel.addEventListener("click", () => dialog.close("cancel"));
  proceed.addEventListener("click", () => dialog.close("proceed"));
  buttons.append(proceed, cancel);
  dialog.append(question, buttons);
  document.body.append(dialog);
  return dialog;
}

const confirmedForms = new WeakSet();

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
  if (confirmedForms.has(form)) {
    confirmedForms.delete(form); // asked once for this submit: the next one asks again
    return;
  }
  event.preventDefault();
  const submitter = event.submitter;
  const opener = document.activeElement;
  const dialog = confirmDialog();
  dialog.querySelector("#confirm-dialog-question").textContent = form.dataset.confirm;
  dialog.querySelector("[data-confirm-proceed]").textContent =
    (submitter && submitter.textContent.trim()) || "Continue";
  dialog.returnValue = "";
  dialog.addEventListener("close", () => {
    if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
    if (dialog.returnValue === "proceed") {
      confirmedForms.add(form);
      form.requestSubmit(submitter && submitter.form === form ? submitter : undefined);
    }
  }, { once: true });
  dialog.showModal();
  dialog.querySelector("[data-confirm-cancel]").focus();
});

// <details class="confirm"> (a confirm step folded under its button): Escape folds it again
// and puts the focus back on its button.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const panel = event.target instanceof Element && event.target.closest("details.confirm[open]");
  if (!panel) return;
  panel.open = false;
  panel.querySelector("summary").focus();
});

// Field-mapping editor: after a preview, offer the sample's field paths in the path boxes too.
document.addEventListener("htmx:afterSwap", (event) => {
  if (event.target.id !== "mapping-preview") return;
  const list = document.getElementById("source-paths");
  if (!list) return;
  const known = new Set(Array.from(list.options, (option) => option.value));
  for (const code of event.target.querySelectorAll(".source-paths code")) {
    if (known.has(code.textContent)) continue;
    const option = document.createElement("option");
    option.value = code.textContent;
    list.append(option);
  }
});

// Field-mapping editor: a row's dropdown writes the chosen provider path into the row's
// path box (the box is what is posted; "Default" empties it), and the step picker shows
// only the options of the chosen step.
document.addEventListener("change", (event) => {
  const el = event.target;
  if (el instanceof HTMLSelectElement && el.dataset.pathFor) {
    const input = document.getElementById(el.dataset.pathFor);
    if (input) input.value = el.value;
  }
  if (el instanceof HTMLSelectElement && el.hasAttribute("data-step-kind")) showStepOptions(el);
});

function showStepOptions(kindSelect) {
  const picker = kindSelect.closest(".step-picker");
  if (!picker) return;
  for (const box of picker.querySelectorAll("[data-step-options]")) {
    box.hidden = box.dataset.stepOptions !== kindSelect.value;
  }
}

function setUpStepPickers(root) {
  for (const select of root.querySelectorAll("select[data-step-kind]")) showStepOptions(select);
}

document.addEventListener("DOMContentLoaded", () => setUpStepPickers(document));
document.addEventListener("htmx:afterSettle", () => setUpStepPickers(document));

// An open modal dialog keeps the focus: Tab past its last control comes back to its first,
// Shift+Tab before its first goes to its last (the page behind is inert anyway).
const FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]:not([tabindex='-1'])";

document.addEventListener("keydown", (event) => {
  if (event.key !== "Tab") return;
  const dialog = document.querySelector("dialog[open]:modal");
  if (!dialog) return;
  const controls = [...dialog.querySelectorAll(FOCUSABLE)].filter(
    (el) => !el.disabled && !el.closest("[hidden]") && el.getClientRects().length > 0);
  if (!controls.length) return;
  const first = controls[0];
  const last = controls[controls.length - 1];
  const inside = dialog.contains(document.activeElement);
  if (event.shiftKey && (!inside || document.activeElement === first)) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && (!inside || document.activeElement === last)) {
    event.preventDefault();
    first.focus();
  }
});
