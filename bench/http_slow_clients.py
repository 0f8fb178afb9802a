#!/usr/bin/env python3
"""quiver serve's HTTP front end while many slow clients are attached (issue 21).

Each slow client does what the issue's report did: it connects, sends a KServe v2 inference
request head (Content-Length 81) and one body byte, then nothing. With N of them attached, the
script measures on the same server:
  - new-client health: GET /v2/health/ready, each on a new connection (a hung listen queue shows
    here), p50 / p99 and how many got no answer within 2 s (it stops trying after 10 such);
  - kept-alive inference: POST /v2/models/ident/infer (JSON, FP32[1,4], identity backend) on one
    connection opened before the slow clients, p50 / p99;
  - how many slow connections the server still holds 1 s after they were opened, and 15 s after
    (past the default 10 s body deadline; the pre-issue-21 server held them for its 120 s timeout).
Baseline (N = 0) first, every binary in every round, rounds alternating; medians and ranges of
the rounds. Every server it starts is stopped, also on failure or interruption (and killed with
this script: PR_SET_PDEATHSIG).

Usage: bench/http_slow_clients.py [--rounds 3] [--slow 0,1000,3000] LABEL=QUIVER_BINARY...
Run it under `/work/tools/cpu bench` on the shared build machine.
"""
import argparse
import ctypes
import os
import re
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BODY = b'{"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'
CONFIG = """name: "ident"
backend: "identity"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
instance_group [ { count: 2 kind: KIND_CPU } ]
"""


def infer_request():
    return (b"POST /v2/models/ident/infer HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


def die_with_parent():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Server:
    def __init__(self, binary, repo, log):
        self.proc = subprocess.Popen(
            [binary, "serve", "--model-repository", repo, "--http-port", "0", "--grpc-port", "-1",
             "--metrics-port", "-1"], stdout=subprocess.PIPE, stderr=log, text=True,
            preexec_fn=die_with_parent)
        deadline = time.monotonic() + 30
        self.port = None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"http=\S+:(\d+)", line)
            if m and "quiver serve ready" in line:
                self.port = int(m.group(1))
                return
        self.stop()
        raise RuntimeError(f"{binary} did not become ready")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def read_reply(sock, timeout):
    """Reads one response (Content-Length framing); returns the status, or None on timeout/close."""
    sock.settimeout(timeout)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        need = int(m.group(1)) if m else 0
        while len(rest) < need:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            rest += chunk
        return int(head[9:12])
    except (socket.timeout, OSError):
        return None


