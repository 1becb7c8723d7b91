// The explorer's CAM viewer: original / heatmap / overlay drawn on canvases from one payload per sample, method and
// target. Layer, opacity and colormap change here with no server round trip; the view is reported back debounced.
//
// Streamlit (components v2) calls the default export again whenever the data changes, with the same parentElement
// and the same DOM, and keeps only the last cleanup for the unmount. So one CamViewer lives per parentElement and
// every call hands it the new data.
//
// The data carries the view only as the server last set it (data.view: a revision and the fields it sets), never
// the reports, so that it stays the same across the reruns reports cause (Streamlit then sends a reference, not
// the payload). What the user picked lives here, per viewer slot (data.view.slot), and outlives a remount.
//
// Numbers follow gradcam_core.render exactly where the inputs allow: bilinear upsampling with half-pixel centres
// (torch's align_corners=False, negative source coordinates clamped to 0), colour = LUT[rint(value * 255)], and
// overlay = rint((1 - a) * image + a * colour) in float32. The maps arrive as uint8 (value * 255, rounded), so a
// heatmap pixel can differ from the PNG download by one LUT step where the float map sat near a rounding boundary.

const VIEWERS = new WeakMap();
const VIEWS = new Map(); // viewer slot -> {view, revision}: the user's view and the server's last revision applied
const FIELDS = ["layer", "opacity", "colormap", "method"];
const INSTANCE = Math.random().toString(36).slice(2, 10);

export default function mountCamViewer(component) {
  const { data, parentElement, setStateValue } = component;
  let viewer = VIEWERS.get(parentElement);
  if (!viewer || !viewer.root.isConnected) {
    viewer?.destroy();
    viewer = new CamViewer(parentElement);
    VIEWERS.set(parentElement, viewer);
  }
  viewer.sendState = setStateValue;
  viewer.receive(data);
  // Called on unmount, and by Streamlit for a superseded call while the element stays: only the former ends it.
  return () => {
    if (!viewer.root.isConnected) {
      viewer.destroy();
      VIEWERS.delete(parentElement);
    }
  };
}

// The element's data is bytes (dashboard.cam_viewer.pack): a little-endian uint32 length, a JSON header whose
// `blobs` give [offset, length] of each binary part after it (image_png, maps, luts).
function unpack(bytes) {
  const size = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + size)));
  const body = bytes.subarray(4 + size);
  header.blobs = Object.fromEntries(
    Object.entries(header.blobs).map(([name, [start, length]]) => [name, body.subarray(start, start + length)]));
  return header;
}

function roundHalfEven(value) {
  const rounded = Math.round(value);
  return rounded - value === 0.5 && rounded % 2 !== 0 ? rounded - 1 : rounded;
}

// Source index and weight along one axis, as torch's upsample_bilinear2d (align_corners=False) computes them.
function axisWeights(inSize, outSize) {
  const low = new Int32Array(outSize);
  const high = new Int32Array(outSize);
  const weight = new Float64Array(outSize);
  const scale = inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    const source = Math.max((i + 0.5) * scale - 0.5, 0);
    const index = Math.floor(source);
    low[i] = index;
    high[i] = index < inSize - 1 ? index + 1 : index;
    weight[i] = source - index;
  }
  return { low, high, weight };
}

// (h, w) uint8 map -> (H, W) LUT indices: bilinear upsampling, then round half to even (numpy's rint).
function upsampleIndices(values, h, w, outH, outW) {
  const xs = axisWeights(w, outW);
  const ys = axisWeights(h, outH);
  const out = new Uint8Array(outH * outW);
  for (let y = 0; y < outH; y++) {
    const top = ys.low[y] * w;
    const bottom = ys.high[y] * w;
    const wy = ys.weight[y];
    for (let x = 0; x < outW; x++) {
      const x0 = xs.low[x];
      const x1 = xs.high[x];
      const wx = xs.weight[x];
      const upper = (1 - wx) * values[top + x0] + wx * values[top + x1];
      const lower = (1 - wx) * values[bottom + x0] + wx * values[bottom + x1];
      const value = (1 - wy) * upper + wy * lower;
      out[y * outW + x] = roundHalfEven(Math.min(Math.max(value, 0), 255));
    }
  }
  return out;
}

function formatOpacity(value) {
  return String(Math.round(value * 100) / 100);
}

async function decodePng(png, width, height) {
  const blob = new Blob([png], { type: "image/png" });
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  try {
    if (bitmap.width !== width || bitmap.height !== height) {
      throw new Error(`image is ${bitmap.width}×${bitmap.height}, the payload says ${width}×${height}`);
    }
    const canvas = new OffscreenCanvas(width, height);
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(bitmap, 0, 0);
    return context.getImageData(0, 0, width, height).data;
  } finally {
    bitmap.close();
  }
}

