"""Allocation-heavy Python workload for tests/real/python.sh.

Each stage hammers a different allocation pattern of CPython (many small
objects, big growing buffers, large hash tables, JSON text, sorting) and
prints one line of counts and a checksum.  The output must not depend on
the allocator, on addresses or on hash seeds, so that the run with hakmem
preloaded can be compared byte for byte with the run without it.
"""

import hashlib
import io
import json
import random
import sys


def digest(data):
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()[:16]


def report(stage, **fields):
    parts = " ".join(f"{k}={v}" for k, v in fields.items())
    print(f"{stage}: {parts}", flush=True)


def stage_json(rng, count):
    # Nested containers of mixed sizes: many dicts, lists and short strings
    # that all die together when the document is dropped.
    records = []
    for i in range(count):
        records.append({
            "id": i,
            "name": f"user-{rng.randrange(10**6):06d}",
            "score": rng.randrange(10**9) / 1000.0,
            "tags": [f"t{rng.randrange(50)}" for _ in range(rng.randrange(5))],
            "geo": {"x": rng.randrange(-180, 180), "y": rng.randrange(-90, 90)},
            "active": rng.random() < 0.5,
        })
    text = json.dumps(records, separators=(",", ":"), sort_keys=True)
    del records
    parsed = json.loads(text)
    tag_count = sum(len(r["tags"]) for r in parsed)
    active = sum(1 for r in parsed if r["active"])
    again = json.dumps(parsed, separators=(",", ":"), sort_keys=True)
    report("json", records=len(parsed), bytes=len(text), tags=tag_count,
           active=active, roundtrip=(again == text), sha=digest(text))
    return parsed


def stage_sort(rng, records):
    # Sorting allocates key tuples and a temporary array as large as the
    # input; ties are broken by id so the order is total.
    by_name = sorted(records, key=lambda r: (r["name"], r["id"]))
    by_score = sorted(records, key=lambda r: (-r["score"], r["id"]))
    ints = [rng.randrange(10**12) for _ in range(500_000)]
    ints.sort()
    words = sorted(f"{rng.randrange(36**6):x}" for _ in range(200_000))
    report("sort", first=by_name[0]["id"], last=by_name[-1]["id"],
           top=by_score[0]["id"], ints=digest(",".join(map(str, ints[::997]))),
           words=digest("".join(words[::101])))


def stage_dict(count):
    # One big table that is grown, read, half emptied and regrown.
    table = {i: (i * i) % 1_000_003 for i in range(count)}
    total = sum(table.values())
    for i in range(0, count, 2):
        del table[i]
    for i in range(count, count + count // 4):
        table[i] = -i
    report("dict", size=len(table), total=total, after=sum(table.values()))


class Node:
    __slots__ = ("value", "children")

    def __init__(self, value):
        self.value = value
        self.children = []


def stage_small_objects(rng, count):
    # Short-lived small objects of several shapes, freed in an order that
    # is unrelated to the order they were allocated in.
    nodes = [Node(i) for i in range(count)]
    for i in range(1, count):
        nodes[rng.randrange(i)].children.append(nodes[i])
    stack, depth_sum, seen = [(nodes[0], 0)], 0, 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        depth_sum += depth
        stack.extend((c, depth + 1) for c in node.children)
    pool = [(i, str(i), [i] * (i % 7), {"k": i}) for i in range(count)]
    rng.shuffle(pool)
    survivors = [item for item in pool if item[0] % 3 == 0]
    del pool, nodes
    sets = [frozenset(range(i % 40)) for i in range(count // 4)]
    report("objects", seen=seen, depth_sum=depth_sum,
           survivors=len(survivors), sets=sum(len(s) for s in sets))


def stage_strings(rng, count):
    # Buffers that grow one piece at a time: the realloc path.
    s = ""
    for i in range(count):
        s += chr(97 + i % 26) * (1 + i % 13)
    buf = bytearray()
    for i in range(count):
        buf += i.to_bytes(4, "little")
    out = io.StringIO()
    for i in range(count):
        out.write(f"{i}:{rng.randrange(1000)};")
    pieces = [str(i) * (i % 9) for i in range(count)]
    joined = "|".join(pieces)
    report("strings", concat=len(s), concat_sha=digest(s), buf=digest(bytes(buf)),
           stringio=digest(out.getvalue()), joined=len(joined))


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rng = random.Random(20240601)
    records = stage_json(rng, int(200_000 * scale))
    stage_sort(rng, records)
    del records
    stage_dict(int(1_000_000 * scale))
    stage_small_objects(rng, int(200_000 * scale))
    stage_strings(rng, int(300_000 * scale))
    report("done", ok=True)


if __name__ == "__main__":
    main()
