"""Host probe: the small program sent to a server (``python3 -`` with this file on stdin).

Role: read one server's load, CPU, memory, disk, TCP states, top remote IPs and whether its nginx
master is alive; print them as one JSON object.  :mod:`opsconsole.health.host` sends this file's
own text over the existing SSH connection, parameters as one JSON argument; nothing is installed.
psutil where the server has it, ``/proc`` otherwise; each metric is read on its own, so one that
fails is an entry of ``errors`` and never hides the others.  The console imports the parsers too
(:mod:`.hostshell` for its shell fallback, :mod:`.local` for the console's own machine).

Runs on servers we do not control: Python 3.6+ and the standard library only (psutil optional),
no imports from opsconsole; hence ``typing`` generics instead of the 3.9+/3.10+ spellings.
"""
# ruff: noqa: UP006, UP035, UP045

import contextlib
import ipaddress
import json
import os
import re
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

PROBE_VERSION = 1

# /proc/net/tcp "st" column (01, 02, ... 0C) -> the names psutil and ss use.  NEW_SYN_RECV (0C) is
# a request socket waiting for the final ACK: for the operator the same symptom as SYN_RECV.
_STATE_NAMES = "ESTABLISHED SYN_SENT SYN_RECV FIN_WAIT1 FIN_WAIT2 TIME_WAIT CLOSE CLOSE_WAIT"
_STATE_NAMES += " LAST_ACK LISTEN CLOSING SYN_RECV"
TCP_STATES = {format(i + 1, "02X"): name for i, name in enumerate(_STATE_NAMES.split())}

# A connection row: (state, local port, remote ip or "", count).
Row = Tuple[str, int, str, int]


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def _why(e: Exception) -> str:
    if isinstance(e, OSError) and e.strerror:
        where = " " + str(e.filename) if e.filename else ""
        return "cannot read" + where + ": " + e.strerror
    return type(e).__name__ + ": " + str(e)


# ---- parsers of /proc text (shared with the shell fallback) ---------------------------------


def parse_loadavg(text: str) -> List[float]:
    return [float(x) for x in text.split()[:3]]


def parse_meminfo(text: str) -> float:
    """Memory in use, percent, as psutil computes it: (total - available) / total."""
    kb = {}  # type: Dict[str, int]
    for line in text.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2 and parts[1].isdigit():
            kb[parts[0]] = int(parts[1])
    total = kb["MemTotal"]
    available = kb.get("MemAvailable")
    if available is None:  # kernels before 3.14
        available = kb.get("MemFree", 0) + kb.get("Buffers", 0) + kb.get("Cached", 0)
    return round(100.0 * (total - available) / total, 1)


