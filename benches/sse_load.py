#!/usr/bin/env python3
"""SSE load check: N idle subscribers plus one measuring subscriber while wrk
drives remember.lua. Prints delivery latency (receipt time minus the event's
created_at, which is stamped just before the commit) and the event count.
usage: sse_load.py BASE N_SUBSCRIBERS SECONDS"""
import json, socket, sys, threading, time, urllib.parse
from datetime import datetime

base, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
u = urllib.parse.urlsplit(base)

def connect():
    s = socket.create_connection((u.hostname, u.port))
    s.sendall(b"GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    return s

lat = []
stop = time.time() + secs
def drain(s):
    s.settimeout(1.0)
    while time.time() < stop:
        try:
            if not s.recv(65536):
                break
        except socket.timeout:
            continue
idle = [connect() for _ in range(n)]           # subscribers that read everything
stalled = connect()                             # one that never reads
drainers = [threading.Thread(target=drain, args=(s,), daemon=True) for s in idle]
[d.start() for d in drainers]
def measure():
    s = connect(); s.settimeout(1.0); buf = b""
    while time.time() < stop:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        now = time.time(); buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            for line in ev.split(b"\n"):
                if line.startswith(b"data:{"):
                    try:
                        d = json.loads(line[5:])
                        t = datetime.fromisoformat(d["created_at"].replace("Z", "+00:00")).timestamp()
                        lat.append((now - t) * 1000)
                    except Exception:
                        pass
t = threading.Thread(target=measure); t.start(); t.join()
lat.sort()
if lat:
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(f"SSE events={len(lat)} delivery_ms p50={p(0.5):.1f} p99={p(0.99):.1f} max={lat[-1]:.1f} idle_clients={n}")
else:
    print("SSE no events received")
for s in idle + [stalled]:
    s.close()
