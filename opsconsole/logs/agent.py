"""The aggregating agent: the small program sent to a server (``python3 -`` with this file on
stdin) that reads the access log there and ships summaries instead of lines (DESIGN §4).

Role: :mod:`opsconsole.logs.aggregate` sends this file's own text over the existing SSH
connection, parameters as one JSON argument; nothing is installed and nothing is written on the
server.  It parses with the console's own compiled regex (sent as a parameter), so a line counts
the same here as it does in the console.  Output is one JSON object per line on stdout; bytes
are carried as latin-1 text (every byte one character), so nothing is lost or re-encoded.

Two modes:

* ``follow``: follow the log from given offsets like ``tail -F`` (a rotated file is drained, a
  new one read from its start, a truncated one re-read from 0) and, every ``flush`` seconds,
  ship what was read: per log second its requests by status, and per dimension (client, path,
  user agent, method, subnet) its counts, past ``bucket_cap`` keys only the largest half (then
  a K-minimum-values sketch of that second's clients is shipped too, each hash once, and how
  many of the cut-off clients were new).  Each message carries the exact file offsets it
  covers, so a console that reconnects resumes where the last message ended: no line is lost
  or counted twice.
* ``read``: parse one byte range of the log and ship the parsed rows (each distinct value sent
  once, then referred to by number): what ``suggest`` and ``stats --since`` analyse.

Runs on servers we do not control: Python 3.6+ and the standard library only, no imports from
opsconsole; hence ``typing`` generics instead of the 3.9+/3.10+ spellings.  It ends by itself
when the console goes away (its next write fails; an idle stream writes once a second).
"""
# ruff: noqa: UP006, UP035, UP045

import base64
import hashlib
import heapq
import ipaddress
import json
import os
import re
import sys
import time
from collections import Counter
from stat import S_ISREG
from typing import Any, Dict, List, Optional, Set, Tuple

AGENT_VERSION = 1
MAX_KEPT_UNPARSED = 20
DIMS = ("client", "path", "agent", "method")
READ_BATCH = 4 << 20

_V6_HEAD = re.compile(rb"([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,4}):[0-9a-fA-F:.]*")


