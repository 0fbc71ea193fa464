import { describe, expect, it } from "vitest";
import { bestStep, bounds, linePath, nearest, ticks } from "../src/lib/chart";

describe("charts", () => {
  it("scales series into the box", () => {
    const b = bounds([[[0, 2], [10, 1]], [[5, 1.5]]])!;
    expect(b).toEqual({ x0: 0, x1: 10, y0: 1, y1: 2 });
    expect(linePath([[0, 2], [10, 1]], b, 100, 50)).toBe("M0.0,0.0 L100.0,50.0");
  });

  it("widens flat ranges and skips gaps", () => {
    const b = bounds([[[3, 4]]])!;
    expect(b.x1).toBeGreaterThan(b.x0);
    expect(b.y1).toBeGreaterThan(b.y0);
    expect(bounds([[]])).toBeNull();
    expect(linePath([[0, NaN], [1, 1]], { x0: 0, x1: 1, y0: 0, y1: 2 }, 10, 10)).toBe("M10.0,5.0");
  });

  it("picks round ticks and the best step", () => {
    expect(ticks(0, 1)).toEqual([0, 0.5, 1]);
    expect(ticks(0.9, 4.2)).toEqual([1, 2, 3, 4]);
    expect(bestStep([[10, 2.1], [20, 1.7], [30, 1.9]])).toBe(20);
    expect(bestStep([])).toBeNull();
  });
});

describe("nearest", () => {
  it("finds the point nearest a step, skipping values that cannot be drawn", () => {
    const pts: [number, number][] = [[1, 2], [5, NaN], [10, 0.5]];
    expect(nearest(pts, 4)).toEqual([1, 2]);
    expect(nearest(pts, 6)).toEqual([10, 0.5]);
    expect(nearest([], 3)).toBeNull();
  });
});
