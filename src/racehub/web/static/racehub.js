// Small behaviours without inline script (the CSP forbids it).
document.addEventListener("change", (event) => {
  const el = event.target;
  if (el instanceof HTMLSelectElement && el.hasAttribute("data-autosubmit")) {
    el.form.requestSubmit();
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