def emit(msg: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(msg, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def text(b: bytes) -> str:
    return b.decode("latin-1")


def subnet_of(client: bytes) -> bytes:
    """The /24 (IPv4) or /48 (IPv6) of a client, as opsconsole.stats.snapshot.subnet_of."""
    m = _V6_HEAD.fullmatch(client)
    if m:
        a, b, c = int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16)
        if c:
            return b"%x:%x:%x::/48" % (a, b, c)
        if b:
            return b"%x:%x::/48" % (a, b)
        return b"%x::/48" % a if a else b"::/48"
    try:
        addr = ipaddress.ip_address(client.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return client
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{addr}/48", strict=False)).encode()
    v4 = addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) else addr
    return str(ipaddress.ip_network(f"{v4}/24", strict=False)).encode()


def hash64(key: bytes) -> int:
    """opsconsole.stats.sketch.hash64: the console merges these with its own sketches."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


class Seen:
    """opsconsole.stats.sketch.SeenFilter: which clients are new (for the cut-off ones)."""

    def __init__(self, bits_log2: int = 22, max_age: float = 600.0) -> None:
        size = 1 << (bits_log2 - 3)
        self.cur, self.old = bytearray(size), bytearray(size)
        self.mask, self.limit = (1 << bits_log2) - 1, (1 << bits_log2) // 8
        self.taken, self.started, self.max_age = 0, None, max_age  # type: int, Optional[float], float

    def add_new(self, keys: List[bytes], now: float) -> int:
        if self.started is None:
            self.started = now
        elif self.taken >= self.limit or now - self.started >= self.max_age:
            self.old, self.cur = self.cur, bytearray(len(self.cur))
            self.taken, self.started = 0, now
        cur, old, mask = self.cur, self.old, self.mask
        new = 0
        for h in map(hash, keys):
            a, b = h & mask, (h >> 32) & mask
            ia, ma, ib, mb = a >> 3, 1 << (a & 7), b >> 3, 1 << (b & 7)
            if cur[ia] & ma and cur[ib] & mb:
                continue
            cur[ia] |= ma
            cur[ib] |= mb
            self.taken += 1
            if not (old[ia] & ma and old[ib] & mb):
                new += 1
        return new


class Parser:
    """opsconsole.logs.parse.LineParser.parse: rows, non-blank lines, unparsed, samples."""

    def __init__(self, params: Dict[str, Any]) -> None:
        self.regex = re.compile(params["regex"].encode("latin-1"), int(params["flags"]))
        self.groups = {k: int(v) for k, v in params["groups"].items()}

    def parse(self, chunk: bytes) -> Tuple[List[Tuple[bytes, ...]], int, int, List[str]]:
        if not chunk:
            return [], 0, 0, []
        lines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
        rows = self.regex.findall(chunk)
        if len(rows) == lines:
            return rows, lines, 0, []
        blank = sum(1 for line in chunk.split(b"\n") if not line.strip())
        if chunk.endswith(b"\n"):
            blank -= 1
        lines -= blank
        samples = []  # type: List[str]
        match = self.regex.match
        for line in chunk.split(b"\n"):
            if line.strip() and not match(line):
                samples.append(line[:300].decode("utf-8", "replace"))
                if len(samples) >= MAX_KEPT_UNPARSED:
                    break
        return rows, lines, max(lines - len(rows), 0), samples


class Second:
    """What one log second (one time string) added since the last message."""

    __slots__ = ("counts", "status")

    def __init__(self) -> None:
        self.status = Counter()  # type: Counter[bytes]
        self.counts = {d: Counter() for d in (*DIMS, "net")}  # type: Dict[str, Counter[bytes]]


class SecondSketch:
    """A K-minimum-values sketch of one log second's clients, across messages: once a message
    cuts that second's clients, every hash that enters it is shipped once (the console keeps
    the k smallest of what it gets, which holds the k smallest of this server's clients)."""

    __slots__ = ("cut", "heap", "members", "sent", "used")

    def __init__(self) -> None:
        self.heap: List[int] = []
        self.members: Set[int] = set()
        self.sent: Set[int] = set()
        self.cut = False
        self.used = time.monotonic()

    def add(self, hashes: List[int], k: int) -> None:
        heap, members = self.heap, self.members
        for h in hashes:
            if h in members:
                continue
            if len(heap) < k:
                heapq.heappush(heap, -h)
                members.add(h)
            elif h < -heap[0]:
                members.discard(-heapq.heappushpop(heap, -h))
                members.add(h)
        self.used = time.monotonic()

    def delta(self) -> List[int]:
        new = sorted(self.members - self.sent)
        self.sent.update(new)
        self.sent &= self.members
        return new


class Summary:
    """Everything read since the last message, ready to ship."""

    def __init__(self, parser: Parser, cap: int, kmv: int) -> None:
        g = parser.groups
        self.get = {d: g[d] for d in DIMS if d in g}
        self.time, self.status_at, self.net_at = g["time"], g["status"], g.get("net")
        self.cap, self.kmv = cap, kmv
        self.seen = Seen()
        self.sketches = {}  # type: Dict[bytes, SecondSketch]
        self.reset()

    def reset(self) -> None:
        self.lines = self.unparsed = 0
        self.samples = []  # type: List[str]
        self.seconds = {}  # type: Dict[bytes, Second]

    def add(
        self, rows: List[Tuple[bytes, ...]], lines: int, unparsed: int, samples: List[str]
    ) -> None:
        self.lines += lines
        self.unparsed += unparsed
        if samples:  # the latest few, as the console's own deque keeps them
            self.samples = (self.samples + samples)[-MAX_KEPT_UNPARSED:]
        by_time = {}  # type: Dict[bytes, List[Tuple[bytes, ...]]]
        t_at = self.time
        for r in rows:
            by_time.setdefault(r[t_at], []).append(r)
        for t, group in by_time.items():
            sec = self.seconds.get(t)
            if sec is None:
                sec = self.seconds[t] = Second()
            sec.status.update(r[self.status_at] for r in group)
            for dim, i in self.get.items():
                sec.counts[dim].update(r[i] for r in group)
            nets = sec.counts["net"]
            net_at, client_at = self.net_at, self.get.get("client")
            for r in group:
                net = r[net_at] if net_at is not None else b""
                if not net and client_at is not None:
                    net = subnet_of(r[client_at])
                nets[net] += 1

    def message(self) -> Dict[str, Any]:
        secs = []
        now = time.time()
        for t, sec in self.seconds.items():
            dims = {}
            trimmed = []
            sketch = None
            new_cut = 0
            clients = sec.counts["client"]
            sk = self.sketches.get(t)
            if sk is None:
                sk = self.sketches[t] = SecondSketch()
            sk.add(list(map(hash64, clients)), self.kmv)
            for dim, counts in sec.counts.items():
                if not counts:
                    continue
                if len(counts) > self.cap:
                    kept = heapq.nlargest(self.cap // 2, counts.items(), key=lambda kv: kv[1])
                    trimmed.append(dim)
                    if dim == "client":
                        cut = set(counts) - {k for k, _ in kept}
                        new_cut = self.seen.add_new(list(cut), now)
                        self.seen.add_new([k for k, _ in kept], now)
                        sk.cut = True
                    counts = Counter(dict(kept))
                elif dim == "client":
                    self.seen.add_new(list(counts), now)  # what the console sees as new too
                dims[dim] = {text(k): n for k, n in counts.items()}
            if sk.cut:
                hashes = sk.delta()
                if hashes:
                    packed = b"".join(h.to_bytes(8, "little") for h in hashes)
                    sketch = base64.b64encode(packed).decode("ascii")
            status = {text(k): n for k, n in sec.status.items()}
            secs.append([text(t), status, dims, trimmed, sketch, new_cut])
        msg = {"lines": self.lines, "unparsed": self.unparsed, "samples": self.samples}
        msg["secs"] = secs
        self.reset()
        old = time.monotonic() - 30
        for t in [t for t, sk in self.sketches.items() if sk.used < old]:
            del self.sketches[t]  # a second no line has named for 30 s
        return msg


def file_id(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


def stat(path: str) -> Optional[os.stat_result]:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


class Open:
    """One file being read: its descriptor, identity, offset of the last complete line."""

    def __init__(self, path: str, fid: str, offset: int) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        st = os.fstat(self.fd)
        if file_id(st) != fid:
            os.close(self.fd)
            raise FileNotFoundError(path)
        os.lseek(self.fd, offset, os.SEEK_SET)
        self.id, self.offset, self.pending = fid, offset, b""
        self.current = True
        self.last_data = time.monotonic()

    def read(self, limit: int) -> bytes:
        """Complete lines read (up to about ``limit`` bytes); the offset moves past them."""
        data = os.read(self.fd, limit)
        if not data:
            return b""
        self.last_data = time.monotonic()
        buf = self.pending + data
        cut = buf.rfind(b"\n") + 1
        self.pending = buf[cut:]
        self.offset += cut
        return buf[:cut]

    def restart(self) -> None:
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.offset, self.pending = 0, b""

    def close(self) -> None:
        os.close(self.fd)


def why(e: OSError, path: str) -> str:
    return f"cannot read {path}: {e.strerror or type(e).__name__}"


def follow(params: Dict[str, Any]) -> None:
    path = params["path"]
    parser = Parser(params)
    summary = Summary(parser, int(params.get("bucket_cap", 2000)), int(params.get("kmv", 1024)))
    flush, poll = float(params.get("flush", 0.25)), float(params.get("poll", 1.0))
    drain_idle, drain_max = (
        float(params.get("drain_idle", 5.0)),
        float(params.get("drain_max", 60.0)),
    )
    files = []  # type: List[Open]
    lost = []  # type: List[str]
    main, old = stat(path), stat(path + ".1")
    for fid, offset in params.get("files") or []:
        for p, st in ((path, main), (path + ".1", old)):
            if st is not None and file_id(st) == fid:
                try:
                    files.append(Open(p, fid, int(offset)))
                except OSError as e:
                    emit({"t": "error", "detail": why(e, p)})
                    return
                files[-1].current = p == path
                break
        else:
            lost.append(f"{path} (file {fid}) is gone: lines after byte {offset} lost")
    waited = not files
    size = 0

    def look() -> Optional[str]:
        """Stat PATH: rotation, truncation, a file that appeared.  An error text, or None."""
        nonlocal size, waited
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as e:
            return why(e, path)
        if not S_ISREG(st.st_mode):
            return f"{path} is not a regular file"
        fid = file_id(st)
        cur = next((f for f in files if f.current), None)
        if cur is not None and cur.id == fid:
            size = st.st_size
            if st.st_size < cur.offset:
                cur.restart()  # truncated in place: read it again from its start
            return None
        for f in files:
            f.current = False
        try:
            files.append(Open(path, fid, 0))
        except FileNotFoundError:
            return None
        except OSError as e:
            return why(e, path)
        size, waited = st.st_size, False
        return None

    error = look()
    if error:
        emit({"t": "error", "detail": error})
        return
    emit({"t": "hello", "v": AGENT_VERSION, "python": ".".join(map(str, sys.version_info[:3]))})
    for text_ in lost:
        emit({"t": "lost", "detail": text_})
    next_look = time.monotonic() + poll
    last_sent = 0.0
    while True:
        got = 0
        for f in list(files):
            try:
                chunk = f.read(1 << 20)
            except OSError as e:
                emit({"t": "error", "detail": why(e, path)})
                return
            if chunk:
                got += len(chunk)
                summary.add(*parser.parse(chunk))
        now = time.monotonic()
        if now >= next_look:
            next_look = now + poll
            error = look()
            if error:
                emit({"t": "error", "detail": error})
                return
            cur = next((f for f in files if f.current), None)
            for f in [f for f in files if not f.current]:
                idle = now - f.last_data
                moved_on = cur is not None and cur.offset > 0 and cur.last_data > f.last_data
                if (idle >= drain_idle and moved_on) or idle >= drain_max:
                    f.close()
                    files.remove(f)
        busy = summary.lines > 0 or summary.unparsed > 0
        if (busy and now - last_sent >= flush) or now - last_sent >= 1.0 or summary.lines > 200_000:
            msg = summary.message()
            msg["t"] = "data"
            msg["files"] = [[f.id, f.offset, f.current] for f in files]
            msg["size"], msg["now"] = size, int(time.time())
            msg["waiting"] = not files and waited
            emit(msg)
            last_sent = now
        if not got:
            time.sleep(0.05)


def read(params: Dict[str, Any]) -> None:
    path = params["path"]
    parser = Parser(params)
    wanted = sorted(set(parser.groups.values()))
    start, end = int(params["start"]), int(params["end"])
    tables = [dict() for _ in range(parser.regex.groups)]  # type: List[Dict[bytes, int]]
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        emit({"t": "error", "detail": why(e, path)})
        return
    os.lseek(fd, start, os.SEEK_SET)
    offset, pending = start, b""
    while offset < end:
        data = os.read(fd, min(READ_BATCH, end - offset))
        if not data:
            break
        offset += len(data)
        buf = pending + data
        cut = len(buf) if offset >= end else buf.rfind(b"\n") + 1
        pending, chunk = buf[cut:], buf[:cut]
        rows, lines, unparsed, samples = parser.parse(chunk)
        new = []
        cols = []
        for i in wanted:
            table = tables[i]
            ids = []
            fresh = []
            for value in (r[i] for r in rows):
                n = table.get(value)
                if n is None:
                    n = table[value] = len(table)
                    fresh.append(text(value))
                ids.append(n)
            if fresh:
                new.append([i, fresh])
            cols.append(ids)
        msg = {"t": "rows", "cols": wanted, "new": new, "ids": cols, "lines": lines}
        msg.update(unparsed=unparsed, samples=samples, done=offset - len(pending) - start)
        emit(msg)
    os.close(fd)
    emit({"t": "end", "offset": offset})


def main() -> None:
    params = json.loads(sys.argv[1])
    try:
        (follow if params["mode"] == "follow" else read)(params)
    except (BrokenPipeError, KeyboardInterrupt):
        pass  # the console went away
    except re.error as e:
        emit({"t": "unsupported", "detail": f"the log format does not compile here: {e}"})


if __name__ == "__main__":
    main()
