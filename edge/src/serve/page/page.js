// The upload page: each chosen or dropped photo is sent to POST /api/analyze on its own, and
// its faces are drawn over the photo and listed in a table. No framework, nothing fetched from
// elsewhere: the board may be offline.
"use strict";

const COLOURS = { FAKE: "rgb(255, 40, 40)", REAL: "rgb(40, 220, 80)", none: "rgb(250, 200, 0)" };
let threshold = null;

async function health() {
  const model = document.getElementById("model");
  try {
    const reply = await fetch("/healthz");
    const body = await reply.json();
    if (!reply.ok) {
      model.textContent = body.error || "The server is not ready.";
      setTimeout(health, 1000);
      return;
    }
    threshold = body.threshold;
    model.textContent = body.classifier
      ? `Ready. A face is FAKE when p(FAKE) ≥ ${threshold.toFixed(3)}.`
      : "Ready (faces only: no classifier loaded).";
  } catch (e) {
    model.textContent = `Cannot reach the server: ${e.message}`;
  }
}

function element(tag, attributes = {}, text) {
  const node = document.createElement(tag);
  Object.assign(node, attributes);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function analyse(file) {
  const card = element("section", { className: "result" });
  card.append(element("h2", {}, file.name));
  const status = element("p", {}, "Analysing…");
  card.append(status);
  document.getElementById("results").prepend(card);
  let report;
  try {
    const reply = await upload(file);
    const text = await reply.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = { error: text || reply.statusText };
    }
    // The login's cookie has expired (or the token changed): log in again.
    if (reply.status === 401) location.assign("/login");
    if (!reply.ok) throw new Error(body.error || `HTTP ${reply.status}`);
    report = body;
  } catch (e) {
    status.className = "error";
    status.textContent = `Not analysed: ${e.message}`;
    return;
  }
  await draw(card, file, report);
  status.remove();
  summarise(card, report);
}

// Sent as a form, so the report names the file. A busy board answers 503 with Retry-After:
// wait that long and try again, a few times.
async function upload(file) {
  for (let attempt = 1; ; attempt++) {
    const form = new FormData();
    form.append("image", file);
    const reply = await fetch("/api/analyze", { method: "POST", body: form });
    const wait = Number(reply.headers.get("Retry-After"));
    if (reply.status !== 503 || !wait || attempt === 5) return reply;
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
  }
}

async function draw(card, file, report) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return; // a format the browser cannot show; the table still says what was found
  }
  const canvas = element("canvas", { width: report.width, height: report.height });
  const g = canvas.getContext("2d");
  g.drawImage(bitmap, 0, 0, report.width, report.height);
  g.lineWidth = Math.max(2, Math.round(Math.max(report.width, report.height) / 300));
  g.font = `${Math.max(14, g.lineWidth * 7)}px system-ui, sans-serif`;
  report.faces.forEach((face, i) => {
    const [x0, y0, x1, y1] = face.box;
    g.strokeStyle = g.fillStyle = COLOURS[face.label || "none"];
    g.strokeRect(x0, y0, x1 - x0, y1 - y0);
    g.fillText(`${i + 1} ${face.label || ""}`, x0, Math.max(y0 - 4, 14));
  });
  card.append(canvas);
}

function summarise(card, report) {
  const faces = report.faces;
  const fake = faces.filter((f) => f.label === "FAKE").length;
  const verdict = element("p", { className: "verdict" });
  if (faces.length === 0) {
    verdict.textContent = "No face found in this photo.";
  } else {
    const many = faces.length === 1 ? "face" : "faces";
    verdict.textContent = `${faces.length} ${many}: ${fake} FAKE, ${faces.length - fake} REAL.`;
  }
  card.append(verdict);
  if (faces.length === 0) return;
  const table = element("table");
  const head = table.createTHead().insertRow();
  for (const name of ["Face", "Label", "p(FAKE)", "Threshold", "Detector score", "Box"]) {
    head.append(element("th", {}, name));
  }
  const rows = table.createTBody();
  faces.forEach((face, i) => {
    const row = rows.insertRow();
    const cells = [
      String(i + 1),
      face.label || "–",
      face.p_fake === undefined ? "–" : face.p_fake.toFixed(3),
      threshold === null ? "–" : threshold.toFixed(3),
      face.score.toFixed(2),
      face.box.map((v) => Math.round(v)).join(", "),
    ];
    cells.forEach((text, c) => {
      const cell = element("td", {}, text);
      if (c === 1 && face.label) cell.className = face.label;
      row.append(cell);
    });
  });
  card.append(table);
}

function start() {
  const drop = document.getElementById("drop");
  const input = document.getElementById("files");
  // One photo at a time, in order: the board analyses one at a time anyway.
  const analyseAll = async (files) => {
    for (const file of files) await analyse(file);
  };
  input.addEventListener("change", () => {
    analyseAll([...input.files]);
    input.value = "";
  });
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    analyseAll([...e.dataTransfer.files]);
  });
  health();
}

start();
