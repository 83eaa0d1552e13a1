// edgeshop model in the browser with MediaPipe Tasks Vision. Everything is served by
// `edgeshop-web` (MediaPipe's bundle and wasm from node_modules): no CDN, no network.
//
// Query string (optional):  ?images=/images/a.jpg,/images/b.jpg  classifies those photos in turn
// and lists them (the test's mode);  ?camera=1  starts the camera without a click.
import { FilesetResolver, ImageClassifier } from "/mediapipe/vision_bundle.mjs";

const $ = (id) => document.getElementById(id);
const TOP_K = 3;
// What tests and the console can read: the ?images= results, the last photo, the camera's latest frame.
const state = (window.edgeshop = { results: [], last: null, camera: { frames: 0, top: [] } });

function setStatus(text, phase, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
  document.body.dataset.state = phase;
}

// edgeshop centre-crops a frame to the model input's aspect ratio (times crop_fraction)
// before resizing; MediaPipe stretches whatever it gets. Handing it that crop as
// regionOfInterest makes both see the same pixels. Same rule as edgeshop's crop_box().
function cropBox(width, height, input) {
  if (input.resize === "stretch") return { x: 0, y: 0, w: width, h: height };
  const target = input.width / input.height;
  let w = width, h = height;
  if (width / height > target) w = Math.max(1, Math.round(height * target));
  else h = Math.max(1, Math.round(width / target));
  w = Math.max(1, Math.round(w * input.crop_fraction));
  h = Math.max(1, Math.round(h * input.crop_fraction));
  return { x: Math.floor((width - w) / 2), y: Math.floor((height - h) / 2), w, h };
}

function regionOfInterest(width, height) {
  const b = cropBox(width, height, config.input);
  return { left: b.x / width, top: b.y / height, right: (b.x + b.w) / width, bottom: (b.y + b.h) / height };
}

function outlineCrop(width, height) {
  const b = cropBox(width, height, config.input);
  Object.assign($("crop").style, { left: `${(100 * b.x) / width}%`, top: `${(100 * b.y) / height}%`,
    width: `${(100 * b.w) / width}%`, height: `${(100 * b.h) / height}%` });
}

function topK(result) {
  const categories = result.classifications[0]?.categories ?? [];
  return categories.map((c) => ({ label: c.categoryName || String(c.index), score: c.score }));
}

// "1 photo", "2 photos".
const count = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const percent = (score) => `${Math.round(score * 100)}%`;

// The best match large (label and score), the runners-up below it with bars.
function showTop(top) {
  $("result").hidden = top.length === 0;
  $("top1").textContent = top[0]?.label ?? "";
  $("top1-score").textContent = top[0] ? percent(top[0].score) : "";
  $("top").replaceChildren(...top.slice(1).map(({ label, score }) => {
    const li = document.createElement("li");
    const bar = Object.assign(document.createElement("span"), { className: "bar" });
    bar.style.width = `${Math.round(score * 100)}%`;
    li.append(Object.assign(document.createElement("span"), { textContent: label }),
      Object.assign(document.createElement("span"), { textContent: percent(score) }), bar);
    return li;
  }));
}

