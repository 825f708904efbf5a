"""The pytest plugin behind the conformance suite: options, fixtures and the result recorder.

Load it with ``-p conformance.plugin`` (``refka conform`` and ``tox -e conformance`` do)::

    pytest -p conformance.plugin --pyargs conformance.suite --bootstrap-server 127.0.0.1:9092

Options
-------
``--bootstrap-server HOST:PORT[,HOST:PORT]``  the broker under test (required).
``--clients a,b``          which real clients to parametrise over (default: all known).
``--results-json FILE``    write one JSON record per test x client, read by the report writer.
``--cluster-state FILE``   a ``cluster.json`` written by ``refka kafka start`` or ``refka cluster start``: lets fault tests stop
                           and restart nodes.
``--node-control CMD``     the same for any cluster: a command that kills or restarts node N
                           (:mod:`conformance.node_control`).  Without either, tests that need to crash a node skip.

Fixtures
--------
``capabilities``  what the broker advertises (see :mod:`conformance.capabilities`);
``client``        one adapter per selected client (parametrised; ids are the client names);
``topics``        creates uniquely named topics (raw CreateTopics) and waits for their leaders;
``admin``         a kafka-python ``KafkaAdminClient`` (the suite sets up through :mod:`conformance.raw`);
``broker``        raw protocol connections (:mod:`conformance.raw`) to the bootstrap or a leader;
``cluster_control`` the local cluster behind ``--cluster-state``, or the ``--node-control`` command.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance import raw
from conformance.capabilities import Capabilities, discover
from conformance.clients import CLIENT_NAMES, DEFAULT_CLIENTS, Client, ClientLacks, make_client
from conformance.fixtures import apache_kafka  # noqa: F401  (re-exported fixture)
from reference.errors import Errors, lookup

TOPIC_ALREADY_EXISTS = Errors.TOPIC_ALREADY_EXISTS.code

RESULTS_KEY = pytest.StashKey[list[dict[str, Any]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("refka conformance")
    group.addoption("--bootstrap-server", dest="bootstrap_server", default=None,
                    help="broker under test, HOST:PORT[,HOST:PORT...]")
    group.addoption("--clients", dest="conformance_clients", default=",".join(DEFAULT_CLIENTS),
                    help=f"comma-separated clients among {', '.join(CLIENT_NAMES)}")
    group.addoption("--results-json", dest="results_json", default=None,
                    help="write per-test results for the matrix report")
    group.addoption("--cluster-state", dest="cluster_state", default=None,
                    help="cluster.json of a local Apache Kafka cluster the fault tests may stop/restart")
    group.addoption("--node-control", dest="node_control", default=None, metavar="CMD",
                    help="command that kills or restarts node N of the cluster under test: "
                         "'docker {action} kafka-{node}', or CMD run as 'CMD kill|restart N'")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RESULTS_KEY] = []
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    names = [name.strip() for name in config.getoption("conformance_clients").split(",") if name.strip()]
    unknown = [name for name in names if name not in CLIENT_NAMES]
    if unknown:
        raise pytest.UsageError(f"unknown client(s) {unknown}; known: {', '.join(CLIENT_NAMES)}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "client" in metafunc.fixturenames:
        names = [n.strip() for n in metafunc.config.getoption("conformance_clients").split(",") if n.strip()]
        metafunc.parametrize("client", names, indirect=True, ids=names)


# ---------------------------------------------------------------- recording results
def _test_metadata(item: pytest.Item) -> dict[str, Any]:
    function = getattr(item, "function", None)
    doc = (getattr(function, "__doc__", None) or "").strip()
    callspec = getattr(item, "callspec", None)
    client = callspec.params.get("client", "broker") if callspec is not None else "broker"
    other_params = {k: v for k, v in (callspec.params.items() if callspec else []) if k != "client"}
    name = getattr(item, "originalname", item.name)
    if other_params:
        name += "[" + "-".join(str(v) for v in other_params.values()) + "]"
    return {
        "nodeid": item.nodeid,
        "module": item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py"),
        "test": name,
        "client": client,
        "behaviour": " ".join(doc.split("\n\n")[0].split()),
    }


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    results = item.config.stash[RESULTS_KEY]
    failed_or_skipped = report.failed or report.skipped
    if report.when == "call" or (report.when == "setup" and failed_or_skipped) or (report.when == "teardown"
                                                                                  and report.failed):
        record = _test_metadata(item)
        record["duration_s"] = round(report.duration, 3)
        if report.skipped:
            record["outcome"] = "skipped"
            longrepr = report.longrepr
            record["message"] = str(longrepr[2]).removeprefix("Skipped: ") if isinstance(longrepr, tuple) else str(longrepr)
        elif report.failed:
            record["outcome"] = "failed" if report.when == "call" else "error"
            crash = getattr(report.longrepr, "reprcrash", None)
            record["message"] = crash.message if crash is not None else str(report.longrepr)[-500:]
        else:
            record["outcome"] = "passed"
            record["message"] = ""
        # A teardown error after a passed call replaces the pass.
        results[:] = [r for r in results if r["nodeid"] != record["nodeid"]]
        results.append(record)


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("results_json")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        meta = {"bootstrap": session.config.getoption("bootstrap_server")}
        Path(path).write_text(json.dumps({"meta": meta, "results": session.config.stash[RESULTS_KEY]}, indent=1))


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def bootstrap(pytestconfig: pytest.Config) -> str:
    value = pytestconfig.getoption("bootstrap_server")
    if not value:
        raise pytest.UsageError("the conformance suite needs --bootstrap-server HOST:PORT")
    return str(value)


@pytest.fixture(scope="session")
def capabilities(bootstrap: str) -> Capabilities:
    return discover(bootstrap)


@pytest.fixture
def client(request: pytest.FixtureRequest, bootstrap: str) -> Iterator[Client]:
    try:
        adapter = make_client(request.param, bootstrap)
    except ClientLacks as missing:
        pytest.skip(str(missing))
    try:
        yield adapter
    finally:
        adapter.close()


@pytest.fixture
def lacks(client: Client) -> Any:
    """``lacks("binary")`` skips the test when the client cannot express that feature."""

    def check(*features: str) -> None:
        try:
            client.require(*features)
        except ClientLacks as missing:
            pytest.skip(str(missing))

    return check


@pytest.fixture(scope="session")
def admin(bootstrap: str) -> Iterator[Any]:
    from kafka.admin import KafkaAdminClient

    admin_client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
    yield admin_client
    admin_client.close()


def unique_name(request: pytest.FixtureRequest, prefix: str = "conf") -> str:
    base = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:60]
    return f"{prefix}-{base}-{uuid.uuid4().hex[:8]}"


class Topics:
    """Creates uniquely named topics for one test (never reused, so tests cannot see each other).

    Topics are created with a raw CreateTopics at a version chosen from the broker's ApiVersions,
    not through a client's admin API, so that a client's own parsing or checks cannot show up as a
    broker failure; a refusal raises :class:`~conformance.raw.SetupFailed` naming the broker's answer.
    """

    def __init__(self, capabilities: Capabilities, request: pytest.FixtureRequest, bootstrap: str) -> None:
        self.capabilities = capabilities
        self.request = request
        self.bootstrap = bootstrap

    def name(self, prefix: str = "conf") -> str:
        return unique_name(self.request, prefix)

    def create(self, partitions: int = 1, replication_factor: int = 1, configs: dict[str, str] | None = None,
               name: str | None = None) -> str:
        topic = name or self.name()
        version = raw.negotiate(self.capabilities.api_versions, raw.CREATE_TOPICS)
        if version is None:
            raise raw.SetupFailed("the broker advertises no CreateTopics version this suite speaks (v2-v7)")
        new_topic = raw.NewTopic(topic, partitions, replication_factor, dict(configs or {}))
        answers = []
        deadline = time.monotonic() + 20
        while True:  # retriable answers (a controller moving, a timed-out wait) are retried, as clients do
            answer = self._create_topic(new_topic, version)
            answers.append(str(answer))
            if answer is None or not lookup(answer.error_code).retriable or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        created_earlier = answer is not None and answer.error_code == TOPIC_ALREADY_EXISTS and len(answers) > 1
        if answer is None or (answer.error_code != 0 and not created_earlier):
            raise raw.SetupFailed(f"CreateTopics v{version} of {topic!r} ({partitions} partitions, replication "
                                  f"factor {replication_factor}, configs {configs or {}}) answered "
                                  f"{', then '.join(answers)}")
        self.wait_for_leaders(topic, partitions)
        return topic

    def _create_topic(self, new_topic: raw.NewTopic, version: int) -> raw.ApiError | None:
        """CreateTopics asked of the first bootstrap broker that answers (some may be down in fault
        tests); any broker forwards it to the controller."""
        unreachable = []
        for address in (a.strip() for a in self.bootstrap.split(",")):
            try:
                with raw.Connection.to(address, timeout=30) as conn:
                    return raw.create_topics(conn, [new_topic], version).get(new_topic.name)
            except (OSError, raw.ConnectionClosed) as error:
                unreachable.append(f"{address}: {error!r}")
        raise raw.SetupFailed(f"no bootstrap broker answered CreateTopics for {new_topic.name!r}: {unreachable}")

    def _leaders_serve(self, info: raw.TopicInfo) -> bool:
        """Metadata can name a leader a moment before that broker serves the partition: ask each
        leader for the log end offset and accept only error NONE."""
        with raw.Connection.to(self.bootstrap.split(",")[0].strip()) as conn:
            brokers = raw.metadata(conn, []).brokers
        for partition in info.partitions.values():
            leader = brokers.get(partition.leader)
            if leader is None:
                return False
            with raw.Connection(leader.host, leader.port) as conn:
                if raw.list_offset(conn, info.name, partition.partition, raw.LATEST_TIMESTAMP).error_code != 0:
                    return False
        return True

    def wait_for_leaders(self, topic: str, partitions: int, timeout: float = 20.0) -> raw.TopicInfo:
        """Wait until every broker answers Metadata with a leader for each partition."""
        deadline = time.monotonic() + timeout
        addresses = [a.strip() for a in self.bootstrap.split(",")]
        while True:
            info = None
            try:
                ready = 0
                for address in addresses:
                    with raw.Connection.to(address) as conn:
                        info = raw.metadata(conn, [topic]).topics.get(topic)
                    if info and info.error_code == 0 and len(info.partitions) == partitions and all(
                            p.leader >= 0 for p in info.partitions.values()):
                        ready += 1
                if ready == len(addresses) and info is not None and self._leaders_serve(info):
                    return info
            except (OSError, raw.ConnectionClosed):
                pass
            if time.monotonic() > deadline:
                raise raw.SetupFailed(f"topic {topic} created, but Metadata from every broker and ListOffsets from "
                                      f"each leader did not show a serving leader for all {partitions} "
                                      f"partitions within {timeout:.0f} s")
            time.sleep(0.1)


@pytest.fixture
def topics(capabilities: Capabilities, request: pytest.FixtureRequest, bootstrap: str) -> Topics:
    return Topics(capabilities, request, bootstrap)


class Broker:
    """Raw connections to the target: to the bootstrap broker, or to a partition's leader."""

    def __init__(self, bootstrap: str) -> None:
        self.addresses = [address.strip() for address in bootstrap.split(",")]
        self.bootstrap_address = self.addresses[0]
        self.connections: list[raw.Connection] = []

    def connect(self, address: str | None = None, timeout: float = 10.0) -> raw.Connection:
        conn = raw.Connection.to(address or self.bootstrap_address, timeout)
        self.connections.append(conn)
        return conn

    def leader_address(self, topic: str, partition: int = 0) -> str:
        cluster = None
        for address in self.addresses:  # the first ones may be down in fault tests
            try:
                with raw.Connection.to(address, timeout=3) as conn:
                    cluster = raw.metadata(conn, [topic])
                break
            except (OSError, raw.ConnectionClosed):
                continue
        if cluster is None:
            raise AssertionError("no bootstrap broker answered Metadata")
        leader = cluster.topics[topic].partitions[partition].leader
        broker = cluster.brokers[leader]
        return f"{broker.host}:{broker.port}"

    def leader(self, topic: str, partition: int = 0) -> raw.Connection:
        return self.connect(self.leader_address(topic, partition))

    def close(self) -> None:
        for conn in self.connections:
            conn.close()


@pytest.fixture
def broker(bootstrap: str) -> Iterator[Broker]:
    connections = Broker(bootstrap)
    yield connections
    connections.close()


@pytest.fixture(scope="session")
def cluster_control(pytestconfig: pytest.Config, bootstrap: str) -> Any:
    command = pytestconfig.getoption("node_control")
    if command:
        from conformance.node_control import CommandNodeControl, NodeControlError

        try:
            return CommandNodeControl.for_cluster(command, bootstrap)
        except NodeControlError as failed:
            raise raw.SetupFailed(str(failed)) from failed
    path = pytestconfig.getoption("cluster_state")
    if not path:
        pytest.skip("needs node control: pass --node-control CMD, or --cluster-state <data-dir>/cluster.json "
                    "of a local cluster")
    from conformance.apache_kafka import KafkaCluster
    from reference.node.cluster import ReferenceCluster
    from reference.node.local_cluster import cluster_kind

    data_dir = Path(path).parent if path.endswith(".json") else Path(path)
    kinds = {KafkaCluster.KIND: KafkaCluster, ReferenceCluster.KIND: ReferenceCluster}
    return kinds[cluster_kind(data_dir)].attach(data_dir)
