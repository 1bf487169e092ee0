// serkit web page: a static shell; everything it shows comes from /api/v1 with the token the user enters.
// No libraries: DOM built with textContent (never innerHTML with data), charts drawn as SVG.
"use strict";

const API = "/api/v1";
const COLOURS = {neutral: "#1f77b4", calm: "#ff7f0e", happy: "#2ca02c", sad: "#d62728", angry: "#9467bd",
  fearful: "#8c564b", disgust: "#e377c2", surprised: "#7f7f7f", boredom: "#bcbd22"};
const UNCERTAIN = 0.5;  // serkit.inference.analysis.LOW_CONFIDENCE
const main = () => document.getElementById("main");
let modelInfo = null;
let pollTimer = null;

// -- small helpers ------------------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}
function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}
const pct = (x) => (x === null || x === undefined) ? "-" : (100 * x).toFixed(1) + " %";
const num = (x) => (x === null || x === undefined) ? "-" : (x >= 0 ? "+" : "") + x.toFixed(2);
const colour = (label) => COLOURS[label] || "#17becf";
function status(text, isError) {
  const el = document.getElementById("status");
  el.textContent = text || "";
  el.className = isError ? "error" : "";
}
function show(...children) {
  const m = main();
  m.replaceChildren(...children);
  m.focus({preventScroll: true});
}

// -- token and API ------------------------------------------------------------------------------------
const token = () => sessionStorage.getItem("serkit-token") || localStorage.getItem("serkit-token");
function forgetToken() {
  sessionStorage.removeItem("serkit-token");
  localStorage.removeItem("serkit-token");
  modelInfo = null;
  route();
}
class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}
async function api(path, options = {}) {
  const headers = Object.assign({Authorization: "Bearer " + token()}, options.headers || {});
  const response = await fetch(API + path, Object.assign({}, options, {headers}));
  if (response.status === 401) {
    forgetToken();
    throw new ApiError(401, "The token was not accepted; enter it again.");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (e) { /* not JSON */ }
    if (response.status === 429) detail += ` (try again in ${response.headers.get("Retry-After") || "a few"} s)`;
    throw new ApiError(response.status, detail);
  }
  return options.raw ? response : response.json();
}
async function blobUrl(path) {
  const response = await api(path, {raw: true});
  return URL.createObjectURL(await response.blob());
}
async function reportFrame(path, title) {
  const response = await api(path, {raw: true});
  // The report is self-contained HTML without scripts: shown sandboxed, scripts stay off.
  return h("iframe", {class: "report", title, sandbox: "", srcdoc: await response.text()});
}

function tokenForm() {
  const input = h("input", {type: "password", id: "token", autocomplete: "off", required: true,
    "aria-describedby": "token-help"});
  const remember = h("input", {type: "checkbox", id: "remember"});
  const form = h("form", {onsubmit: async (e) => {
      e.preventDefault();
      const value = input.value.trim();
      sessionStorage.setItem("serkit-token", value);
      try {
        await api("/model");
        if (remember.checked) localStorage.setItem("serkit-token", value);
        status("Signed in.");
        route();
      } catch (err) {
        sessionStorage.removeItem("serkit-token");
        status(err.message, true);
      }
    }},
    h("h2", {}, "Enter your access token"),
    h("p", {id: "token-help"}, "The operator creates tokens with ",
      h("code", {}, "serkit serve --create-token NAME"), ". A token sees only the people and recordings it created."),
    h("label", {for: "token"}, "Token"), input,
    h("div", {class: "row"}, remember, h("label", {for: "remember", style: "display:inline;margin:0;font-weight:400"},
      "Remember on this device")),
    h("div", {class: "row"}, h("button", {type: "submit", id: "token-submit"}, "Continue")));
  show(form);
  input.focus();
}