// Nearest-neighbour enlargement by an integer factor, RGBA -> RGBA (the explorer's figures.enlarge).
function enlarge(rgba, width, height, scale) {
  if (scale === 1) return new Uint8ClampedArray(rgba);
  const outW = width * scale;
  const out = new Uint8ClampedArray(outW * height * scale * 4);
  for (let y = 0; y < height * scale; y++) {
    const sourceRow = Math.floor(y / scale) * width;
    for (let x = 0; x < outW; x++) {
      const s = (sourceRow + Math.floor(x / scale)) * 4;
      const d = (y * outW + x) * 4;
      out[d] = rgba[s];
      out[d + 1] = rgba[s + 1];
      out[d + 2] = rgba[s + 2];
      out[d + 3] = 255;
    }
  }
  return out;
}

async function decodePayload(payload, blobs) {
  const { width, height, scale } = payload;
  const pixels = enlarge(await decodePng(blobs.image_png, width, height), width, height, scale);
  const bytes = blobs.maps;
  const layers = new Map();
  for (const [name, label, h, w, offset] of payload.layers) {
    layers.set(name, { name, label, h, w, values: bytes.subarray(offset, offset + h * w) });
  }
  return { id: payload.id, width, height, scale, outW: width * scale, outH: height * scale, pixels, layers };
}

class CamViewer {
  constructor(parent) {
    this.parent = parent;
    this.root = parent.querySelector('[data-testid="cam-viewer"]');
    const find = (selector) => this.root.querySelector(selector);
    this.controls = {
      layer: find('select[name="layer"]'),
      method: find('select[name="method"]'),
      opacity: find('input[name="opacity"]'),
      colormap: find('select[name="colormap"]'),
    };
    this.opacityValue = find(".opacity-value");
    this.canvases = {
      original: find(".picture-original"),
      heatmap: find(".picture-heatmap"),
      overlay: find(".picture-overlay"),
    };
    this.captions = {
      original: find(".caption-original"),
      heatmap: find(".caption-heatmap"),
      overlay: find(".caption-overlay"),
    };
    this.scaleBar = find(".scale-bar");
    this.status = find(".status");

    this.view = null; // what the user sees and asks for: {layer, opacity, colormap, method} (shared with VIEWS)
    this.shown = null; // the decoded payload on screen and what came with it (sample, method, target)
    this.pending = null; // the data of a payload being decoded
    this.luts = new Map();
    this.lutsId = null;
    this.optionKeys = {};
    this.indexCache = new Map(); // layer -> LUT indices at display size, for the payload shown
    this.drawn = {}; // keys of what each canvas holds, so a frame redraws only what changed
    this.frame = 0;
    this.reportTimer = 0;
    this.reports = 0;
    this.debounceMs = 250;
    this.mounting = true; // until the first data: a remount finds the user's view in VIEWS
    this.listen();
  }

  listen() {
    const { layer, method, opacity, colormap } = this.controls;
    this.handlers = [
      [layer, "change", () => this.userChanged({ layer: layer.value })],
      [colormap, "change", () => this.userChanged({ colormap: colormap.value })],
      [opacity, "input", () => this.userChanged({ opacity: Number(formatOpacity(Number(opacity.value))) })],
      [method, "change", () => this.userChanged({ method: method.value }, true)],
    ];
    for (const [element, type, handler] of this.handlers) element.addEventListener(type, handler);
  }

  destroy() {
    for (const [element, type, handler] of this.handlers) element.removeEventListener(type, handler);
    cancelAnimationFrame(this.frame);
    clearTimeout(this.reportTimer);
  }

