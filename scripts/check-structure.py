#!/usr/bin/env python3
"""Checks two rules of the code's shape that the compiler does not:

1. No module cycle inside a crate. Every source file is a module; module A depends on module B
   when A's code names an item B defines (`use crate::b::Item`, `super::Item`, `b::Item(..)`),
   a re-export followed to the file that defines the item. `pub use` lines that only re-export
   are not dependencies, nor are `mod` declarations. Tests (`#[cfg(test)]` modules and the files
   they load) are left out. A strongly connected group of more than one file is a cycle.
2. No function longer than MAX_FN_LINES lines outside tests.

Usage: scripts/check-structure.py [ROOT]   (exit status 1 and a report when a rule is broken)
"""

import os
import re
import sys
from collections import defaultdict

MAX_FN_LINES = 120
CRATE_DIRS = ["crates/*/src", "src-tauri/src"]


def strip(text):
    """The source with comments, strings and char literals blanked (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            close = '"' + m.group(1)
            j = text.find(close, i + len(m.group(0)))
            j = n if j < 0 else j + len(close)
            out.append('"' + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + '"')
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append('"' + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + '"')
            i = j
        elif c == "'":
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|\\.|[^\\'])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:  # a lifetime
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(s, open_at):
    depth = 0
    for j in range(open_at, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(s) - 1


TEST_ATTR = re.compile(r"#\[cfg\((?:all\()?test\b[^\]]*\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*([;{])")
PATH_ATTR = re.compile(r'#\[path\s*=\s*"([^"]+)"\]')


def blank_tests(s, raw):
    """Blanks `#[cfg(test)] mod x { .. }`; returns the text and the files of `mod x;` tests."""
    test_files = []
    while True:
        m = TEST_ATTR.search(s)
        if not m:
            return s, test_files
        if m.group(2) == "{":
            end = matching_brace(s, m.end() - 1)
        else:
            end = m.end() - 1
            p = PATH_ATTR.search(raw[m.start():m.end()])
            test_files.append((p.group(1), True) if p else (m.group(1) + ".rs", False))
        s = s[:m.start()] + re.sub(r"[^\n]", " ", s[m.start():end + 1]) + s[end + 1:]


def module_path(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("lib", "main", "mod"):
        rel = rel[:-1]
    return tuple(rel)


def expand_use(tree, prefix=()):
    """`a::{b, c::{d, e as f}}` → [(a,b), (a,c,d), (a,c,e)]."""
    tree = tree.strip()
    if not tree:
        return []
    m = re.match(r"^((?:[\w]+\s*::\s*)*)\{(.*)\}$", tree, re.S)
    if m:
        head = tuple(x.strip() for x in m.group(1).split("::") if x.strip())
        body, parts, depth, cur = m.group(2), [], 0, ""
        for ch in body:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
        out = []
        for p in parts:
            out += expand_use(p, prefix + head)
        return out
    tree = re.sub(r"\s+as\s+\w+$", "", tree)
    segs = tuple(x.strip() for x in tree.split("::") if x.strip())
    return [prefix + segs]


class Crate:
    def __init__(self, src):
        self.src = src
        self.files = {}  # module path -> (file, stripped text)
        test_files = set()
        for dirpath, _, names in os.walk(src):
            for name in sorted(names):
                if not name.endswith(".rs"):
                    continue
                path = os.path.join(dirpath, name)
                raw = open(path, encoding="utf-8").read()
                text, tests = blank_tests(strip(raw), raw)
                for t, has_path in tests:
                    if has_path or name in ("lib.rs", "main.rs", "mod.rs"):
                        test_files.add(os.path.normpath(os.path.join(dirpath, t)))
                    else:
                        test_files.add(os.path.normpath(os.path.join(dirpath, name[:-3], t)))
                self.files[module_path(src, path)] = (path, text)
        for mod in list(self.files):
            if os.path.normpath(self.files[mod][0]) in test_files:
                del self.files[mod]
        # Items each module defines, and its re-exports: name -> target path.
        self.defines = {}
        self.reexports = {}
        self.uses = {}
        for mod, (_, text) in self.files.items():
            self.defines[mod] = set(re.findall(
                r"\b(?:fn|struct|enum|trait|type|const|static|union|macro_rules!)\s+(\w+)", text))
            re_map, use_list = {}, []
            for m in re.finditer(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text):
                for p in expand_use(m.group(2)):
                    alias = re.search(r"\bas\s+(\w+)", m.group(2))
                    if m.group(1):
                        name = p[-1]
                        re_map[name] = p
                    use_list.append((p, m.start(), bool(m.group(1))))
            self.reexports[mod] = re_map
            self.uses[mod] = use_list

    def is_module(self, path):
        return tuple(path) in self.files

    def absolute(self, mod, segs):
        """A path as written in module `mod`, made absolute (a tuple from the crate root)."""
        segs = list(segs)
        if not segs:
            return None
        base = list(mod)
        if segs[0] == "crate":
            base, segs = [], segs[1:]
        elif segs[0] == "self":
            segs = segs[1:]
        elif segs[0] == "super":
            while segs and segs[0] == "super":
                base, segs = base[:-1], segs[1:]
        elif self.is_module(base + [segs[0]]):
            pass
        else:
            return None
        return tuple(base + segs)

    def resolve(self, path, depth=0):
        """The module that defines the item `path` names (following re-exports), or None."""
        if path is None or depth > 20:
            return None
        path = list(path)
        k = len(path)
        while k > 0 and not self.is_module(path[:k]):
            k -= 1
        mod = tuple(path[:k])
        rest = path[k:]
        if not rest:
            return mod if self.is_module(mod) else None
        name = rest[0]
        if name in self.reexports.get(mod, {}) and name not in self.defines.get(mod, set()):
            target = self.absolute(mod, self.reexports[mod][name])
            if target is not None:
                found = self.resolve(list(target) + rest[1:], depth + 1)
                if found is not None:
                    return found
        return mod

    def edges(self):
        graph = defaultdict(set)
        why = {}
        for mod, (path, text) in self.files.items():
            refs = []
            for p, _, is_pub in self.uses[mod]:
                if not is_pub:
                    refs.append(p)
            # Paths in code (not in `use` lines).
            code = re.sub(r"\b(?:pub(?:\([^)]*\))?\s+)?use\s+[^;]+;", " ", text)
            code = re.sub(r"\b(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*;", " ", code)
            for m in re.finditer(r"(?<![\w:])((?:\w+\s*::\s*)+\w+)", code):
                refs.append(tuple(x.strip() for x in m.group(1).split("::")))
            for r in refs:
                target = self.resolve(self.absolute(mod, r))
                if target is not None and target != mod and target in self.files:
                    graph[mod].add(target)
                    why.setdefault((mod, target), "::".join(r))
        return graph, why


def sccs(nodes, graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    for v in nodes:
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def long_functions(crate):
    found = []
    for mod, (path, text) in crate.files.items():
        for m in re.finditer(r"\bfn\s+\w+", text):
            # The body: the first `{` after the signature at depth 0 of parens/brackets.
            j, depth = m.end(), 0
            while j < len(text):
                ch = text[j]
                if ch in "([<":
                    depth += 1 if ch != "<" else 0
                elif ch in ")]":
                    depth -= 1
                elif ch == ";" and depth == 0:
                    j = -1
                    break
                elif ch == "{" and depth == 0:
                    break
                j += 1
            if j < 0 or j >= len(text):
                continue
            end = matching_brace(text, j)
            start_line = text.count("\n", 0, m.start()) + 1
            end_line = text.count("\n", 0, end) + 1
            if end_line - start_line + 1 > MAX_FN_LINES:
                found.append((path, start_line, end_line - start_line + 1, m.group(0)))
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    import glob
    problems = 0
    for pattern in CRATE_DIRS:
        for src in sorted(glob.glob(os.path.join(root, pattern))):
            crate = Crate(src)
            graph, why = crate.edges()
            for comp in sccs(sorted(crate.files), graph):
                problems += 1
                comp_set = set(comp)
                names = sorted(os.path.relpath(crate.files[c][0], root) for c in comp)
                print(f"module cycle in {os.path.relpath(src, root)} ({len(comp)} files): {', '.join(names)}")
                for a in sorted(comp):
                    for b in sorted(graph[a]):
                        if b in comp_set:
                            print(f"    {'::'.join(a) or 'crate'} -> {'::'.join(b) or 'crate'}  ({why[(a, b)]})")
            for path, line, n, name in long_functions(crate):
                problems += 1
                print(f"{os.path.relpath(path, root)}:{line}: {name} is {n} lines (at most {MAX_FN_LINES})")
    if problems:
        print(f"{problems} problem(s)")
        sys.exit(1)
    print("structure: no module cycles, no function over", MAX_FN_LINES, "lines")


if __name__ == "__main__":
    main()