// -- model card and notice ----------------------------------------------------------------------------
async function model() {
  if (!modelInfo) modelInfo = await api("/model");
  return modelInfo;
}
function notice(info) {
  return h("div", {class: "notice", role: "note"}, h("b", {}, "Not a diagnosis. "), info.notice.replace(/^This is not a diagnosis\. /, ""));
}
function accuracyLine(info) {
  // the card's headline: what to expect for a person recorded anywhere (corpora never heard, trend fidelity)
  if (info.headline && info.headline.length) return h("p", {class: "muted", id: "accuracy"}, info.headline.join(" "),
    " ", h("a", {href: "#/model"}, "Model details"));
  const rows = (info.accuracy || []).filter((r) => r.metric === "UA" || r.metric === "ua");
  const first = rows.find((r) => r.corpus === "all") || rows[0];
  if (!first) return h("p", {class: "muted"}, "Measured accuracy: not recorded for this model. ", h("a", {href: "#/model"}, "Model details"));
  const value = typeof first.value === "number" ? (first.value <= 1 ? 100 * first.value : first.value).toFixed(1) + " %" : first.value;
  return h("p", {class: "muted", id: "accuracy"}, `Model accuracy: ${value} unweighted average recall on speakers it never heard `
    + `(${first.corpus}, ${first.protocol}); chance is ${(100 / info.labels.length).toFixed(1)} %. `, h("a", {href: "#/model"}, "Model details"));
}
async function modelPage() {
  const info = await model();
  const rows = (info.accuracy || []).map((r) => h("tr", {}, [r.corpus, r.protocol, r.metric,
    typeof r.value === "number" ? r.value.toFixed(3) : r.value, typeof r.std === "number" ? r.std.toFixed(3) : "-",
    r.folds ?? "-"].map((c) => h("td", {}, c))));
  show(h("h2", {}, "The model"), notice(info),
    h("p", {}, "Classes: ", info.labels.join(", "), ". Windows of ", String(info.window_seconds), " s."),
    info.summary ? h("p", {}, info.summary) : null,
    h("h3", {}, "Measured accuracy"),
    rows.length ? h("div", {class: "scroll"}, h("table", {id: "accuracy-table"},
      h("tr", {}, ["corpus", "protocol", "metric", "value", "std", "folds"].map((c) => h("th", {scope: "col"}, c))), rows))
      : h("p", {}, "Not recorded for this model."),
    h("h3", {}, "Limits"), h("ul", {}, info.limits.map((x) => h("li", {}, x))),
    h("p", {class: "muted"}, "Probabilities: ", info.probabilities, "."));
}

// -- upload -------------------------------------------------------------------------------------------
function wavFromFloat(chunks, rate) {
  const n = chunks.reduce((a, c) => a + c.length, 0);
  const buffer = new ArrayBuffer(44 + 2 * n);
  const v = new DataView(buffer);
  const text = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  text(0, "RIFF"); v.setUint32(4, 36 + 2 * n, true); text(8, "WAVE"); text(12, "fmt ");
  v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true); v.setUint32(24, rate, true);
  v.setUint32(28, 2 * rate, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true); text(36, "data");
  v.setUint32(40, 2 * n, true);
  let o = 44;
  for (const c of chunks) for (let i = 0; i < c.length; i++, o += 2) v.setInt16(o, Math.max(-1, Math.min(1, c[i])) * 32767, true);
  return new Blob([buffer], {type: "audio/wav"});
}

function recorder(onDone) {
  // Microphone -> 16-bit WAV in the page (MediaRecorder gives WebM, which libsndfile does not read).
  let ctx = null, stream = null, node = null, chunks = [];
  const button = h("button", {type: "button", class: "secondary", id: "record"}, "Record from microphone");
  button.addEventListener("click", async () => {
    if (ctx) {
      node.disconnect(); stream.getTracks().forEach((t) => t.stop());
      const blob = wavFromFloat(chunks, ctx.sampleRate);
      await ctx.close(); ctx = null; button.textContent = "Record from microphone";
      onDone(blob);
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({audio: true});
    } catch (err) {
      status("The microphone is not available: " + err.message, true);
      return;
    }
    ctx = new AudioContext(); chunks = [];
    const source = ctx.createMediaStreamSource(stream);
    node = ctx.createScriptProcessor(4096, 1, 1);
    node.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    source.connect(node); node.connect(ctx.destination);
    button.textContent = "Stop recording";
    status("Recording... press the button again to stop.");
  });
  return button;
}