def connect(port, timeout=2.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


def timed_calls(call, n, give_up=None):
    """Up to n calls of `call` (True: answered 200), until `give_up` failed: latencies (ms) of the
    answered ones, failures, tries."""
    lat, failed, tried = [], 0, 0
    while tried < n and (give_up is None or failed < give_up):
        tried += 1
        t0 = time.perf_counter()
        try:
            ok = call()
        except OSError:
            ok = False
        if ok:
            lat.append((time.perf_counter() - t0) * 1e3)
        else:
            failed += 1
    return lat, failed, tried


def new_client_health(port, n):
    """Health checks, each on a new connection; gives up after 10 got no answer within 2 s."""
    def call():
        with connect(port) as s:
            s.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            return read_reply(s, 2.0) == 200
    return timed_calls(call, n, give_up=10)


def kept_alive_infer(sock, n):
    req = infer_request()

    def call():
        sock.sendall(req)
        return read_reply(sock, 2.0) == 200
    return timed_calls(call, n)


def still_open(socks):
    """How many of socks the server has not closed (EOF / reset) yet."""
    n = 0
    for s in socks:
        try:
            s.setblocking(False)
            data = s.recv(4096)
            n += 0 if data == b"" else 1  # an answer (503) counts as open until closed
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def attach_slow(port, n, budget_s=5.0):
    """Opens n slow clients at once (non-blocking connects, one deadline for all): the sockets that
    connected and sent the head and one body byte, and how many did not connect in time."""
    head = infer_request()[: -len(BODY)] + BODY[:1]
    sel = selectors.DefaultSelector()
    pending = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_WRITE)
        pending.append(s)
    done, left = [], len(pending)
    deadline = time.monotonic() + budget_s
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
            s = key.fileobj
            sel.unregister(s)
            left -= 1
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                try:
                    s.send(head)
                    done.append(s)
                    continue
                except OSError:
                    pass
            s.close()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()
    return done, n - len(done)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def one_point(binary, repo, log, n_slow, samples):
    srv = Server(binary, repo, log)
    socks, keep = [], None
    try:
        keep = connect(srv.port)
        kept_alive_infer(keep, 50)  # warm
        new_client_health(srv.port, 20)
        rss0 = rss_kib(srv.proc.pid)
        t0 = time.monotonic()
        socks, connect_failed = attach_slow(srv.port, n_slow)
        attach_s = time.monotonic() - t0
        time.sleep(max(0.0, 1.0 - attach_s))
        held_1s = still_open(socks)
        rss_growth = (rss_kib(srv.proc.pid) - rss0) * 1024
        h_lat, h_fail, h_tried = new_client_health(srv.port, samples)
        i_lat, i_fail, _ = kept_alive_infer(keep, samples)
        held_15s = None
        if n_slow:
            time.sleep(max(0.0, 15.0 - (time.monotonic() - t0)))
            held_15s = still_open(socks)
        return dict(attach_s=attach_s, rss_growth=rss_growth, connect_failed=connect_failed, held_1s=held_1s, held_15s=held_15s,
                    h50=pct(h_lat, 0.5), h99=pct(h_lat, 0.99), h_fail=h_fail, h_tried=h_tried,
                    i50=pct(i_lat, 0.5), i99=pct(i_lat, 0.99), i_fail=i_fail)
    finally:
        for s in socks + ([keep] if keep else []):
            s.close()
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--slow", default="0,1000,3000")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("servers", nargs="+", help="LABEL=path/to/quiver")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    points = [int(x) for x in a.slow.split(",")]
    if max(points) + 256 > hard:
        sys.exit(f"NOT RUN: {max(points)} slow clients need {max(points) + 256} open files; the hard limit is {hard}")
    servers = [s.split("=", 1) for s in a.servers]
    results = {}
    with tempfile.TemporaryDirectory(prefix="quiver-slow-") as work:
        os.makedirs(f"{work}/repo/ident/1")
        with open(f"{work}/repo/ident/config.pbtxt", "w") as f:
            f.write(CONFIG)
        with open(f"{work}/server.log", "w") as log:
            for r in range(a.rounds):
                for n in points:
                    for label, binary in servers:
                        p = one_point(binary, f"{work}/repo", log, n, a.samples)
                        results.setdefault((label, n), []).append(p)
                        held = "" if p["held_15s"] is None else (
                            f", slow held {p['held_1s']} at 1 s, {p['held_15s']} at 15 s, server RSS "
                            f"+{p['rss_growth'] / 1024:.0f} KiB")
                        print(f"round {r + 1} {label} slow={n}: health new-conn p50 {p['h50']:.2f} p99 {p['h99']:.2f} ms "
                              f"({p['h_fail']} of {p['h_tried']} unanswered), infer kept-alive p50 {p['i50']:.2f} p99 {p['i99']:.2f} ms "
                              f"({p['i_fail']} failed){held}; {p['connect_failed']} slow connects failed", flush=True)

    def med(vals, fmt="{:.2f}"):
        vals = [v for v in vals if v is not None and v == v]
        if not vals:
            return "—"
        return (fmt + " ({}-{})").format(statistics.median(vals), fmt.format(min(vals)), fmt.format(max(vals)))

    print()
    print("| server | slow clients | held at 1 s | held at 15 s | RSS growth at 1 s, MiB | health, new conn p50 / p99 ms "
          "| unanswered | infer, kept-alive p50 / p99 ms | failed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in points:
        for label, _ in servers:
            ps = results[(label, n)]
            g = lambda k: [p[k] for p in ps]  # noqa: E731
            print(f"| {label} | {n} | {med(g('held_1s'), '{:.0f}') if n else '—'} | "
                  f"{med(g('held_15s'), '{:.0f}') if n else '—'} | "
                  f"{med([v / 2**20 for v in g('rss_growth')], '{:.1f}') if n else '—'} | {med(g('h50'))} / {med(g('h99'))} | "
                   f"{sum(g('h_fail'))} of {sum(g('h_tried'))} | {med(g('i50'))} / {med(g('i99'))} | "
                  f"{sum(g('i_fail'))} |")


if __name__ == "__main__":
    main()
