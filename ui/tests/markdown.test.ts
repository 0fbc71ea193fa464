import { describe, expect, it } from "vitest";
import { parseInline, parseMarkdown, safeHref } from "../src/lib/markdown";

describe("parseMarkdown", () => {
  it("reads fenced code with its language, and an unclosed fence as code still streaming", () => {
    const blocks = parseMarkdown("Here:\n```python\nprint('<b>hi</b>')\n```\nDone.");
    expect(blocks).toEqual([
      { kind: "paragraph", inlines: [{ kind: "text", text: "Here:" }] },
      { kind: "code", lang: "python", text: "print('<b>hi</b>')", open: false },
      { kind: "paragraph", inlines: [{ kind: "text", text: "Done." }] },
    ]);
    expect(parseMarkdown("~~~\nlet x = 1;")).toEqual([{ kind: "code", lang: "", text: "let x = 1;", open: true }]);
  });

  it("reads headings, lists and quotes", () => {
    const blocks = parseMarkdown("# Title\n\n- one\n- **two**\n\n3. three\n4. four\n\n> said");
    expect(blocks[0]).toEqual({ kind: "heading", level: 1, inlines: [{ kind: "text", text: "Title" }] });
    expect(blocks[1]).toMatchObject({ kind: "list", ordered: false, items: [[{ kind: "text", text: "one" }], [{ kind: "strong" }]] });
    expect(blocks[2]).toMatchObject({ kind: "list", ordered: true, start: 3 });
    expect(blocks[3]).toMatchObject({ kind: "quote", blocks: [{ kind: "paragraph" }] });
  });

  it("keeps HTML as text", () => {
    const blocks = parseMarkdown('<img src=x onerror="alert(1)"><script>alert(2)</script>');
    expect(blocks).toEqual([
      { kind: "paragraph", inlines: [{ kind: "text", text: '<img src=x onerror="alert(1)"><script>alert(2)</script>' }] },
    ]);
  });
});

describe("parseInline", () => {
  it("reads code, bold, italics and escapes", () => {
    expect(parseInline("a `x*y` **b** *c* _d_ snake_case_name \\*e")).toEqual([
      { kind: "text", text: "a " },
      { kind: "code", text: "x*y" },
      { kind: "text", text: " " },
      { kind: "strong", children: [{ kind: "text", text: "b" }] },
      { kind: "text", text: " " },
      { kind: "em", children: [{ kind: "text", text: "c" }] },
      { kind: "text", text: " " },
      { kind: "em", children: [{ kind: "text", text: "d" }] },
      { kind: "text", text: " snake_case_name *e" },
    ]);
  });

  it("makes links of web addresses only", () => {
    expect(parseInline("[docs](https://example.com/a)")).toEqual([
      { kind: "link", href: "https://example.com/a", children: [{ kind: "text", text: "docs" }] },
    ]);
    expect(parseInline("[x](javascript:alert(1))")[0]).toMatchObject({ kind: "text" });
    expect(safeHref("data:text/html,<b>")).toBeNull();
    expect(safeHref("file:///etc/passwd")).toBeNull();
  });
});