async function uploadPage() {
  const info = await model();
  const people = await api("/people");
  const select = h("select", {id: "person"}, h("option", {value: ""}, "New person..."),
    people.map((p) => h("option", {value: p.id}, p.name)));
  const newName = h("input", {type: "text", id: "person-name", placeholder: "name or pseudonym", maxlength: 200});
  const newField = h("div", {}, h("label", {for: "person-name"}, "New person's name"), newName);
  select.addEventListener("change", () => { newField.hidden = select.value !== ""; });
  if (people.length) { select.value = people[people.length - 1].id; newField.hidden = true; }
  const today = new Date();
  const date = h("input", {type: "date", id: "date", value: new Date(today - today.getTimezoneOffset() * 60000).toISOString().slice(0, 10)});
  const file = h("input", {type: "file", id: "file", accept: "audio/*,.wav,.flac,.ogg,.opus,.mp3"});
  let recorded = null;
  const recordedNote = h("p", {class: "muted", id: "recorded"});
  const rec = recorder((blob) => {
    recorded = blob;
    recordedNote.textContent = `Recorded ${(blob.size / 1024).toFixed(0)} kB; it is sent when you press Analyse.`;
    status("Recording finished.");
  });
  const progress = h("progress", {max: 1, value: 0, hidden: true, id: "progress", "aria-label": "analysis progress"});
  const submit = h("button", {type: "submit", id: "analyse"}, "Analyse");
  const form = h("form", {onsubmit: async (e) => {
      e.preventDefault();
      const audio = recorded || (file.files && file.files[0]);
      if (!audio) { status("Choose a file or record first.", true); return; }
      submit.disabled = true;
      try {
        let pid = select.value;
        if (!pid) {
          if (!newName.value.trim()) throw new ApiError(0, "Give the new person a name.");
          pid = (await api("/people", {method: "POST", headers: {"Content-Type": "application/json"},
            body: JSON.stringify({name: newName.value.trim()})})).id;
        }
        const body = new FormData();
        body.append("file", audio, recorded ? `recording-${date.value}.wav` : audio.name);
        if (date.value) body.append("date", date.value);
        status("Uploading...");
        const created = await api(`/people/${pid}/sessions`, {method: "POST", body});
        progress.hidden = false;
        await followJob(created.job.id, progress);
        location.hash = `#/session/${created.session.id}`;
      } catch (err) {
        status(err.message, true);
      } finally {
        submit.disabled = false;
      }
    }},
    h("fieldset", {}, h("legend", {}, "Whose recording"), h("label", {for: "person"}, "Person"), select, newField),
    h("fieldset", {}, h("legend", {}, "Recording"),
      h("label", {for: "file"}, "Audio file (WAV, FLAC, Ogg, MP3; any length)"), file,
      h("div", {class: "row"}, rec), recordedNote,
      h("label", {for: "date"}, "Session date"), date),
    h("div", {class: "row"}, submit), progress);
  show(h("h2", {}, "Analyse a recording"), notice(info), accuracyLine(info), form);
}

