"""The rehearsal lab (DESIGN §8): a real fleet of sshd + nginx on loopback, with traffic.

Used by ``opsconsole lab``, ``opsconsole demo``, the integration tests and teams rehearsing an
incident.  The public API is re-exported here; the modules behind it are private::

    lab = Lab.start(tmp_dir, traffic=False)
    send(lab.url("www"), client_ip="2001:db8::7", path="/nope")
    run = lab.start_scenario("botnet-ua", scale=0.1)   # its past in the logs, its window live
    lab.stop()
"""

from .lab import Lab
from .model import LabError, LabServer, LabService, ScenarioRun
from .traffic import send

__all__ = ["Lab", "LabError", "LabServer", "LabService", "ScenarioRun", "send"]
