#!/usr/bin/env python3
"""Steady mixed load against a running daemon; prints WAL size and memory
once a minute, so an unbounded WAL or a heap that keeps growing shows.

  soak.py BASE WORKSPACE PID [--minutes 15] [--rate 450] [--live 5000]

BASE is the daemon's URL, WORKSPACE its SIGNET_PATH (for the WAL file) and
PID its process id (for /proc/PID/status). First --live memories are
stored (unpaced, not timed); then the load, paced to --rate requests/s over
8 keep-alive connections plus one SSE reader: recall 30%, list 30%, patch
10%, remember 15% and delete 15% (so the live count holds at --live).
Each minute prints: minute, requests done, errors, WAL MB, RssAnon MB,
RSS MB. At the end: the growth of RssAnon per minute over the minutes after
the fifth (the plateau the issue asks for), and the largest WAL seen.

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

WORDS = ("deploy staging database cache token vault release branch review "
         "latency budget index vector schema backup incident pager rota "
         "meeting lunch travel tokyo berlin garden recipe guitar novel").split()


def arg(name, default):
    if name in sys.argv:
        return type(default)(sys.argv[sys.argv.index(name) + 1])
    return default


def status_of(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("RssAnon", "VmRSS"):
                out[k] = int(v.split()[0]) / 1024.0
    return out


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        sys.exit(2)
    base, workspace, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    minutes = arg("--minutes", 15)
    rate = arg("--rate", 450)
    live_target = arg("--live", 5000)
    u = urllib.parse.urlparse(base)
    headers = {"content-type": "application/json"}
    if os.environ.get("SIGNET_TOKEN"):
        headers["authorization"] = "Bearer " + os.environ["SIGNET_TOKEN"]
    wal = os.path.join(workspace, "memory", "memories.db-wal")

    ids = []
    ids_lock = threading.Lock()
    counts = {"done": 0, "errors": 0}
    count_lock = threading.Lock()
    stop = threading.Event()
    per_worker = rate / 8.0

    def text(rng):
        return " ".join(rng.choice(WORDS) for _ in range(12)) + f" {rng.random():.12f}"

    def worker(seed):
        rng = random.Random(seed)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        next_at = time.monotonic()
        while not stop.is_set():
            if not preload.is_set():
                next_at += 1.0 / per_worker
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            r = rng.random()
            with ids_lock:
                n = len(ids)
                victim = ids[rng.randrange(n)] if n else None
            if preload.is_set():
                r = 0.0 if n < live_target else 1.0
                if r:
                    return
            if r < 0.15 or victim is None or (r < 0.30 and n < live_target):
                method, path, body = "POST", "/api/memory/remember", {"content": text(rng)}
            elif r < 0.30:
                with ids_lock:
                    if victim in ids:
                        ids.remove(victim)
                method, path, body = "DELETE", f"/api/memory/{victim}?reason=soak", None
            elif r < 0.60:
                q = " ".join(rng.choice(WORDS) for _ in range(4))
                method, path, body = "POST", "/api/memory/recall", {"query": q, "limit": 10}
            elif r < 0.70:
                method, path, body = "PATCH", f"/api/memory/{victim}", {
                    "content": text(rng), "reason": "soak"}
            else:
                method, path, body = "GET", f"/api/memories?limit=50&offset={rng.randrange(100)}", None
            try:
                conn.request(method, path, json.dumps(body) if body is not None else None, headers)
                resp = conn.getresponse()
                data = resp.read()
                ok = resp.status < 400 or resp.status == 409
                if method == "POST" and path.endswith("remember") and resp.status == 200:
                    with ids_lock:
                        ids.append(json.loads(data)["id"])
            except Exception:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
            with count_lock:
                counts["done"] += 1
                counts["errors"] += 0 if ok else 1

    def sse_reader():
        while not stop.is_set():
            try:
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
                conn.request("GET", "/sse", headers=headers)
                resp = conn.getresponse()
                while not stop.is_set():
                    if not resp.readline():
                        break
            except Exception:
                time.sleep(1)

    preload = threading.Event()
    preload.set()
    loaders = [threading.Thread(target=worker, args=(1000 + i,), daemon=True) for i in range(8)]
    for t in loaders:
        t.start()
    for t in loaders:
        t.join()
    preload.clear()
    with count_lock:
        counts["done"] = counts["errors"] = 0
    print(f"preloaded {len(ids)} memories", flush=True)
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(8)]
    threads.append(threading.Thread(target=sse_reader, daemon=True))
    for t in threads:
        t.start()
    print("minute requests errors wal_mb rss_anon_mb rss_mb", flush=True)
    anon = []
    wal_max = 0.0
    start = time.monotonic()
    for minute in range(1, minutes + 1):
        end = start + 60 * minute
        while time.monotonic() < end:
            time.sleep(1)
            try:
                wal_max = max(wal_max, os.path.getsize(wal) / 1e6)
            except OSError:
                pass
        s = status_of(pid)
        try:
            w = os.path.getsize(wal) / 1e6
        except OSError:
            w = 0.0
        anon.append(s["RssAnon"])
        with count_lock:
            print(f"{minute} {counts['done']} {counts['errors']} {w:.1f} "
                  f"{s['RssAnon']:.1f} {s['VmRSS']:.1f}", flush=True)
    stop.set()
    if len(anon) > 6:
        tail = anon[5:]
        slope = (tail[-1] - tail[0]) / (len(tail) - 1)
        print(f"RssAnon growth after minute 5: {slope:+.2f} MB/min; largest WAL {wal_max:.1f} MB")
    else:
        print(f"largest WAL {wal_max:.1f} MB (run > 6 minutes for the growth figure)")


if __name__ == "__main__":
    main()