function followJob(jid, progress) {
  return new Promise((resolve, reject) => {
    const tick = async () => {
      try {
        const job = await api(`/jobs/${jid}`);
        progress.value = job.progress;
        if (job.state === "done") { status("Analysis finished."); resolve(job); return; }
        if (job.state === "failed") { reject(new ApiError(0, "The analysis failed: " + job.error)); return; }
        status(job.state === "queued" ? "Waiting in the queue..." : `Analysing... ${Math.round(100 * job.progress)} %`);
        pollTimer = setTimeout(tick, 1000);
      } catch (err) {
        if (err.status === 429) { pollTimer = setTimeout(tick, 5000); return; }
        reject(err);
      }
    };
    tick();
  });
}

// -- session ------------------------------------------------------------------------------------------
function legend(labels) {
  return h("div", {class: "legend"}, labels.map((l) => h("span", {}, h("i", {class: "swatch", style: `background:${colour(l)}`}), l)),
    h("span", {}, h("i", {class: "swatch", style: "background:repeating-linear-gradient(45deg,#999 0 2px,#fff 2px 5px)"}), "uncertain (top probability below 0.5)"),
    h("span", {}, h("i", {class: "swatch", style: "background:#222;height:2px"}), "confidence"));
}

function timelineSvg(tl) {
  const W = 900, H = 198, left = 40, right = 10, top = 10, barH = 26, plotTop = 56, plotH = 100;
  const dur = Math.max(tl.duration_s, 0.001);
  const x = (t) => left + (W - left - right) * t / dur;
  const y = (p) => plotTop + plotH * (1 - p);
  const out = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", id: "timeline",
    "aria-label": `Emotion timeline of ${tl.recording}: ${tl.segments.length} segments over ${tl.duration_s.toFixed(1)} s`});
  out.append(svg("defs", {}, svg("pattern", {id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)"},
    svg("rect", {width: 2, height: 6, fill: "#888"}))));
  out.append(svg("rect", {x: left, y: top, width: W - left - right, height: barH, fill: "#f1f1f1"}));
  for (const [s, e] of tl.speech_regions) out.append(svg("rect", {x: x(s), y: top, width: Math.max(1, x(e) - x(s)), height: barH, fill: "#e0e0e0"}));
  for (const seg of tl.segments) {
    const g = svg("rect", {x: x(seg.start), y: top, width: Math.max(1, x(seg.end) - x(seg.start)), height: barH,
      fill: colour(seg.label), class: "segment", "data-label": seg.label});
    g.append(svg("title", {}, `${seg.start.toFixed(1)}-${seg.end.toFixed(1)} s: ${seg.label} (${(100 * seg.probabilities[seg.label]).toFixed(0)} %)`));
    out.append(g);
    if (x(seg.end) - x(seg.start) > 44) out.append(svg("text", {x: x(seg.start) + 3, y: top + 17, fill: "#fff", style: "fill:#fff"}, seg.label));
  }
  // confidence of each window (top raw probability), with the uncertain stretches hatched
  out.append(svg("rect", {x: left, y: plotTop, width: W - left - right, height: plotH, fill: "none", stroke: "#ccc"}));
  out.append(svg("line", {x1: left, x2: W - right, y1: y(UNCERTAIN), y2: y(UNCERTAIN), stroke: "#bbb", "stroke-dasharray": "4 3"}));
  let points = [];
  const flush = () => { if (points.length) out.append(svg("polyline", {points: points.join(" "), fill: "none", stroke: "#222", "stroke-width": 1.5})); points = []; };
  let region = null;
  for (const w of tl.windows) {
    const conf = Math.max(...Object.values(w.probabilities));
    if (region !== null && w.region !== region) flush();
    region = w.region;
    const mid = (w.start + w.end) / 2;
    points.push(`${x(mid).toFixed(1)},${y(conf).toFixed(1)}`);
    out.append(svg("circle", {cx: x(mid).toFixed(1), cy: y(conf).toFixed(1), r: 2.5, fill: "#222", class: "window"},
      svg("title", {}, `${w.start.toFixed(1)}-${w.end.toFixed(1)} s: top probability ${conf.toFixed(2)}`)));
    if (conf < UNCERTAIN) out.append(svg("rect", {x: x(w.start), y: plotTop, width: Math.max(1, x(w.end) - x(w.start)), height: plotH,
      fill: "url(#hatch)", opacity: 0.45, class: "uncertain"}));
  }
  flush();
  for (const p of [0, 0.5, 1]) out.append(svg("text", {x: 4, y: y(p) + 4}, p.toFixed(1)));
  const step = [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600].find((s) => dur / s <= 10) || 7200;
  for (let t = 0; t <= dur + 1e-9; t += step) out.append(svg("text", {x: x(t) - 6, y: plotTop + plotH + 16}, `${t}s`));
  out.append(svg("text", {x: left, y: H - 4}, "top: emotion over time (grey: speech without a label); below: confidence of each window"));
  return out;
}

