// Line charts as SVG paths: pure functions, so the scaling is unit-tested.

export type Point = [number, number];

export interface Bounds {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

/** The bounds of every point of every series (a flat range is widened so it can be drawn). */
export function bounds(series: Point[][]): Bounds | null {
  const all = series.flat().filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (all.length === 0) return null;
  let b = { x0: all[0][0], x1: all[0][0], y0: all[0][1], y1: all[0][1] };
  for (const [x, y] of all) {
    b = { x0: Math.min(b.x0, x), x1: Math.max(b.x1, x), y0: Math.min(b.y0, y), y1: Math.max(b.y1, y) };
  }
  if (b.x1 === b.x0) b.x1 = b.x0 + 1;
  if (b.y1 === b.y0) {
    const pad = Math.abs(b.y0) * 0.05 || 1;
    b.y0 -= pad;
    b.y1 += pad;
  }
  return b;
}

/** An SVG path through `points` in a `width` × `height` box (y grows downwards). */
export function linePath(points: Point[], b: Bounds, width: number, height: number): string {
  return points
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
    .map(([x, y], i) => {
      const px = ((x - b.x0) / (b.x1 - b.x0)) * width;
      const py = height - ((y - b.y0) / (b.y1 - b.y0)) * height;
      return `${i === 0 ? "M" : "L"}${px.toFixed(1)},${py.toFixed(1)}`;
    })
    .join(" ");
}

/** About `count` round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 4): number[] {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

/** The step with the lowest validation loss, if any step has one. */
export function bestStep(points: Point[]): number | null {
  let best: Point | null = null;
  for (const p of points) if (best === null || p[1] < best[1]) best = p;
  return best ? best[0] : null;
}

/** The point of `points` whose x is nearest `x` (for hover values), if any. */
export function nearest(points: Point[], x: number): Point | null {
  let best: Point | null = null;
  for (const p of points) {
    if (!Number.isFinite(p[0]) || !Number.isFinite(p[1])) continue;
    if (best === null || Math.abs(p[0] - x) < Math.abs(best[0] - x)) best = p;
  }
  return best;
}
