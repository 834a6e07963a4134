#!/usr/bin/env python3
"""The hostile clients of issue 13, for benches/hostile.sh: each runs until
killed, repeating its attack, against ws://ADDR (token bench-token).

    hostile.py ATTACK HOST:PORT [TOKEN]

ATTACK is one of:
  never-reads   a 0.4 subscriber that reads nothing, on a store another of
                its connections pushes 100 kB events to (20 a second);
                reconnects when dropped
  never-acks    a 0.4 live pull of a store with a long backlog that reads
                but never sends Ack, while its pusher keeps pushing
  pull-streams  5,000 pull requests on one socket, again and again
  trickle       200 connections sending a request head a byte every 500 ms
  one-address   connections from 127.0.0.2 without a request, until refused,
                kept at the limit
Standard library only.
"""
import base64, json, os, socket, sys, threading, time

ATTACK, ADDR = sys.argv[1], sys.argv[2]
TOKEN = sys.argv[3] if len(sys.argv) > 3 else "bench-token"
HOST, PORT = ADDR.rsplit(":", 1)
PORT = int(PORT)


def path(store):
    payload = json.dumps({"authToken": TOKEN}, separators=(",", ":"))
    from urllib.parse import quote
    return f"/sync?storeId={store}&payload={quote(payload)}&transport=ws"


def connect(source=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if source:
        s.bind((source, 0))
    s.connect((HOST, PORT))
    return s


def ws_open(store, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect((HOST, PORT))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path(store)} HTTP/1.1\r\nHost: {ADDR}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        if not b:
            raise ConnectionError("closed during the handshake")
        head += b
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.decode(errors="replace"))
    return s


def frame(text):
    p = text.encode()
    mask = os.urandom(4)
    n = len(p)
    if n < 126:
        h = bytes([0x81, 0x80 | n])
    elif n < 65536:
        h = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        h = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
    return h + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(p))


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            raise ConnectionError("closed")
        out += b
    return out


def read_frame(s):
    h = recv_exact(s, 2)
    n = h[1] & 0x7F
    if n == 126:
        n = int.from_bytes(recv_exact(s, 2), "big")
    elif n == 127:
        n = int.from_bytes(recv_exact(s, 8), "big")
    return h[0] & 0x0F, recv_exact(s, n)


def pull(rid, store, live=True):
    return json.dumps({"_tag": "Request", "id": rid, "tag": "SyncWsRpc.Pull", "headers": [],
                       "payload": {"storeId": store, "payload": {"authToken": TOKEN},
                                   "live": live, "cursor": {"_tag": "None"}}})


def push_frame(rid, store, seq, blob):
    ev = {"name": "big", "args": {"blob": blob}, "seqNum": seq, "parentSeqNum": seq - 1,
          "clientId": "hostile", "sessionId": "s"}
    return frame(json.dumps({"_tag": "Request", "id": rid, "tag": "SyncWsRpc.Push", "headers": [],
                             "payload": {"storeId": store, "payload": {"authToken": TOKEN},
                                         "batch": [ev], "backendId": {"_tag": "None"}}}))


def pusher(store, blob_bytes, stop_after=None, per_second=20):
    """Pushes events of blob_bytes to store, each after the previous answer,
    at most per_second (2 MB/s of 100 kB events: what fills a non-reader's
    queue within seconds; the pushes are not the attack)."""
    s = ws_open(store)
    blob = "x" * blob_bytes
    seq, sent = 1, 0
    while stop_after is None or sent < stop_after:
        if per_second:
            time.sleep(1 / per_second)
        s.sendall(push_frame(f"h{seq}", store, seq, blob))
        while True:
            _, data = read_frame(s)
            if b'"Exit"' in data:
                break
        if b'"Success"' in data:
            seq += 1
            sent += 1
        else:  # another incarnation pushed first: start over on the head
            m = json.loads(data)
            err = m["exit"]["cause"].get("error", {})
            seq = err.get("minimumExpectedNum", seq) + 1
    s.close()


def never_reads():
    store = f"hostile-nr-{os.getpid()}"
    threading.Thread(target=pusher, args=(store, 100_000), daemon=True).start()
    while True:
        try:
            s = ws_open(store, rcvbuf=4096)
            s.sendall(frame(pull("p", store)))
            # Read nothing; learn of the drop by a failing write.
            while True:
                time.sleep(1)
                s.sendall(frame('{"_tag":"Ping"}'))
        except OSError:
            time.sleep(0.2)


def never_acks():
    store = f"hostile-na-{os.getpid()}"
    pusher(store, 100_000, stop_after=200, per_second=0)  # a backlog of ~25 pages
    threading.Thread(target=pusher, args=(store, 100_000), daemon=True).start()
    while True:
        try:
            s = ws_open(store)
            s.sendall(frame(pull("p", store)))
            s.settimeout(30)
            while True:
                read_frame(s)  # reads, never acks
        except OSError:
            time.sleep(0.2)


def pull_streams():
    store = f"hostile-ps-{os.getpid()}"
    while True:
        try:
            s = ws_open(store)
            def drain(s=s):
                try:
                    while True:
                        read_frame(s)
                except OSError:
                    pass
            reader = threading.Thread(target=drain, daemon=True)
            reader.start()
            for i in range(5000):
                s.sendall(frame(pull(f"p{i}", store)))
            time.sleep(1)
            s.close()
        except OSError:
            time.sleep(0.2)


def trickle():
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"

    def one():
        while True:
            try:
                s = connect()
                for b in head:
                    s.sendall(bytes([b]))
                    time.sleep(0.5)
            except OSError:
                pass
    for _ in range(200):
        threading.Thread(target=one, daemon=True).start()
    while True:
        time.sleep(60)


def one_address():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held = []
    while True:
        if len(held) % 100 == 0:  # drop the ones the server closed (head timeout)
            alive = []
            for h in held:
                try:
                    h.settimeout(0)
                    if h.recv(1) == b"":
                        h.close()
                        continue
                except (BlockingIOError, socket.timeout):
                    pass
                except OSError:
                    h.close()
                    continue
                alive.append(h)
            held = alive
        try:
            s = connect("127.0.0.2")
            s.settimeout(0.05)
            try:
                if s.recv(512):  # 429: at the limit; wait for places to free
                    s.close()
                    time.sleep(0.5)
                    continue
            except socket.timeout:
                pass
            held.append(s)
        except OSError:
            time.sleep(0.2)


{"never-reads": never_reads, "never-acks": never_acks, "pull-streams": pull_streams,
 "trickle": trickle, "one-address": one_address}[ATTACK]()
