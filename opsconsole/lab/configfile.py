"""The ``config.toml`` of a lab: the rehearsal fleet described exactly like a production one.

Called by :class:`opsconsole.lab.Lab` once every process is up.  Written with ``tomli_w`` and read
back through :func:`opsconsole.config.load_config`, so a lab never hands out a config the console
would refuse.  All simulated servers share one filesystem, so per-server paths and commands use
the ``{server}`` placeholder of :class:`opsconsole.config.ServiceConfig`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from ..config import load_config
from ..errors import ConfigError
from .model import LabError, LabService, Layout
from .nginx import nginx_argv


def render_config(
    layout: Layout,
    user: str,
    ssh_ports: Mapping[str, int],
    services: Mapping[str, LabService],
    nginx: str,
) -> str:
    servers: dict[str, Any] = {
        name: {
            "host": "127.0.0.1",
            "port": port,
            "user": user,
            "known_hosts": str(layout.known_hosts),
            "client_keys": [str(layout.client_key)],
        }
        for name, port in ssh_ports.items()
    }
    prefix = layout.nginx_prefix("{server}")
    test = shlex.join(nginx_argv(nginx, prefix, "-t"))
    reload = shlex.join(nginx_argv(nginx, prefix, "-s", "reload"))
    svc: dict[str, Any] = {}
    for name, service in services.items():
        first = service.servers[0]
        svc[name] = {
            "servers": list(service.servers),
            "access_log": str(layout.access_log(name, "{server}")),
            "log_format": service.log_format,
            "url": f"http://127.0.0.1:{service.http_ports[first]}/",
            "control_dir": str(layout.control_dir("{server}")),
            "nginx_test": test,
            "nginx_reload": reload,
        }
    header = (
        f"# opsconsole rehearsal lab in {layout.dir} (written by `opsconsole lab up`).\n"
        "# Every server is a real sshd and nginx on 127.0.0.1; {server} stands for the server's\n"
        "# name because the simulated servers share this machine's filesystem.\n\n"
    )
    return header + tomli_w.dumps({"servers": servers, "services": svc})


def write_config(layout: Layout, text: str) -> Path:
    """Write the config and prove that opsconsole loads it."""
    path = layout.config_path
    path.write_text(text)
    try:
        load_config(str(path))
    except ConfigError as e:
        raise LabError(f"the lab wrote a config that opsconsole refuses (a bug): {e}") from None
    return path