def parse_cpu_times(line: str) -> Tuple[int, int]:
    """(busy, total) jiffies from the ``cpu`` line of /proc/stat."""
    fields = line.split()
    if not fields or fields[0] != "cpu":
        raise ValueError("no cpu line in /proc/stat")
    values = [int(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time (9th, 10th) is already counted in user and nice
    return total - idle, total


def cpu_percent_between(first: Tuple[int, int], second: Tuple[int, int]) -> float:
    busy, total = second[0] - first[0], second[1] - first[1]
    return round(100.0 * busy / total, 1) if total > 0 else 0.0


def hex_address(text: str) -> Tuple[str, int]:
    """``0100007F:1F90`` (a /proc/net/tcp address) -> ("127.0.0.1", 8080)."""
    host, _, port = text.partition(":")
    raw = bytes.fromhex(host)
    if sys.byteorder == "little":  # the kernel prints each 32-bit word in host order
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(raw)
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip), int(port, 16)


def normalize_ip(ip: str) -> str:
    """IPv4-mapped IPv6 (``::ffff:1.2.3.4``) is the IPv4 client it stands for."""
    return ip[7:] if ip.startswith("::ffff:") and "." in ip else ip


def parse_net_tcp(text: str) -> List[Row]:
    rows = []  # type: List[Row]
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 4:
            continue
        _, lport = hex_address(f[1])
        rip, rport = hex_address(f[2])
        state = TCP_STATES.get(f[3].upper(), "UNKNOWN")
        rows.append((state, lport, rip if rport else "", 1))
    return rows


def summarize_connections(rows: List[Row], top: int) -> Tuple[Dict[str, int], List[Dict[str, Any]]]:
    """Counts by state, and the remote IPs with most inbound connections.

    Inbound means the local port is one the host listens on, so on a host (or a loopback lab)
    that is also a client, each connection is counted once, from the server's side.  TIME_WAIT
    sockets are closed connections and are not counted per IP.
    """
    states = {"ESTABLISHED": 0, "SYN_RECV": 0, "TIME_WAIT": 0}  # type: Dict[str, int]
    listening = set()
    for state, lport, _, n in rows:
        states[state] = states.get(state, 0) + n
        if state == "LISTEN":
            listening.add(lport)
    per_ip = {}  # type: Dict[str, int]
    for state, lport, rip, n in rows:
        if rip and lport in listening and state not in ("LISTEN", "TIME_WAIT"):
            per_ip[rip] = per_ip.get(rip, 0) + n
    ranked = sorted(per_ip.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return states, [{"ip": ip, "connections": n} for ip, n in ranked]


# ---- nginx: is *this* server's master alive? ------------------------------------------------


def _pid_directive(conf_text: str) -> Optional[str]:
    m = re.search(r"^\s*pid\s+([^;\s]+)\s*;", conf_text, re.MULTILINE)
    return m.group(1).strip("\"'") if m else None


def nginx_pidfile(target: Dict[str, Any]) -> Optional[str]:
    """The pid file named by the target's nginx.conf (``pid`` directive), if it can be read."""
    prefix = target.get("prefix")
    conf = target.get("conf")
    if conf is None and prefix is None:
        conf = "/etc/nginx/nginx.conf"
    if conf is None:
        return None
    if not conf.startswith("/"):
        if prefix is None:
            return None
        conf = os.path.join(prefix, conf)
    try:
        pid = _pid_directive(_read(conf))
    except (OSError, ValueError):
        return None
    if pid is None:
        return "/run/nginx.pid" if prefix is None else None
    return pid if pid.startswith("/") else os.path.join(prefix or "/", pid)


def master_matches(cmdline: str, target: Dict[str, Any]) -> bool:
    """Does an ``nginx: master process …`` command line belong to ``target``?

    With a prefix, the master must have been started with that same ``-p`` (several nginx may run
    on one host, as in the lab); with only an absolute ``-c``, with that config; else any master.
    """
    if "master process" not in cmdline:
        return False
    words = cmdline.split()
    options = {}  # type: Dict[str, str]
    for i, w in enumerate(words):
        for flag in ("-p", "-c"):
            if w == flag and i + 1 < len(words):
                options[flag] = words[i + 1]
            elif w.startswith(flag) and len(w) > 2:
                options[flag] = w[2:]
    prefix = target.get("prefix")
    conf = target.get("conf")
    if prefix:
        return bool(options.get("-p", "").rstrip("/") == prefix.rstrip("/"))
    if conf and conf.startswith("/"):
        return bool(options.get("-c") == conf)
    return True


def _hidden(pid: int) -> bool:
    """A process that exists but that /proc does not show us (``hidepid``, another user's)."""
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        pass
    return False


def nginx_status(
    targets: List[Dict[str, Any]], processes: List[Tuple[int, str, str]], pidfiles: bool = True
) -> List[Dict[str, Any]]:
    """One verdict per target from the process table [(pid, name, cmdline)].

    The pid file named by the target's config is the best evidence; a master process whose
    command line matches the target is the fallback (and the only test when ``pidfiles`` is off).
    """
    names = {pid: name for pid, name, _ in processes}
    out = []
    for t in targets:
        result = {"prefix": t.get("prefix"), "conf": t.get("conf")}  # type: Dict[str, Any]
        result.update(running=False, pid=None, how="no matching nginx master process")
        pidfile = nginx_pidfile(t) if pidfiles else None
        if pidfile:
            try:
                pid = int(_read(pidfile).split()[0])
            except (OSError, ValueError, IndexError):
                pid = None
            if pid is not None and names.get(pid, "").startswith("nginx"):
                result.update({"running": True, "pid": pid, "how": "pid file " + pidfile})
            elif pid is not None and pid not in names and _hidden(pid):
                how = "pid file " + pidfile + " (process hidden from this user: hidepid?)"
                result.update({"running": True, "pid": pid, "how": how})
        if not result["running"]:
            for pid, name, cmdline in processes:
                if name.startswith("nginx") and master_matches(cmdline, t):
                    result.update({"running": True, "pid": pid, "how": "master process"})
                    break
        out.append(result)
    return out


# ---- readers: psutil where the server has it, /proc otherwise -------------------------------


class ProcReader:
    """Reads everything from /proc (``root`` is overridable for tests)."""

    source = "proc"

    def __init__(self, root: str = "/proc") -> None:
        self.root = root

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def load(self) -> List[float]:
        return parse_loadavg(_read(self.path("loadavg")))

    def cpu_percent(self, sample: float) -> float:
        first = parse_cpu_times(_read(self.path("stat")).splitlines()[0])
        time.sleep(sample)
        second = parse_cpu_times(_read(self.path("stat")).splitlines()[0])
        return cpu_percent_between(first, second)

    def memory_percent(self) -> float:
        return parse_meminfo(_read(self.path("meminfo")))

    def connections(self) -> List[Row]:
        rows = parse_net_tcp(_read(self.path("net", "tcp")))
        with contextlib.suppress(OSError):  # no IPv6 on this host
            rows += parse_net_tcp(_read(self.path("net", "tcp6")))
        return rows

    def processes(self) -> List[Tuple[int, str, str]]:
        """Live processes as (pid, name, command line of nginx processes only)."""
        out = []
        for entry in os.listdir(self.root):
            if not entry.isdigit():
                continue
            try:
                stat = _read(self.path(entry, "stat"))
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                if stat[stat.rindex(")") + 1 :].split()[0] in ("Z", "X"):
                    continue  # a killed master its parent has not reaped yet is not running
                cmdline = ""
                if name.startswith("nginx"):
                    cmdline = _read(self.path(entry, "cmdline")).replace("\0", " ").strip()
                out.append((int(entry), name, cmdline))
            except (OSError, ValueError, IndexError):  # the process ended while we looked
                continue
        return out


class PsutilReader:
    """Reads everything through psutil (any OS psutil supports)."""

    source = "psutil"

    def __init__(self, psutil: Any) -> None:
        self.ps = psutil

    def load(self) -> List[float]:
        return [round(x, 2) for x in self.ps.getloadavg()]

    def cpu_percent(self, sample: float) -> float:
        return float(self.ps.cpu_percent(interval=sample))

    def memory_percent(self) -> float:
        return float(self.ps.virtual_memory().percent)

    def connections(self) -> List[Row]:
        rows = []
        for c in self.ps.net_connections(kind="tcp"):
            rip = normalize_ip(c.raddr[0]) if c.raddr else ""
            rows.append((str(c.status), c.laddr[1] if c.laddr else 0, rip, 1))
        return rows

    def processes(self) -> List[Tuple[int, str, str]]:
        out = []
        for p in self.ps.process_iter(["pid", "name", "cmdline", "status"]):
            if p.info.get("status") in (self.ps.STATUS_ZOMBIE, self.ps.STATUS_DEAD):
                continue
            name = p.info.get("name") or ""
            cmdline = " ".join(p.info.get("cmdline") or []) if name.startswith("nginx") else ""
            out.append((p.info["pid"], name, cmdline))
        return out


def _import_psutil() -> Any:
    try:
        import psutil

        return psutil
    except ImportError:
        return None


def disk_percents(paths: List[str]) -> Tuple[Dict[str, float], Dict[str, str]]:
    """Used space per path's file system, percent, as ``df`` shows it (reserved blocks excluded)."""
    out = {}  # type: Dict[str, float]
    errors = {}  # type: Dict[str, str]
    seen = set()
    for path in paths:
        try:
            device = os.stat(path).st_dev
            st = os.statvfs(path)
        except OSError as e:
            errors["disk " + path] = _why(e)
            continue
        if device in seen:  # one line per file system, as df prints
            continue
        seen.add(device)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        room = used + st.f_bavail * st.f_frsize
        out[path] = round(100.0 * used / room, 1) if room else 0.0
    return out, errors


def collect(params: Dict[str, Any]) -> Dict[str, Any]:
    """Read every metric; each failure is recorded in ``errors`` under the metric's name."""
    psutil = _import_psutil() if params.get("use_psutil", True) else None
    readers = [ProcReader(params.get("proc", "/proc"))]  # type: List[Any]
    if psutil is not None:  # /proc stays the fallback of a psutil too old for a call
        readers.insert(0, PsutilReader(psutil))
    result = {
        "probe_version": PROBE_VERSION,
        "source": readers[0].source,
        "python": ".".join(str(v) for v in sys.version_info[:3]),
        "cpu_count": os.cpu_count(),
    }  # type: Dict[str, Any]
    errors = {}  # type: Dict[str, str]

    def attempt(key: str, method: str, *args: Any) -> Any:
        reasons = []  # type: List[str]
        for reader in readers:
            try:
                return getattr(reader, method)(*args)
            except Exception as e:
                reasons.append(_why(e))
        errors[key] = "; ".join(sorted(set(reasons), key=reasons.index))
        return None

    result["load"] = attempt("load", "load")
    result["cpu_percent"] = attempt("cpu", "cpu_percent", params.get("cpu_sample", 0.2))
    result["memory_percent"] = attempt("memory", "memory_percent")
    result["disks"], disk_errors = disk_percents(params.get("disks") or ["/"])
    errors.update(disk_errors)
    rows = attempt("tcp", "connections")
    if rows is not None:
        result["tcp"], result["top_connections"] = summarize_connections(
            rows, params.get("top", 10)
        )
    targets = params.get("nginx", [{"prefix": None, "conf": None}])  # [] = not a web server
    processes = attempt("nginx", "processes") if targets else None
    if processes is not None:
        result["nginx"] = nginx_status(targets, processes)
        result["nginx_processes"] = sum(1 for _, name, _ in processes if name.startswith("nginx"))
    result["errors"] = errors
    return result


def main() -> None:
    params = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    sys.stdout.write(json.dumps(collect(params)) + "\n")


if __name__ == "__main__":
    main()