function shares(summary, labels) {
  return h("div", {class: "shares", id: "shares"}, labels.map((l) => h("div", {},
    h("span", {}, l), h("span", {class: "bar", style: `width:${(100 * (summary.share[l] || 0)).toFixed(1)}%;background:${colour(l)}`}),
    h("span", {}, pct(summary.share[l])))));
}

function facts(s) {
  const f = (name, value) => h("div", {}, h("span", {class: "muted"}, name), h("b", {}, value));
  return h("div", {class: "facts"}, f("length", `${s.duration_s.toFixed(1)} s`), f("speech", `${s.speech_s.toFixed(1)} s`),
    f("negative emotions", pct(s.negative_share)), f("arousal / valence", `${num(s.arousal)} / ${num(s.valence)}`),
    f("mean confidence", s.confidence === null ? "-" : s.confidence.toFixed(2)), f("uncertain", pct(s.uncertain_share)));
}

async function sessionPage(sid) {
  const info = await model();
  const s = await api(`/sessions/${sid}`);
  const person = await api(`/people/${s.person_id}`);
  const head = [h("p", {}, h("a", {href: `#/person/${person.id}`}, `\u2190 ${person.name}`)),
    h("h2", {}, `${s.recording}`, h("span", {class: "muted"}, ` \u00b7 ${s.date.replace("T", " ")}`)), notice(info)];
  const del = h("button", {type: "button", class: "danger", onclick: async () => {
    if (!confirm("Delete this session, its recording and results?")) return;
    await api(`/sessions/${sid}`, {method: "DELETE"}); status("Session deleted."); location.hash = `#/person/${person.id}`; }}, "Delete session");
  if (s.status !== "done") {
    const parts = [...head, h("p", {id: "session-status"}, `Status: ${s.status}`)];
    if (s.error) parts.push(h("p", {class: "error"}, s.error));
    if (s.status === "queued" || s.status === "running") {
      const progress = h("progress", {max: 1, value: 0});
      parts.push(progress);
      followJob(s.job_id, progress).then(() => route(), (e) => status(e.message, true));
    }
    show(...parts, h("div", {class: "row"}, del));
    return;
  }
  const tl = await api(`/sessions/${sid}/files/timeline.json`);
  const summary = tl.summary;
  const png = h("img", {class: "plot", alt: `timeline plot of ${s.recording}`, id: "timeline-png"});
  blobUrl(`/sessions/${sid}/files/timeline.png`).then((u) => { png.src = u; }, () => {});
  const reportBox = h("div", {});
  const reportButton = h("button", {type: "button", class: "secondary", id: "open-report", onclick: async () => {
    reportBox.replaceChildren(await reportFrame(`/sessions/${sid}/files/report.html`, "analysis report")); reportButton.hidden = true; }}, "Show the full report");
  const body = summary.windows ? [
    h("h3", {}, "Timeline"), legend(tl.labels), h("div", {class: "scroll"}, timelineSvg(tl)),
    h("h3", {}, "Share of speech time per emotion (strict)"), shares(summary, tl.labels), facts(summary),
    adaptedBlock(summary, s.baseline, tl.labels), voicesLine(s.voice)]
    : [h("p", {class: "notice", id: "no-speech"}, "No speech was detected in this recording, so nothing was classified.")];
  show(...head, accuracyLine(info), ...body,
    h("details", {}, h("summary", {}, "Plot"), png),
    h("div", {class: "row"}, reportButton, del), reportBox);
}

