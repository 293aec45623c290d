"""POSIX-shell fallback of the host probe, for servers without a usable ``python3``.

Role: minimal nginx hosts (Alpine, distroless-ish images, stripped VMs) often have no Python.
:mod:`opsconsole.health.host` then sends :data:`SCRIPT` to ``sh -s`` over the same connection: it
prints the raw ``/proc`` files (and ``df -P``, plus an ``awk`` summary of the TCP table so a flood
of sockets does not mean megabytes over SSH) in ``@@section`` blocks, and :func:`parse` turns them
into the same dictionary the Python probe prints, with the same parsers
(:mod:`opsconsole.health.hostprobe`).  The nginx check matches master processes by command line
only (no pid file) in this mode.

Imports: the standard library and :mod:`opsconsole.health.hostprobe`.
"""

from __future__ import annotations

from typing import Any

from . import hostprobe

# Every section either prints its data or a line "@@failed" after the command's own message.
SCRIPT = r"""
section() { echo "@@$1"; }
section loadavg; cat /proc/loadavg 2>&1 || echo @@failed
section meminfo; cat /proc/meminfo 2>&1 || echo @@failed
section stat; { head -n 1 /proc/stat && { sleep 0.2 2>/dev/null || sleep 1; } \
    && head -n 1 /proc/stat; } 2>&1 || echo @@failed
section nproc; getconf _NPROCESSORS_ONLN 2>/dev/null || grep -c '^processor' /proc/cpuinfo
for p in "$@"; do section "disk $p"; df -P -k "$p" 2>&1 || echo @@failed; done
section tcp
if [ -r /proc/net/tcp ]; then
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 != "st" {
    split($2, l, ":"); split($3, r, ":"); ip = (r[2] == "0000") ? "-" : r[1]
    n[$4 " " l[2] " " ip]++ } END { for (k in n) print k, n[k] }'
else
  echo "cannot read /proc/net/tcp"; echo @@failed
fi
section nginx
if [ -r /proc ]; then
  for d in /proc/[0-9]*; do
    read -r stat 2>/dev/null < "$d/stat" || continue
    comm=${stat#*\(}; comm=${comm%\)*}; state=${stat##*\) }; state=${state%% *}
    case "$state $comm" in [!ZX]" nginx"*)
      echo "${d#/proc/} $comm $(tr '\000' ' ' 2>/dev/null < "$d/cmdline")";;
    esac
  done
else
  echo "cannot read /proc"; echo @@failed
fi
section end
"""


def sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@") and line != "@@failed":
            current = out.setdefault(line[2:], [])
        elif current is not None:
            current.append(line)
    return out


class _SectionFailed(Exception):
    pass


def _body(parts: dict[str, list[str]], name: str) -> str:
    lines = parts.get(name)
    if lines is None:
        raise _SectionFailed("no output (the shell script stopped early)")
    if "@@failed" in lines:
        message = " ".join(line for line in lines if line != "@@failed").strip()
        raise _SectionFailed(message or "failed")
    return "\n".join(lines)


def _tcp_rows(body: str) -> list[hostprobe.Row]:
    rows: list[hostprobe.Row] = []
    for line in body.splitlines():
        f = line.split()
        if len(f) != 4:
            continue
        state = hostprobe.TCP_STATES.get(f[0].upper(), "UNKNOWN")
        rip = "" if f[2] == "-" else hostprobe.hex_address(f[2] + ":0")[0]
        rows.append((state, int(f[1], 16), rip, int(f[3])))
    return rows


def _disk_percent(body: str) -> tuple[str, float]:
    """(mount point, used percent) from ``df -P -k PATH``."""
    words = body.splitlines()[-1].split()
    i = next(i for i, w in enumerate(words) if i >= 4 and w.endswith("%"))
    used, avail = int(words[i - 2]), int(words[i - 1])
    room = used + avail
    return " ".join(words[i + 1 :]), round(100.0 * used / room, 1) if room else 0.0


def _processes(body: str) -> list[tuple[int, str, str]]:
    out = []
    for line in body.splitlines():
        pid, _, rest = line.partition(" ")
        name, _, cmdline = rest.partition(" ")
        if pid.isdigit():
            out.append((int(pid), name, cmdline.strip()))
    return out


def parse(text: str, params: dict[str, Any]) -> dict[str, Any]:
    """The Python probe's result dictionary, from the script's output."""
    parts = sections(text)
    errors: dict[str, str] = {}
    result: dict[str, Any] = {"source": "shell", "python": None}

    def attempt(key: str, read: Any) -> Any:
        try:
            return read()
        except _SectionFailed as e:
            errors[key] = str(e)
        except (ValueError, KeyError, IndexError, StopIteration) as e:
            errors[key] = f"unexpected output: {e}"
        return None

    result["cpu_count"] = attempt("cpu_count", lambda: int(_body(parts, "nproc").split()[0]))
    result["load"] = attempt("load", lambda: hostprobe.parse_loadavg(_body(parts, "loadavg")))
    result["memory_percent"] = attempt(
        "memory", lambda: hostprobe.parse_meminfo(_body(parts, "meminfo"))
    )

    def cpu() -> float:
        first, second = _body(parts, "stat").splitlines()[:2]
        return hostprobe.cpu_percent_between(
            hostprobe.parse_cpu_times(first), hostprobe.parse_cpu_times(second)
        )

    result["cpu_percent"] = attempt("cpu", cpu)
    disks: dict[str, float] = {}
    mounts: set[str] = set()
    for path in params.get("disks") or ["/"]:
        found = attempt(f"disk {path}", lambda p=path: _disk_percent(_body(parts, f"disk {p}")))
        if found is not None and found[0] not in mounts:
            mounts.add(found[0])
            disks[path] = found[1]
    result["disks"] = disks
    rows = attempt("tcp", lambda: _tcp_rows(_body(parts, "tcp")))
    if rows is not None:
        result["tcp"], result["top_connections"] = hostprobe.summarize_connections(
            rows, params.get("top", 10)
        )
    processes = attempt("nginx", lambda: _processes(_body(parts, "nginx")))
    if processes is not None:
        targets = params.get("nginx") or [{"prefix": None, "conf": None}]
        # The pid file is on the server, out of reach here: command lines decide.
        result["nginx"] = hostprobe.nginx_status(targets, processes, pidfiles=False)
        result["nginx_processes"] = len(processes)
    result["errors"] = errors
    return result