  // ------------------------------------------------------------------------------------------------ data in
  receive(data) {
    if (data instanceof Uint8Array) data = unpack(data);
    if (!data || data.version !== 2) {
      this.setStatus("The viewer got no data it understands; reload the page.");
      return;
    }
    this.debounceMs = data.debounce_ms ?? this.debounceMs;
    this.receiveColormaps(data.colormaps, data.blobs.luts);
    this.setOptions("method", data.methods, data.method);
    this.controls.method.disabled = data.methods.length < 2;
    if (data.method_help) this.controls.method.title = data.method_help;
    const remembered = this.applyServerView(data.view);
    // A remount (the user came back from another page) may find a view the server never heard of: a report
    // still waiting for its debounce when the element went. Tell it once, so the URL and downloads agree.
    if (this.mounting && remembered && FIELDS.some((field) => this.view[field] !== data.view[field])) {
      this.reportTimer = setTimeout(() => this.report(), this.debounceMs);
    }
    this.mounting = false;
    if (this.shown?.payload.id === data.payload.id) {
      this.pending = null; // a payload still decoding is older than this one
      this.shown = { ...this.shown, meta: data };
      this.busy(this.view.method !== data.method);
      this.requestDraw();
      return;
    }
    this.pending = data;
    this.busy(true);
    decodePayload(data.payload, data.blobs).then(
      (payload) => {
        if (this.pending !== data) return; // a newer payload arrived meanwhile
        this.pending = null;
        this.indexCache.clear();
        this.shown = { payload, meta: data };
        this.setOptions("layer", data.payload.layers.map(([name, label]) => [name, label]), this.view.layer);
        if (!payload.layers.has(this.view.layer)) this.view.layer = data.view.layer;
        this.syncControls();
        this.busy(this.view.method !== data.method);
        this.requestDraw();
      },
      (error) => this.setStatus(`Could not draw the picture: ${error.message}`),
    );
  }

  receiveColormaps(colormaps, tables) {
    if (colormaps.id === this.lutsId) return;
    this.luts = new Map(colormaps.names.map((name, i) => [name, tables.slice(i * 768, (i + 1) * 768)]));
    this.lutsId = colormaps.id;
    this.drawn = {}; // same names may now mean other colours
    this.setOptions("colormap", colormaps.names.map((name) => [name, name]), this.view?.colormap);
  }

  // The server's view is a command only when its revision is new, and then only for the fields it changed;
  // otherwise it is older than what the user did since. A slot seen for the first time takes it whole.
  applyServerView(serverView) {
    let memory = VIEWS.get(serverView.slot);
    const remembered = memory !== undefined;
    if (memory === undefined) {
      memory = { view: Object.fromEntries(FIELDS.map((field) => [field, serverView[field]])), revision: 0 };
      VIEWS.set(serverView.slot, memory);
    } else if (serverView.revision > memory.revision) {
      for (const field of serverView.fields) memory.view[field] = serverView[field];
    }
    memory.revision = Math.max(memory.revision, serverView.revision);
    this.view = memory.view;
    if (!this.luts.has(this.view.colormap)) this.view.colormap = serverView.colormap;
    this.syncControls();
    return remembered;
  }

  setOptions(name, options, selected) {
    const select = this.controls[name];
    const key = JSON.stringify(options);
    if (this.optionKeys[name] !== key) {
      select.replaceChildren(...options.map(([value, label]) => new Option(label, value)));
      this.optionKeys[name] = key;
    }
    if (selected !== undefined && selected !== null) select.value = selected;
  }

  syncControls() {
    const { layer, method, opacity, colormap } = this.controls;
    if (this.shown?.payload.layers.has(this.view.layer)) layer.value = this.view.layer;
    method.value = this.view.method;
    colormap.value = this.view.colormap;
    opacity.value = String(this.view.opacity);
    this.opacityValue.textContent = Number(this.view.opacity).toFixed(2);
  }

  busy(flag) {
    this.root.setAttribute("aria-busy", flag ? "true" : "false");
    if (flag && this.shown && this.view.method !== this.shown.meta.method) {
      const title = this.controls.method.selectedOptions[0]?.textContent ?? this.view.method;
      this.setStatus(`Computing ${title} on the server…`);
    }
  }

  setStatus(text) {
    if (this.status.textContent !== text) this.status.textContent = text;
  }

  // ------------------------------------------------------------------------------------------------ user in
  userChanged(change, reportNow = false) {
    Object.assign(this.view, change);
    this.syncControls();
    if ("method" in change) this.busy(change.method !== this.shown?.meta.method);
    this.requestDraw();
    clearTimeout(this.reportTimer);
    if (reportNow) this.report();
    else this.reportTimer = setTimeout(() => this.report(), this.debounceMs);
  }

  report() {
    clearTimeout(this.reportTimer);
    this.reports += 1;
    const view = Object.fromEntries(FIELDS.map((field) => [field, this.view[field]]));
    // `report` makes every report a change, so the server's on_change runs even when a value comes back.
    this.sendState?.("view", { ...view, report: `${INSTANCE}:${this.reports}` });
  }

