#!/usr/bin/env python3
"""layers.py SRC_DIR: the module graph of hakmem's sources, as TAP lines.

A module is a name: src/FOLDER/NAME.c and src/FOLDER/NAME.h. Module A
depends on module B when A's files name an hk_ function or variable whose
definition (a body, or a defined global) is in B's files. The test fails
if the graph has a circle, and prints the layers (each module above every
module it depends on) as diagnostics. The folders are layers too, in the
order of FOLDERS: it fails if a module depends on one in a later folder,
or if src/ has a folder not in that list. It also fails for a source file
of more than MAX_LINES lines. With --self-test it first runs itself on
made-up trees, one with a circle and one with a module that calls up into
a later folder, and fails unless it sees both.
"""
import os
import re
import sys
import tempfile

MAX_LINES = 500
# The folders of src/, lowest layer first (Makefile.am says what each is).
FOLDERS = ['platform', 'base', 'small', 'large', 'api']

FUNC_DEF = re.compile(
    r'^[A-Za-z_][^\n;#]*?\b(hk_[a-z0-9_]+)\s*\([^;{]*?\)\s*(?:__attribute__\S*\s*)?\{',
    re.M | re.S)
VAR_DEF = re.compile(
    r'^(?:_Atomic\s+|__thread\s+|const\s+)*(?:struct\s+[a-z_]+|(?!struct\b|union\b|enum\b)[a-z_0-9]+)'
    r'\s+\**\s*(hk_[a-z0-9_]+)\s*(?:=|\[|;|__attribute__)', re.M)
COMMENT = re.compile(r'/\*.*?\*/|//[^\n]*', re.S)


def folders(src):
    return sorted(d for d in os.listdir(src)
                  if os.path.isdir(os.path.join(src, d)))


def sources(src):
    """(module, folder, path) of every .c and .h in src's folders."""
    for d in folders(src):
        for name in sorted(os.listdir(os.path.join(src, d))):
            if name.endswith('.c') or name.endswith('.h'):
                yield name[:-2], d, os.path.join(src, d, name)


def folder_of(src):
    return {mod: d for mod, d, _ in sources(src)}


def upward(src, deps):
    """'a (small) -> b (api): syms' for each dependency on a later folder."""
    where = folder_of(src)
    rank = {d: i for i, d in enumerate(FOLDERS)}
    out = []
    for a in sorted(deps):
        for b in sorted(deps[a]):
            if rank.get(where[b], -1) > rank.get(where[a], -1):
                out.append('%s (%s) -> %s (%s): %s' % (
                    a, where[a], b, where[b], ' '.join(sorted(deps[a][b]))))
    return out


def graph(src):
    texts = {}
    for mod, _, path in sources(src):
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


def write(tmp, path, text):
    os.makedirs(os.path.dirname(os.path.join(tmp, path)), exist_ok=True)
    with open(os.path.join(tmp, path), 'w') as f:
        f.write(text)


def self_test_circle():
    with tempfile.TemporaryDirectory() as tmp:
        write(tmp, 'base/a.c', 'int hk_a(void) { return hk_b(); }\n')
        write(tmp, 'base/b.c', 'int hk_b(void) { return hk_a(); }\n')
        write(tmp, 'small/c.c', 'int hk_c(void) { return hk_a(); }\n')
        return circles(graph(tmp)) == [['a', 'b']]


def self_test_upward():
    with tempfile.TemporaryDirectory() as tmp:
        write(tmp, 'base/a.h', 'static inline int hk_a(void) { return hk_d(); }\n')
        write(tmp, 'api/d.c', 'int hk_d(void) { return 1; }\n')
        write(tmp, 'api/e.c', 'int hk_e(void) { return hk_a(); }\n')
        found = upward(tmp, graph(tmp))
        return len(found) == 1 and found[0].startswith('a (base) -> d (api)')


def main():
    args = sys.argv[1:]
    tests = []
    if args and args[0] == '--self-test':
        args = args[1:]
        tests.append((self_test_circle(), 'the check finds a made-up circle', []))
        tests.append((self_test_upward(),
                      'the check finds a made-up call into a later folder', []))
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
    unknown = [d for d in folders(src) if d not in FOLDERS]
    tests.append((not unknown, 'every folder of src/ is a layer of FOLDERS (%s)'
                  % ' '.join(FOLDERS), ['unknown folder: ' + d for d in unknown]))
    up = upward(src, deps)
    tests.append((not up, 'no module depends on one in a later folder', up))
    for mod, _, path in sources(src):
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
        where = folder_of(src)
        for n, mods in enumerate(layers(deps)):
            print('# layer %d: %s' % (n, ' '.join('%s/%s' % (where[m], m) for m in mods)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