function voicesLine(voice) {
  if (!voice || !voice.speakers) return h("span", {});
  if (voice.matched === null) return h("p", {class: "muted", id: "voices"}, `${voice.speakers} voice(s) heard.`);
  return h("p", {class: voice.matched ? "muted" : "error", id: "voices"}, `${voice.speakers} voice(s) heard; `
    + (voice.matched ? "the person's voice is one of them (its turns are theirs)." : "none matches the person's voice profile: flagged, left out of their trend."));
}

// The result adapted to the person beside the strict one, or why there is none yet.
function adaptedBlock(summary, baseline, labels) {
  if (summary.adapted) {
    const a = summary.adapted;
    return h("div", {id: "adapted"}, h("h3", {}, "Adapted to the person"),
      h("p", {class: "muted"}, `An adapted result: ${a.label} (the model's feature statistics moved toward this `
        + "person's own voice; no labels used). The strict result above is the model as shipped."),
      shares(a, labels), h("p", {}, `Negative emotions: adapted ${pct(a.negative_share)}, strict ${pct(summary.negative_share)}.`));
  }
  const why = baseline && baseline.why_not && baseline.why_not.length ? baseline.why_not.join("; ") : "no other analysed session of this person yet";
  return h("p", {class: "muted", id: "adapted"}, `No personal baseline for this session yet: ${why}. Only the strict result is shown.`);
}

// A person's voice profile: whether there is one, and enrolling or removing it.
function voiceBlock(person) {
  const file = h("input", {type: "file", id: "voice-file", accept: "audio/*"});
  const enrol = h("button", {type: "submit", id: "enrol-voice"}, "Enrol their voice");
  const form = h("form", {onsubmit: async (e) => {
    e.preventDefault();
    if (!file.files.length) { status("Choose a recording of this person alone first.", true); return; }
    const body = new FormData();
    body.append("file", file.files[0], file.files[0].name);
    try { status("Enrolling..."); await api(`/people/${person.id}/voice`, {method: "POST", body}); status("Voice enrolled."); route(); }
    catch (err) { status(err.message, true); }
  }}, h("label", {for: "voice-file"}, "A recording of this person alone (a few calm sentences)"), file, h("div", {class: "row"}, enrol));
  if (!person.has_voice) return h("div", {id: "voice"}, h("p", {class: "muted"}, "No voice profile: every session counts whole, "
    + "whoever speaks in it. Enrol this person's voice to count only their turns in sessions with several voices."), form);
  const remove = h("button", {type: "button", class: "secondary", onclick: async () => {
    await api(`/people/${person.id}/voice`, {method: "DELETE"}); status("Voice profile deleted."); route(); }}, "Delete the voice profile");
  return h("div", {id: "voice"}, h("p", {class: "muted"}, `Voice profile: enrolled (${person.voice_source || "enrolment"}`
    + (person.voice_seconds ? `, ${person.voice_seconds.toFixed(0)} s of speech` : "") + "). Sessions count only the voice that "
    + "matches it; the others show as \"other\", and a session without it is flagged and left out of the trend."), h("div", {class: "row"}, remove));
}

function baselineLine(b) {
  if (b.used) return h("p", {class: "muted", id: "baseline"}, `Personal baseline in use for ${b.sessions} session(s) (${b.method}): `
    + "each is also scored adapted to this person's other sessions (dotted line, \"adapted\" column), an adapted result "
    + "beside the strict one (solid bars and dashed line: the model as shipped).");
  return h("p", {class: "muted", id: "baseline"}, `No personal baseline yet: ${b.why_not.join("; ")}. The trend shows strict results only.`);
}