  // ------------------------------------------------------------------------------------------------ drawing
  requestDraw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  draw() {
    if (!this.shown) return;
    const { payload, meta } = this.shown;
    const layer = payload.layers.get(this.view.layer);
    const lut = this.luts.get(this.view.colormap);
    if (!layer || !lut) return;
    const { outW, outH } = payload;
    const opacity = Number(this.view.opacity);
    const heatKey = `${payload.id}|${layer.name}|${this.view.colormap}|${this.lutsId}`;
    const overlayKey = `${heatKey}|${opacity}`;

    if (this.drawn.original !== payload.id) {
      this.put(this.canvases.original, payload.pixels, outW, outH);
      this.drawn.original = payload.id;
    }
    if (this.drawn.heatmap !== heatKey) {
      this.heat = this.colourise(this.indices(payload, layer), lut);
      this.put(this.canvases.heatmap, this.heat, outW, outH);
      this.drawn.heatmap = heatKey;
    }
    if (this.drawn.overlay !== overlayKey) {
      this.put(this.canvases.overlay, this.blend(payload.pixels, this.heat, opacity), outW, outH);
      this.drawn.overlay = overlayKey;
    }
    if (this.drawn.scale !== this.view.colormap + this.lutsId) {
      this.drawScale(lut);
      this.drawn.scale = this.view.colormap + this.lutsId;
    }
    this.describe(payload, meta, layer, opacity);
  }

  indices(payload, layer) {
    let indices = this.indexCache.get(layer.name);
    if (!indices) {
      indices = upsampleIndices(layer.values, layer.h, layer.w, payload.outH, payload.outW);
      this.indexCache.set(layer.name, indices);
    }
    return indices;
  }

  colourise(indices, lut) {
    const out = new Uint8ClampedArray(indices.length * 4);
    for (let i = 0, d = 0; i < indices.length; i++, d += 4) {
      const s = indices[i] * 3;
      out[d] = lut[s];
      out[d + 1] = lut[s + 1];
      out[d + 2] = lut[s + 2];
      out[d + 3] = 255;
    }
    return out;
  }

  // (1 - a) * image + a * colour in float32, rounded half to even (Uint8ClampedArray), as render.overlay does.
  blend(image, heat, opacity) {
    const f = Math.fround;
    const a = f(opacity);
    const b = f(1 - opacity);
    const out = new Uint8ClampedArray(image.length);
    for (let i = 0; i < image.length; i += 4) {
      out[i] = f(f(b * image[i]) + f(a * heat[i]));
      out[i + 1] = f(f(b * image[i + 1]) + f(a * heat[i + 1]));
      out[i + 2] = f(f(b * image[i + 2]) + f(a * heat[i + 2]));
      out[i + 3] = 255;
    }
    return out;
  }

  put(canvas, rgba, width, height) {
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    canvas.getContext("2d").putImageData(new ImageData(rgba, width, height), 0, 0);
  }

  drawScale(lut) {
    const rgba = new Uint8ClampedArray(256 * 4);
    for (let i = 0; i < 256; i++) rgba.set([lut[i * 3], lut[i * 3 + 1], lut[i * 3 + 2], 255], i * 4);
    this.scaleBar.getContext("2d").putImageData(new ImageData(rgba, 256, 1), 0, 0);
  }

  // Captions, accessible names and the data-* attributes, only once the canvases hold the new picture.
  describe(payload, meta, layer, opacity) {
    const methodTitle = meta.method_title;
    const target = meta.target ? ` · ${meta.target}` : "";
    const opacityText = opacity.toFixed(2);
    this.captions.original.textContent = `${payload.height}×${payload.width}, as the model sees it`;
    this.captions.heatmap.textContent = `${methodTitle} · ${layer.name} (${layer.h}×${layer.w})${target}`;
    this.captions.overlay.textContent = `opacity ${opacityText} · ${this.view.colormap}`;
    const about = `${meta.sample_label}, ${methodTitle} at layer ${layer.name}${meta.target ? ` for ${meta.target}` : ""}`;
    this.canvases.original.setAttribute("aria-label", `Original: ${meta.sample_label}`);
    this.canvases.heatmap.setAttribute("aria-label", `Heatmap (${this.view.colormap}): ${about}`);
    this.canvases.overlay.setAttribute("aria-label", `Overlay at opacity ${opacityText}: ${about}`);
    const attributes = {
      "data-sample": String(meta.sample),
      "data-layer": layer.name,
      "data-method": meta.method,
      "data-target": meta.target ?? "",
      "data-opacity": formatOpacity(opacity),
      "data-colormap": this.view.colormap,
    };
    for (const [name, value] of Object.entries(attributes)) {
      if (this.root.getAttribute(name) !== value) this.root.setAttribute(name, value);
    }
    if (this.view.method === meta.method) {
      this.root.setAttribute("aria-busy", "false");
      this.setStatus(`Showing ${about}.`);
    }
  }
}
