"""The console's own machine: the same readings as a server's, taken in-process with psutil.

Role: during an incident the laptop or jump host running the console can be the bottleneck
(a saturated CPU parsing logs makes every rate look low).  :func:`console_metrics` runs the host
probe's :func:`~.hostprobe.collect` here, in a worker thread (the CPU sample sleeps), so the TUI
and ``check`` can show it beside the servers.  It is not part of any verdict.

Imports: the standard library and this package.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from . import hostprobe
from .host import CPU_SAMPLE, metrics_from_probe
from .report import HostMetrics


async def console_metrics(
    disks: Sequence[str] = ("/",), *, cpu_sample: float = CPU_SAMPLE
) -> HostMetrics:
    params = {"disks": list(disks), "cpu_sample": cpu_sample, "nginx": []}
    data = await asyncio.to_thread(hostprobe.collect, params)  # "nginx": [] skips the process scan
    return metrics_from_probe(data)
