// Import job page: poll the job's status until it finishes, then reload to show
// the result. The phase labels come translated from the page's data attributes.
const box = document.getElementById("job-progress");
const phases = box ? { check: box.dataset.phaseCheck, write: box.dataset.phaseWrite } : {};

async function poll() {
  try {
    const r = await fetch(box.dataset.statusUrl, { credentials: "same-origin" });
    const s = await r.json();
    document.getElementById("job-status").textContent = s.status_display;
    document.getElementById("job-bar").value = s.percent;
    document.getElementById("job-figure").textContent = s.done + " / " + s.total;
    document.getElementById("job-phase").textContent = phases[s.phase] || "";
    if (s.finished) {
      window.location.reload();
      return;
    }
  } catch (e) {
    /* a dropped poll is retried */
  }
  setTimeout(poll, 1000);
}

if (box) setTimeout(poll, 500);
