#!/usr/bin/env python3
"""Natural-language recall load: preload a store, then time recall.

  recall_load.py preload BASE N [--projects P] [--wait-embeddings]
      Store N synthetic conversational memories (fixed seed: the same N give
      the same store) through POST /api/memory/remember, 8 connections, each
      with a speaker (`who`) and one of P projects (default 10). With
      --wait-embeddings, wait until every memory has its vector.
  recall_load.py latency BASE [--queries Q] [--project]
      Single client: Q natural-language questions, each new (so the query
      embedding is computed and no cached result exists), timed end to end.
      Prints p50/p95/p99 and the method the daemon used.
  recall_load.py questions N
      Print N questions (one JSON body a line), what recall_questions.lua
      sends.

Standard library only. SIGNET_TOKEN is sent as a bearer token when set.
"""
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse

NAMES = ["Caroline", "Melanie", "Jon", "Gina", "Evan", "Sam", "Priya", "Tomas", "Aiko", "Lena",
         "Marcus", "Nadia", "Oscar", "Rosa", "Felix", "Hana", "Ivan", "Julia", "Kofi", "Maya",
         "Noah", "Olga", "Pablo", "Quinn", "Ravi", "Sofia", "Theo", "Uma", "Victor", "Wendy"]
VERBS = [("visited", "visit"), ("painted", "paint"), ("bought", "buy"), ("fixed", "fix"),
         ("cooked", "cook"), ("found", "find"), ("planned", "plan"), ("sold", "sell"),
         ("watched", "watch"), ("built", "build"), ("lost", "lose"), ("borrowed", "borrow"),
         ("cleaned", "clean"), ("photographed", "photograph"), ("adopted", "adopt"),
         ("reviewed", "review"), ("designed", "design"), ("recorded", "record"),
         ("organized", "organize"), ("repaired", "repair")]
ADJ = ["old", "new", "red", "tiny", "huge", "wooden", "vintage", "broken", "shiny", "quiet",
       "handmade", "rusty", "electric", "secondhand", "colorful", "heavy"]
NOUNS = ["bicycle", "guitar", "garden", "kitchen", "painting", "camera", "boat", "bookshelf",
         "laptop", "piano", "tent", "sofa", "puppy", "kitten", "fence", "lamp", "quilt", "drone",
         "telescope", "aquarium", "motorcycle", "treehouse", "website", "podcast", "mural",
         "sculpture", "recipe", "novel", "album", "greenhouse", "workshop", "canoe", "violin",
         "blender", "backpack", "poster", "garage", "balcony", "chessboard", "kayak"]
PLACES = ["Tokyo", "Lisbon", "Boston", "the lake", "the market", "the museum", "the beach",
          "the library", "grandma's house", "the park", "the studio", "the office", "Denver",
          "the mountains", "the festival", "the harbor", "Chicago", "the campsite", "the gym",
          "the bakery"]
TIMES = ["yesterday", "last week", "last weekend", "this morning", "two days ago", "in May",
         "on Sunday", "last summer", "after work", "during the holidays"]
OPENERS = ["", "", "", "Guess what! ", "So, ", "Honestly, ", "I told you before, ", "Oh, ",
           "You won't believe it, "]
FEELINGS = ["It was amazing.", "It took forever.", "I was so proud.", "It felt great.",
            "Kind of stressful though.", "Everyone loved it.", "Still not finished.", ""]


def memory(rng, i, projects):
    name = rng.choice(NAMES)
    past, _ = rng.choice(VERBS)
    text = (f"{rng.choice(OPENERS)}I {past} a {rng.choice(ADJ)} {rng.choice(NOUNS)} at "
            f"{rng.choice(PLACES)} {rng.choice(TIMES)}. {rng.choice(FEELINGS)}").strip()
    return {"content": f"{text} (#{i})", "who": name, "project": f"conv-{i % projects}"}


def question(rng):
    name = rng.choice(NAMES)
    _, base = rng.choice(VERBS)
    noun = rng.choice(NOUNS)
    form = rng.randrange(4)
    if form == 0:
        return f"When did {name} {base} the {noun}?"
    if form == 1:
        return f"Where did {name} {base} a {rng.choice(ADJ)} {noun}?"
    if form == 2:
        return f"What did {name} {base} at {rng.choice(PLACES)}?"
    return f"Did {name} ever {base} a {noun} {rng.choice(TIMES)}?"


def conn(base):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60)


def headers():
    h = {"Content-Type": "application/json"}
    if os.environ.get("SIGNET_TOKEN"):
        h["Authorization"] = "Bearer " + os.environ["SIGNET_TOKEN"]
    return h


def call(c, method, path, body=None):
    c.request(method, path, body=None if body is None else json.dumps(body), headers=headers())
    r = c.getresponse()
    data = r.read()
    return r.status, json.loads(data) if data else None


def preload(base, n, projects, wait):
    rng = random.Random(42)
    bodies = [memory(rng, i, projects) for i in range(n)]
    errs = []
    t0 = time.time()

    def work(part):
        c = conn(base)
        for b in part:
            st, _ = call(c, "POST", "/api/memory/remember", b)
            if st != 200:
                errs.append(st)

    k = 8
    ths = [threading.Thread(target=work, args=(bodies[t::k],)) for t in range(k)]
    [t.start() for t in ths]
    [t.join() for t in ths]
    print(f"preloaded {n} memories in {time.time() - t0:.1f} s, errors {len(errs)}")
    if wait:
        c = conn(base)
        t0 = time.time()
        while True:
            st, s = call(c, "GET", "/api/embeddings/status")
            if st == 200 and s["pending"] == 0 and s["index"]["vectors"] >= s["embedded"]:
                break
            time.sleep(2)
        print(f"embeddings ready after {time.time() - t0:.0f} s")


def latency(base, queries, projects):
    rng = random.Random(7)
    c = conn(base)
    times, methods, found = [], set(), 0
    for i in range(queries):
        body = {"query": f"{question(rng)} ({i})", "limit": 10}
        if projects:
            body["project"] = f"conv-{i % projects}"
        t = time.perf_counter()
        st, r = call(c, "POST", "/api/memory/recall", body)
        times.append((time.perf_counter() - t) * 1e3)
        if st != 200:
            raise SystemExit(f"recall: {st} {r}")
        methods.add(r["method"])
        found += len(r["results"]) > 0
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(len(times) * q))]
    print(f"{queries} new questions, method {sorted(methods)}, {found} with results: "
          f"p50 {p(0.5):.1f} ms  p95 {p(0.95):.1f} ms  p99 {p(0.99):.1f} ms  max {times[-1]:.1f} ms")


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd = argv[1]
    opt = lambda name, default: int(argv[argv.index(name) + 1]) if name in argv else default
    if cmd == "preload":
        preload(argv[2], int(argv[3]), opt("--projects", 10), "--wait-embeddings" in argv)
    elif cmd == "latency":
        latency(argv[2], opt("--queries", 300), opt("--projects", 10) if "--project" in argv else 0)
    elif cmd == "questions":
        rng = random.Random(11)
        for _ in range(int(argv[2])):
            print(json.dumps({"query": question(rng), "limit": 10}))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
