// The per-frame part of stylekit's temporal stabiliser (stylekit/temporal.py:
// unchanged, stabilise_input, stabilise_output), for a page that stylizes a
// webcam frame by frame. Frames are RGBA arrays of width * height * 4 values
// in 0-255 (a canvas's ImageData.data); alpha is ignored and returned as 255.
//
//   const s = stabiliseInput(frame, reference, width, height);  // send s.input to the stylizer
//   const shown = stabiliseOutput(stylized, previousShown, s.keep, width, height);
//   reference = s.input; previousShown = shown;                   // for the next frame
//
// The first frame has no reference: send it as it is and show its stylization.
"use strict";

const SMOOTH_DEFAULTS = Object.freeze({
  strength: 1.0, inputStrength: 1.0, low: 0.01, high: 0.04, noise: 0.03, radius: 2, dilate: 1, movingCamera: 0.25,
});

function mirror(i, n) {
  // torch's "reflect" padding: -1 -> 1, n -> n - 2
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

function boxMean(plane, width, height, radius) {
  if (radius <= 0) return plane;
  const k = 2 * radius + 1;
  const mirrored = radius < Math.min(width, height);
  const at = (i, n) => (mirrored ? mirror(i, n) : Math.min(Math.max(i, 0), n - 1));
  const rows = new Float64Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let sum = 0;
      for (let d = -radius; d <= radius; d++) sum += plane[y * width + at(x + d, width)];
      rows[y * width + x] = sum;
    }
  }
  const out = new Float64Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let sum = 0;
      for (let d = -radius; d <= radius; d++) sum += rows[at(y + d, height) * width + x];
      out[y * width + x] = sum / (k * k);
    }
  }
  return out;
}

function maxFilter(plane, width, height, radius) {
  if (radius <= 0) return plane;
  const out = new Float64Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let m = -Infinity;
      for (let dy = -radius; dy <= radius; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= height) continue;
        for (let dx = -radius; dx <= radius; dx++) {
          const xx = x + dx;
          if (xx >= 0 && xx < width) m = Math.max(m, plane[yy * width + xx]);
        }
      }
      out[y * width + x] = m;
    }
  }
  return out;
}

// 1 where the frame did not change against the reference, 0 where it changed (per pixel).
function unchanged(content, reference, width, height, config = SMOOTH_DEFAULTS) {
  const c = { ...SMOOTH_DEFAULTS, ...config };
  const n = width * height;
  const signed = [0, 1, 2].map(() => new Float64Array(n));
  const absolute = new Float64Array(n);
  for (let p = 0; p < n; p++) {
    for (let ch = 0; ch < 3; ch++) {
      const d = (content[4 * p + ch] - reference[4 * p + ch]) / 255;
      signed[ch][p] = d;
      absolute[p] += Math.abs(d) / 3;
    }
  }
  const means = signed.map((plane) => boxMean(plane, width, height, c.radius));
  const absMean = boxMean(absolute, width, height, c.radius);
  const change = new Float64Array(n);
  for (let p = 0; p < n; p++) {
    const coherent = (Math.abs(means[0][p]) + Math.abs(means[1][p]) + Math.abs(means[2][p])) / 3;
    change[p] = Math.max(coherent, absMean[p] - c.noise);
  }
  const widened = maxFilter(change, width, height, c.dilate);
  const keep = new Float32Array(n);
  for (let p = 0; p < n; p++) keep[p] = Math.min(Math.max((c.high - widened[p]) / (c.high - c.low), 0), 1);
  return keep;
}

// What to stylize: the frame, pulled towards the reference where it did not change; and the keep map.
function stabiliseInput(content, reference, width, height, config = SMOOTH_DEFAULTS) {
  const c = { ...SMOOTH_DEFAULTS, ...config };
  const keep = unchanged(content, reference, width, height, c);
  const input = new Float32Array(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    const w = c.inputStrength * keep[p];
    for (let ch = 0; ch < 3; ch++) input[4 * p + ch] = content[4 * p + ch] + w * (reference[4 * p + ch] - content[4 * p + ch]);
    input[4 * p + 3] = 255;
  }
  return { input, keep };
}

// Whether a quarter (movingCamera) or more of the frame changed: then nothing is held back.
function cameraMoving(keep, config = SMOOTH_DEFAULTS) {
  const c = { ...SMOOTH_DEFAULTS, ...config };
  let changed = 0;
  for (let p = 0; p < keep.length; p++) changed += 1 - keep[p];
  return changed / keep.length >= c.movingCamera;
}

// What to show: the previous shown output where the frame did not change (keep >= 0.5), unless
// the camera moved (cameraMoving).
function stabiliseOutput(output, previous, keep, width, height, config = SMOOTH_DEFAULTS) {
  const c = { ...SMOOTH_DEFAULTS, ...config };
  const n = width * height;
  const moving = cameraMoving(keep, c);
  const shown = new Float32Array(n * 4);
  for (let p = 0; p < n; p++) {
    const w = moving || keep[p] < 0.5 ? 0 : c.strength;
    for (let ch = 0; ch < 3; ch++) shown[4 * p + ch] = output[4 * p + ch] + w * (previous[4 * p + ch] - output[4 * p + ch]);
    shown[4 * p + 3] = 255;
  }
  return shown;
}

if (typeof module !== "undefined") module.exports = { SMOOTH_DEFAULTS, unchanged, stabiliseInput, stabiliseOutput, cameraMoving };