const median = (values) => {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// The classifier has one running mode at a time: IMAGE for photos, VIDEO for the camera.
let runningMode = "IMAGE";
async function useMode(mode) {
  if (mode !== runningMode) {
    await classifier.setOptions({ runningMode: mode });
    runningMode = mode;
  }
}

async function classifyPhoto(url, name) {
  stopCamera();
  const img = $("photo");
  img.src = url;
  await img.decode();
  $("view").hidden = false;
  img.hidden = false;
  outlineCrop(img.naturalWidth, img.naturalHeight);
  await useMode("IMAGE");
  const started = performance.now();
  const result = classifier.classify(img, { regionOfInterest: regionOfInterest(img.naturalWidth, img.naturalHeight) });
  const ms = performance.now() - started;
  const top = topK(result);
  showTop(top);
  $("latency").textContent = `${ms.toFixed(1)} ms per classify (${name})`;
  state.last = { image: name, top, ms };
  return state.last;
}

let stream = null;
const videoTimes = [];

async function startCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    setStatus("The camera needs HTTPS or http://localhost (see the README: adb reverse or an HTTPS proxy).",
      "error", true);
    return;
  }
  stream = await navigator.mediaDevices.getUserMedia({
    video: { facingMode: "environment", width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false,
  });
  const video = $("video");
  video.srcObject = stream;
  await video.play();
  $("photo").hidden = true;
  $("view").hidden = false;
  video.hidden = false;
  $("camera").textContent = "Stop camera";
  await useMode("VIDEO");
  let lastTime = -1;
  const step = () => {
    if (!stream) return;
    if (video.currentTime !== lastTime && video.videoWidth > 0) {  // a new frame
      lastTime = video.currentTime;
      const { videoWidth: w, videoHeight: h } = video;
      outlineCrop(w, h);
      const started = performance.now();
      // Timestamps must increase from frame to frame: performance.now() does.
      const result = classifier.classifyForVideo(video, started, { regionOfInterest: regionOfInterest(w, h) });
      videoTimes.push(performance.now() - started);
      if (videoTimes.length > 30) videoTimes.shift();
      const top = topK(result);
      showTop(top);
      $("latency").textContent = `${median(videoTimes).toFixed(1)} ms per classify (median of the last `
        + `${count(videoTimes.length, "frame")}, ${w}x${h})`;
      Object.assign(state.camera, { frames: state.camera.frames + 1, top, width: w, height: h });
    }
    requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}

function stopCamera() {
  if (!stream) return;
  stream.getTracks().forEach((t) => t.stop());
  stream = null;
  $("video").hidden = true;
  $("camera").textContent = "Start camera";
}

async function classifyList(urls) {
  const rows = $("batch").tBodies[0];
  $("batch").hidden = false;
  for (const url of urls) {
    const r = await classifyPhoto(url, url.split("/").pop());
    state.results.push(r);
    const cells = [r.image, r.top[0]?.label ?? "", r.top[0]?.score.toFixed(3) ?? "", r.ms.toFixed(1)];
    rows.insertRow().append(...cells.map((text) => Object.assign(document.createElement("td"), { textContent: text })));
  }
  const ms = median(state.results.map((r) => r.ms));
  $("latency").textContent = `${ms.toFixed(1)} ms per classify (median of ${count(urls.length, "photo")})`;
}

let config, classifier;
try {
  setStatus("Loading MediaPipe and the model…", "loading");
  const response = await fetch("/model.json");
  if (!response.ok) throw new Error(`the server answered ${response.status} for /model.json`);
  config = await response.json();
  if (config.error) throw new Error(config.error);  // the model file was replaced by an unusable one
  // The card's display name (edgeshop-export --name), never a run folder's name.
  $("name").textContent = document.title = config.name;
  const wasm = await FilesetResolver.forVisionTasks("/mediapipe/wasm");
  classifier = await ImageClassifier.createFromOptions(wasm, {
    baseOptions: { modelAssetPath: config.model, delegate: "CPU" },
    runningMode,
    maxResults: TOP_K,
  });
  const products = config.labels ? `${count(config.labels, "product")}, ` : "";
  setStatus(`Ready (${products}${config.file}). Take a photo or start the camera.`, "ready");
  $("camera").disabled = false;
  $("file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (!file) return;
    const url = URL.createObjectURL(file);
    classifyPhoto(url, file.name)
      .catch((e) => setStatus(`${file.name}: ${e.message ?? e}`, "error", true))
      .finally(() => URL.revokeObjectURL(url));  // the decoded image stays on screen
  });
  $("camera").addEventListener("click", () => {
    if (stream) stopCamera();
    else startCamera().catch((e) => setStatus(`Camera: ${e}`, "error", true));
  });
  const query = new URLSearchParams(location.search);
  if (query.get("images")) {
    await classifyList(query.get("images").split(",").filter(Boolean));
    setStatus(`Classified ${count(state.results.length, "photo")} with ${config.name}.`, "done");
  }
  if (query.get("camera")) await startCamera();
} catch (error) {
  if (!config?.name) $("name").textContent = "edgeshop";
  setStatus(`Error: ${error.message ?? error}`, "error", true);
}