// -- people -------------------------------------------------------------------------------------------
async function peoplePage() {
  const people = await api("/people");
  const name = h("input", {type: "text", id: "new-person", maxlength: 200, required: true});
  const form = h("form", {onsubmit: async (e) => {
    e.preventDefault();
    const p = await api("/people", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({name: name.value})});
    location.hash = `#/person/${p.id}`; }},
  h("label", {for: "new-person"}, "Add a person (a pseudonym is fine)"), name, h("div", {class: "row"}, h("button", {type: "submit"}, "Add")));
  show(h("h2", {}, "People"), people.length ? h("ul", {class: "plain", id: "people"}, people.map((p) =>
    h("li", {}, h("a", {href: `#/person/${p.id}`}, p.name), h("span", {class: "muted"}, ` \u00b7 ${p.sessions} session(s)`))))
    : h("p", {}, "Nobody yet."), form);
}

function trendSvg(rows, labels) {
  const W = 900, H = 260, left = 40, right = 10, top = 10, plotH = 180;
  const n = rows.length, slot = (W - left - right) / Math.max(n, 1), bw = Math.min(60, slot * 0.6);
  const y = (v) => top + plotH * (1 - v);
  const out = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", id: "trend",
    "aria-label": `Share of speech time per emotion in ${n} sessions, and the negative share`});
  rows.forEach((r, i) => {
    let base = 0;
    const cx = left + slot * (i + 0.5);
    for (const l of labels) {
      const v = r[`share_${l}`] || 0;
      if (v > 0) out.append(svg("rect", {x: cx - bw / 2, y: y(base + v), width: bw, height: plotH * v, fill: colour(l)},
        svg("title", {}, `${r.date.slice(0, 10)}: ${l} ${pct(v)}`)));
      base += v;
    }
    out.append(svg("text", {x: cx - bw / 2, y: top + plotH + 16}, r.date.slice(0, 10)));
    out.append(svg("text", {x: cx - bw / 2, y: top + plotH + 30}, String(r.recording.slice(11, 29))));
  });
  const line = (key, attrs, cls) => {
    const pts = rows.map((r, i) => r[key] === null || r[key] === undefined ? null : `${left + slot * (i + 0.5)},${y(r[key])}`).filter(Boolean);
    if (!pts.length) return;
    out.append(svg("polyline", {points: pts.join(" "), fill: "none", "stroke-width": 2, class: cls, ...attrs}));
    for (const p of pts) { const [cx, cy] = p.split(","); out.append(svg("circle", {cx, cy, r: 4, fill: attrs.stroke, class: cls})); }
  };
  line("negative_share", {stroke: "#000", "stroke-dasharray": "5 3"}, "strict");
  line("adapted_negative_share", {stroke: "#1f6fb5", "stroke-dasharray": "1 3"}, "adapted");
  for (const p of [0, 0.5, 1]) out.append(svg("text", {x: 4, y: y(p) + 4}, pct(p).replace(".0 ", " ")));
  out.append(svg("text", {x: left, y: H - 4}, "bars: share of speech time per emotion (strict); dashed: negative share, strict; dotted blue: adapted to the person"));
  return out;
}

