"""Pre-flight and liveness checks of the target: a dead broker is "not run", not a wall of failures.

Load with ``-p conformance.liveness`` beside ``-p conformance.plugin`` (``refka conform`` does).

Before each test (the first one doubles as the pre-flight check) the plugin asks the target
whether it is alive: ApiVersions v0, which every broker must answer (KIP-35), sent to each
bootstrap address in turn until one answers with error NONE.  A target that gives no such answer
for ``LIVENESS_GRACE_S`` seconds (a fault test may have one node restarting) is declared
unreachable, and from then on every test is skipped with the reason
``not run: target unreachable since <the test that ran last>`` (or ``... before the first test``),
which the plugin records as a skip whose message starts with ``NOT_RUN_PREFIX``.
The declaration is final for the session: a broker that crashed is not trusted to come back.

The report writers read such skips as "not run" rather than as skips the test chose.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from conformance import raw

LIVENESS_GRACE_S = 15.0
PROBE_TIMEOUT_S = 3.0
NOT_RUN_PREFIX = "not run: target unreachable"


def answers(bootstrap: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when some bootstrap address answers ApiVersions v0 with error NONE."""
    for address in (a.strip() for a in bootstrap.split(",") if a.strip()):
        try:
            with raw.Connection.to(address, timeout=timeout) as conn:
                if raw.api_versions(conn, 0).error_code == 0:
                    return True
        except (OSError, raw.ConnectionClosed, AssertionError):
            continue
    return False


@dataclass
class Liveness:
    bootstrap: str
    last_test: str | None = None
    unreachable_since: str | None = None  # "since <test id>" or "before the first test ..."

    def check(self, grace: float | None = None) -> None:
        """Declare the target unreachable unless it answers within ``grace`` seconds
        (default ``LIVENESS_GRACE_S``)."""
        deadline = time.monotonic() + (LIVENESS_GRACE_S if grace is None else grace)
        while not answers(self.bootstrap):
            if time.monotonic() >= deadline:
                self.unreachable_since = (f"since {self.last_test}" if self.last_test
                                          else "before the first test (pre-flight check)")
                return
            time.sleep(0.5)


LIVENESS_KEY = pytest.StashKey[Liveness]()


def pytest_configure(config: pytest.Config) -> None:
    bootstrap = config.getoption("bootstrap_server", default=None)
    if bootstrap:
        config.stash[LIVENESS_KEY] = Liveness(str(bootstrap))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    liveness = item.config.stash.get(LIVENESS_KEY, None)
    if liveness is None:
        return
    if liveness.unreachable_since is None:
        liveness.check()
    if liveness.unreachable_since is not None:
        pytest.skip(f"{NOT_RUN_PREFIX} {liveness.unreachable_since}")
    liveness.last_test = item.nodeid
