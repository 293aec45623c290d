"""The rehearsal lab (DESIGN §8): a real fleet of sshd + nginx on loopback, with traffic.

Used by ``opsconsole lab``, ``opsconsole demo``, the integration tests and teams rehearsing an
incident.  The public API is re-exported here; the modules behind it are private::

    lab = Lab.start(tmp_dir, traffic=False)
    send(lab.url("www"), client_ip="2001:db8::7", path="/nope")
    lab.stop()
"""

from .lab import Lab
from .model import LabError, LabServer, LabService
from .traffic import send

__all__ = ["Lab", "LabError", "LabServer", "LabService", "send"]