async function personPage(pid) {
  const info = await model();
  const person = await api(`/people/${pid}`);
  const sessions = await api(`/people/${pid}/sessions`);
  const trend = await api(`/people/${pid}/trend`);
  const list = sessions.length ? h("div", {class: "scroll"}, h("table", {id: "sessions"},
    h("tr", {}, ["date", "recording", "status", "top emotion", "negative"].map((c) => h("th", {scope: "col"}, c))),
    sessions.map((s) => {
      const top = s.summary && s.summary.windows ? Object.entries(s.summary.share).sort((a, b) => b[1] - a[1])[0][0] : "-";
      return h("tr", {}, h("td", {}, s.date.replace("T", " ")), h("td", {}, h("a", {href: `#/session/${s.id}`}, s.recording)),
        h("td", {}, s.status), h("td", {}, top), h("td", {}, s.summary ? pct(s.summary.negative_share) : "-"));
    }))) : h("p", {}, "No sessions yet. ", h("a", {href: "#/"}, "Upload a recording"), ".");
  const parts = [h("h2", {}, person.name), notice(info), accuracyLine(info), voiceBlock(person), h("h3", {}, "Sessions"), list];
  if (trend.sessions.length) {
    const png = h("img", {class: "plot", alt: `trend plot of ${person.name}`, id: "trend-png"});
    blobUrl(`/people/${pid}/trend.png`).then((u) => { png.src = u; }, () => {});
    const reportBox = h("div", {});
    const reportButton = h("button", {type: "button", class: "secondary", id: "open-person-report", onclick: async () => {
      reportBox.replaceChildren(await reportFrame(`/people/${pid}/report.html`, "report across sessions")); reportButton.hidden = true; }},
    "Show the report across sessions");
    parts.push(h("h3", {}, "Trend across sessions"), h("div", {class: "legend"},
      trend.labels.map((l) => h("span", {}, h("i", {class: "swatch", style: `background:${colour(l)}`}), l))),
    h("div", {class: "scroll"}, trendSvg(trend.sessions, trend.labels)),
    baselineLine(trend.baseline),
    h("div", {class: "scroll"}, h("table", {id: "trend-table"},
      h("tr", {}, ["date", "negative share (strict)", "negative share (adapted)", "adapted to", "arousal", "valence", "confidence"]
        .map((c) => h("th", {scope: "col"}, c))),
      trend.sessions.map((r) => h("tr", {}, h("td", {}, r.date.replace("T", " ")), h("td", {}, pct(r.negative_share)),
        h("td", {}, r.adapted_negative_share == null ? "-" : pct(r.adapted_negative_share)),
        h("td", {}, r.adapted || (trend.baselines[r.session_id] || {why_not: []}).why_not.join("; ") || "-"),
        h("td", {}, num(r.arousal)), h("td", {}, num(r.valence)), h("td", {}, r.confidence === null ? "-" : r.confidence.toFixed(2)))))),
    h("details", {}, h("summary", {}, "Plot"), png), h("div", {class: "row"}, reportButton), reportBox);
  }
  for (const x of trend.excluded) parts.push(h("p", {class: x.flag === "voice" ? "error" : "muted"},
    `${x.flag === "voice" ? "Flagged" : "Left out of the trend"}: ${x.reason}`));
  parts.push(h("div", {class: "row"}, h("a", {class: "button", href: "#/"}, "Upload a recording"),
    h("button", {type: "button", class: "danger", onclick: async () => {
      if (!confirm(`Delete ${person.name} with all sessions and results?`)) return;
      await api(`/people/${pid}`, {method: "DELETE"}); status("Deleted."); location.hash = "#/people"; }}, "Delete person")));
  show(...parts);
}

// -- routing ------------------------------------------------------------------------------------------
async function route() {
  clearTimeout(pollTimer);
  document.getElementById("signout").hidden = !token();
  if (!token()) { tokenForm(); return; }
  const [, page, id] = (location.hash || "#/").split("/");
  try {
    if (page === "people") await peoplePage();
    else if (page === "person" && id) await personPage(id);
    else if (page === "session" && id) await sessionPage(id);
    else if (page === "model") await modelPage();
    else await uploadPage();
  } catch (err) {
    if (err.status === 401) return;
    show(h("h2", {}, err.status === 404 ? "Not found" : "Something went wrong"), h("p", {class: "error"}, err.message));
  }
}
window.addEventListener("hashchange", () => { status(""); route(); });
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("signout").addEventListener("click", forgetToken);
  route();
});
