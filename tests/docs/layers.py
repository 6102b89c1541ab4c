#!/usr/bin/env python3
"""layers.py SRC_DIR: the module graph of hakmem's sources, as TAP lines.

A module is a name: src/NAME.c and src/internal/NAME.h. Module A depends
on module B when A's files name an hk_ function or variable whose
definition (a body, or a defined global) is in B's files. The test fails
if the graph has a circle, and prints the layers (each module above every
module it depends on) as diagnostics. It also fails for a source file of
more than MAX_LINES lines. With --self-test it first runs itself on a
made-up tree that has a circle, and fails unless it sees that circle.
"""
import os
import re
import sys
import tempfile

MAX_LINES = 500

FUNC_DEF = re.compile(
    r'^[A-Za-z_][^\n;#]*?\b(hk_[a-z0-9_]+)\s*\([^;{]*?\)\s*(?:__attribute__\S*\s*)?\{',
    re.M | re.S)
VAR_DEF = re.compile(
    r'^(?:_Atomic\s+|__thread\s+|const\s+)*(?:struct\s+[a-z_]+|(?!struct\b|union\b|enum\b)[a-z_0-9]+)'
    r'\s+\**\s*(hk_[a-z0-9_]+)\s*(?:=|\[|;|__attribute__)', re.M)
COMMENT = re.compile(r'/\*.*?\*/|//[^\n]*', re.S)


def sources(src):
    for name in sorted(os.listdir(src)):
        if name.endswith('.c'):
            yield name[:-2], os.path.join(src, name)
    internal = os.path.join(src, 'internal')
    if os.path.isdir(internal):
        for name in sorted(os.listdir(internal)):
            if name.endswith('.h'):
                yield name[:-2], os.path.join(internal, name)


def graph(src):
    texts = {}
    for mod, path in sources(src):
        with open(path) as f:
            texts[path] = (mod, COMMENT.sub(' ', f.read()))
    defined = {}
    for path, (mod, text) in texts.items():
        for m in FUNC_DEF.finditer(text):
            defined.setdefault(m.group(1), mod)
        for m in VAR_DEF.finditer(text):
            if not m.group(0).lstrip().startswith('extern'):
                defined.setdefault(m.group(1), mod)
    deps = {mod: {} for mod, _ in texts.values()}
    for path, (mod, text) in texts.items():
        for sym in set(re.findall(r'\bhk_[a-z0-9_]+\b', text)):
            owner = defined.get(sym)
            if owner and owner != mod:
                deps[mod].setdefault(owner, set()).add(sym)
    return deps


def circles(deps):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in deps.get(v, {}):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(deps):
        if v not in index:
            visit(v)
    return out


def layers(deps):
    """Layer 0 depends on nothing; layer n on layers below n only."""
    level = {}

    def depth(v, seen=()):
        if v in level:
            return level[v]
        if v in seen:
            return 0
        level[v] = 1 + max((depth(w, seen + (v,)) for w in deps[v]),
                           default=-1)
        return level[v]

    for v in deps:
        depth(v)
    by = {}
    for v, n in level.items():
        by.setdefault(n, []).append(v)
    return [sorted(by[n]) for n in sorted(by)]


def self_test():
    with tempfile.TemporaryDirectory() as tmp:
        os.mkdir(os.path.join(tmp, 'internal'))
        with open(os.path.join(tmp, 'a.c'), 'w') as f:
            f.write('int hk_a(void) { return hk_b(); }\n')
        with open(os.path.join(tmp, 'b.c'), 'w') as f:
            f.write('int hk_b(void) { return hk_a(); }\n')
        with open(os.path.join(tmp, 'c.c'), 'w') as f:
            f.write('int hk_c(void) { return hk_a(); }\n')
        return circles(graph(tmp)) == [['a', 'b']]


def main():
    args = sys.argv[1:]
    tests = []
    if args and args[0] == '--self-test':
        args = args[1:]
        tests.append((self_test(), 'the check finds a made-up circle', []))
    src = args[0]
    deps = graph(src)
    found = circles(deps)
    notes = []
    for comp in found:
        for a in comp:
            for b in comp:
                if b in deps[a]:
                    notes.append('%s -> %s: %s' % (a, b, ' '.join(sorted(deps[a][b]))))
    tests.append((not found, 'no import circle among the modules of src/', notes))
    for mod, path in sources(src):
        with open(path) as f:
            n = sum(1 for _ in f)
        rel = os.path.relpath(path, os.path.dirname(src.rstrip('/')))
        tests.append((n <= MAX_LINES, '%s: %d lines (at most %d)' % (rel, n, MAX_LINES), []))
    print('1..%d' % len(tests))
    for i, (ok, name, lines) in enumerate(tests, 1):
        print('%s %d - %s' % ('ok' if ok else 'not ok', i, name))
        for line in lines:
            print('# ' + line)
    if not found:
        for n, mods in enumerate(layers(deps)):
            print('# layer %d: %s' % (n, ' '.join(mods)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
