"""Multi-broker behaviour seen at the wire: ISR changes, leader elections (preferred and unclean),
leader epochs (KIP-320), fetch from follower (KIP-392), leader hints (KIP-951), coordinator failover.

Every test discovers what it needs from the broker (broker count, API versions, broker configs)
and stops or restarts nodes only through ``cluster_control``; waits are bounded loops on a
condition, with budgets derived from the broker's own ``broker.session.timeout.ms`` and
``replica.lag.time.max.ms``.
"""

from __future__ import annotations

import time

import pytest

from conformance import raw, speak
from conformance.suite.test_replication import _failover_timeout_s, _partition, _wait_for
from reference.errors import Errors


def _full_isr(bootstrap, topic, timeout=20.0):
    return _wait_for(lambda: (lambda p: p if len(p.isr) == len(p.replicas) and p.leader >= 0 else None)(
        _partition(bootstrap, topic)), timeout, "a full ISR")


def _address(capabilities, node_id):
    return capabilities.broker_addresses[node_id]


def _restart_and_rejoin(cluster_control, node_id, bootstrap, topic, timeout):
    cluster_control.restart(node_id)
    _wait_for(lambda: node_id in _partition(bootstrap, topic).isr, timeout, f"node {node_id} to rejoin the ISR")


def _produce_values(conn, topic, count, prefix):
    for i in range(count):
        result = raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, f"{prefix}-{i}".encode())]))
        assert result.error_code == 0, f"produce {prefix}-{i}: {result}"


# ---------------------------------------------------------------- ISR shrink and expand
@pytest.mark.slow
def test_isr_drops_a_dead_follower_and_readmits_it(topics, capabilities, cluster_control, bootstrap, broker):
    """A follower that dies leaves the ISR in Metadata (the controller fences it after
    broker.session.timeout.ms; a leader drops a lagging follower after replica.lag.time.max.ms)
    while the leader and the replica list stay as they were and acks=all keeps working with
    min.insync.replicas=2; restarted, the follower catches up and Metadata shows the full ISR again."""
    capabilities.require_brokers(3)
    timeout = _failover_timeout_s(capabilities)
    topic = topics.create(replication_factor=3, configs={"min.insync.replicas": "2"})
    before = _full_isr(bootstrap, topic)
    follower = next(r for r in before.replicas if r != before.leader)
    conn = broker.leader(topic)
    _produce_values(conn, topic, 3, "full")
    leader_address = _address(capabilities, before.leader)
    cluster_control.kill(follower)
    try:
        shrunk = _wait_for(lambda: (lambda p: p if follower not in p.isr else None)(
            _partition(leader_address, topic)), timeout, f"node {follower} to leave the ISR")
        assert shrunk.leader == before.leader
        assert shrunk.replicas == before.replicas
        assert sorted(shrunk.isr) == sorted(r for r in before.replicas if r != follower)
        _produce_values(conn, topic, 3, "shrunk")
    finally:
        cluster_control.restart(follower)
    expanded = _wait_for(lambda: (lambda p: p if follower in p.isr else None)(_partition(leader_address, topic)),
                         timeout, f"node {follower} to rejoin the ISR")
    assert expanded.leader == before.leader
    assert sorted(expanded.isr) == sorted(before.replicas)


# ---------------------------------------------------------------- ElectLeaders (KIP-460)
@pytest.mark.slow
def test_preferred_leader_election(topics, capabilities, cluster_control, bootstrap, broker):
    """ElectLeaders with election type PREFERRED (0): on a partition led by its preferred replica
    (the first of its replica list) the partition's answer is ELECTION_NOT_NEEDED (84); once the
    preferred replica has lost leadership (killed, restarted, back in the ISR) the answer is NONE
    and Metadata shows the preferred replica leading again with a higher leader epoch."""
    capabilities.require_brokers(3)
    capabilities.require_api(raw.ELECT_LEADERS, 1)
    timeout = _failover_timeout_s(capabilities)
    # A broker that rebalances leaders on its own soon (Kafka: auto.leader.rebalance.enable, every
    # leader.imbalance.check.interval.seconds, 300 by default) could elect the preferred leader first.
    interval_s = capabilities.broker_config_ms("leader.imbalance.check.interval.seconds")
    if capabilities.broker_configs.get("auto.leader.rebalance.enable") == "true" and (
            interval_s is not None and interval_s < 4 * timeout):
        pytest.skip(f"automatic leader rebalancing every {interval_s} s could elect the preferred leader first")
    topic = topics.create(replication_factor=3)
    before = _full_isr(bootstrap, topic)
    preferred = before.replicas[0]
    assert before.leader == preferred, f"a new partition is led by its first replica: {before}"
    not_needed = raw.elect_leaders(broker.connect(), topic, [0], raw.PREFERRED_ELECTION)
    assert not_needed.error_code == 0
    assert not_needed.partitions[0][0] == Errors.ELECTION_NOT_NEEDED.code, f"expected 84, observed {not_needed}"

    cluster_control.kill(preferred)
    try:
        moved = _wait_for(lambda: (lambda p: p if p.leader not in (-1, preferred) else None)(
            _partition(bootstrap, topic)), timeout, "leadership to move off the preferred replica")
    finally:
        _restart_and_rejoin(cluster_control, preferred, bootstrap, topic, timeout)
    rejoined = _partition(bootstrap, topic)
    assert rejoined.leader == moved.leader, f"leadership went back without an election: {rejoined}"
    survivor = _address(capabilities, moved.leader)
    with raw.Connection.to(survivor) as conn:
        elected = raw.elect_leaders(conn, topic, [0], raw.PREFERRED_ELECTION)
    assert elected.error_code == 0
    assert elected.partitions[0][0] == Errors.NONE.code, f"expected 0, observed {elected}"
    restored = _wait_for(lambda: (lambda p: p if p.leader == preferred else None)(_partition(survivor, topic)),
                         timeout, "the preferred replica to lead again")
    assert restored.leader_epoch > moved.leader_epoch > before.leader_epoch
    with raw.Connection.to(survivor) as conn:
        again = raw.elect_leaders(conn, topic, [0], raw.PREFERRED_ELECTION)
    assert again.partitions[0][0] == Errors.ELECTION_NOT_NEEDED.code, f"expected 84, observed {again}"


def _brokers_seen_by(address):
    """The node ids a broker lists in Metadata (live, unfenced brokers); None if it does not answer."""
    try:
        with raw.Connection.to(address, timeout=3) as conn:
            return set(raw.metadata(conn, []).brokers)
    except (OSError, raw.ConnectionClosed):
        return None


@pytest.mark.slow
def test_unclean_election_only_when_asked(topics, capabilities, cluster_control, bootstrap):
    """With unclean.leader.election.enable=false, when the only ISR member dies the partition has no
    leader: Metadata answers LEADER_NOT_AVAILABLE (5) with leader -1, even once an out-of-sync
    replica is back.  ElectLeaders with election type UNCLEAN (1) then elects that replica (NONE):
    it leads alone, and the records acknowledged while it was away are gone from the log.

    Only one node of three is down at a time except for a moment (the controller quorum needs two),
    so the partition has two replicas and the third node watches."""
    capabilities.require_brokers(3)
    capabilities.require_api(raw.ELECT_LEADERS, 1)
    timeout = _failover_timeout_s(capabilities)
    topic = topics.create(replication_factor=2, configs={"min.insync.replicas": "1",
                                                         "unclean.leader.election.enable": "false"})
    before = _full_isr(bootstrap, topic)
    last_in_sync, out_of_sync = before.leader, next(r for r in before.replicas if r != before.leader)
    watcher = next(n for n in capabilities.broker_addresses if n not in before.replicas)
    watcher_address = _address(capabilities, watcher)
    leader_address = _address(capabilities, last_in_sync)
    with raw.Connection.to(leader_address) as conn:
        _produce_values(conn, topic, 2, "replicated")
    cluster_control.kill(out_of_sync)
    try:
        _wait_for(lambda: _partition(leader_address, topic).isr == [last_in_sync], timeout,
                  f"the ISR to shrink to node {last_in_sync}")
        with raw.Connection.to(leader_address) as conn:
            _produce_values(conn, topic, 2, "leader-only")
        cluster_control.kill(last_in_sync)
        cluster_control.restart(out_of_sync)
        # Fencing the dead leader and unfencing the returning replica are metadata records that
        # the partition's leader change rides with; once the watcher lists exactly the live nodes,
        # the partition is in its final state.
        _wait_for(lambda: _brokers_seen_by(watcher_address) == {watcher, out_of_sync}, 2 * timeout,
                  f"node {last_in_sync} fenced and node {out_of_sync} registered")
        leaderless = _partition(watcher_address, topic)
        assert (leaderless.error_code, leaderless.leader) == (Errors.LEADER_NOT_AVAILABLE.code, -1), \
            f"expected LEADER_NOT_AVAILABLE (5) with leader -1, observed {leaderless}"
        assert out_of_sync not in leaderless.isr

        with raw.Connection.to(watcher_address) as conn:
            elected = raw.elect_leaders(conn, topic, [0], raw.UNCLEAN_ELECTION)
        assert elected.error_code == 0
        assert elected.partitions[0][0] == Errors.NONE.code, f"expected 0, observed {elected}"
        out_of_sync_address = _address(capabilities, out_of_sync)
        after = _wait_for(lambda: (lambda p: p if p.leader == out_of_sync else None)(
            _partition(out_of_sync_address, topic)), timeout, f"node {out_of_sync} to lead")
        assert after.isr == [out_of_sync]
        with raw.Connection.to(out_of_sync_address) as conn:
            end = _wait_for(lambda: (lambda r: r if r.error_code == 0 else None)(
                raw.list_offset(conn, topic, 0, raw.LATEST_TIMESTAMP)), 30, "the new leader to serve the partition")
        assert end.offset == 2, f"the unclean leader's log ends at {end.offset}, expected 2"
    finally:
        for node_id in (out_of_sync, last_in_sync):
            if not cluster_control.alive(node_id):
                cluster_control.restart(node_id)


# ---------------------------------------------------------------- leader epochs (KIP-320)
# The first version of each API whose request carries current_leader_epoch (KIP-320).
EPOCH_CARRIED_FROM = {"Fetch": (raw.FETCH, 9), "ListOffsets": (raw.LIST_OFFSETS, 4),
                      "OffsetForLeaderEpoch": (raw.OFFSET_FOR_LEADER_EPOCH, 2)}


def _epoch_probe_names(capabilities):
    """"Fetch v9" ... : every version of the three APIs that carries current_leader_epoch and both
    the broker and the codec speak."""
    return [f"{name} v{version}" for name, (api_key, first) in EPOCH_CARRIED_FROM.items()
            for version in speak.versions(capabilities, api_key, first)]


def _epoch_probes(conn, capabilities, topic, epoch):
    """The error code of each probe of :func:`_epoch_probe_names` carrying ``epoch`` as
    current_leader_epoch."""
    codes = {}
    for version in speak.versions(capabilities, raw.FETCH, 9):
        codes[f"Fetch v{version}"] = speak.fetch(conn, topic, version, offset=0, max_wait_ms=0,
                                                 current_leader_epoch=epoch).error_code
    for version in speak.versions(capabilities, raw.LIST_OFFSETS, 4):
        codes[f"ListOffsets v{version}"] = speak.list_offsets(conn, topic, raw.LATEST_TIMESTAMP, version,
                                                              current_leader_epoch=epoch).error_code
    for version in speak.versions(capabilities, raw.OFFSET_FOR_LEADER_EPOCH, 2):
        codes[f"OffsetForLeaderEpoch v{version}"] = speak.offset_for_leader_epoch(
            conn, topic, 0, version, current_leader_epoch=epoch).error_code
    return codes


def _require_epoch_apis(capabilities):
    capabilities.require_api(raw.METADATA, 7)
    capabilities.require_api(raw.FETCH, 9)
    capabilities.require_api(raw.LIST_OFFSETS, 4)
    capabilities.require_api(raw.OFFSET_FOR_LEADER_EPOCH, 2)


def _hints(answer):
    """What a KIP-951 answer tells a misdirected client: error, (leader, epoch), leader endpoint."""
    leader = answer.current_leader.leader_id
    return (answer.error_code, (leader, answer.current_leader.leader_epoch), answer.node_endpoints.get(leader))


def test_leader_epoch_from_the_future_is_unknown(topics, capabilities, broker):
    """KIP-320: the leader answers Fetch, ListOffsets and OffsetForLeaderEpoch carrying its own
    leader epoch (Metadata v7) with NONE, and carrying a higher epoch with UNKNOWN_LEADER_EPOCH (75),
    at every version that carries the epoch (Fetch v9+, ListOffsets v4+, OffsetForLeaderEpoch v2+)."""
    _require_epoch_apis(capabilities)
    topic = topics.create()
    conn = broker.leader(topic)
    _produce_values(conn, topic, 2, "epoch")
    epoch = raw.metadata(conn, [topic], version=7).topics[topic].partitions[0].leader_epoch
    assert epoch >= 0
    probes = _epoch_probe_names(capabilities)
    assert _epoch_probes(conn, capabilities, topic, epoch) == dict.fromkeys(probes, Errors.NONE.code)
    unknown = Errors.UNKNOWN_LEADER_EPOCH.code
    assert _epoch_probes(conn, capabilities, topic, epoch + 1) == dict.fromkeys(probes, unknown)


@pytest.mark.slow
def test_stale_leader_epoch_is_fenced_and_followers_point_to_the_leader(topics, capabilities, cluster_control,
                                                                       bootstrap, broker):
    """After a failover the new leader answers Fetch, ListOffsets and OffsetForLeaderEpoch carrying
    the old leader epoch with FENCED_LEADER_EPOCH (74), at every version carrying the epoch.  A
    follower answers ListOffsets (v4+), OffsetForLeaderEpoch (v2+) and Fetch v4-v10 with
    NOT_LEADER_OR_FOLLOWER (6) but serves Fetch v11+ (KIP-392), and answers every Produce version
    with 6, from v10 plus the current leader and its epoch in ``current_leader`` and the leader's
    endpoint in ``node_endpoints`` (KIP-951)."""
    capabilities.require_brokers(3)
    _require_epoch_apis(capabilities)
    capabilities.require_api(raw.PRODUCE, 10)
    timeout = _failover_timeout_s(capabilities)
    topic = topics.create(replication_factor=3, configs={"min.insync.replicas": "2"})
    before = _full_isr(bootstrap, topic)
    _produce_values(broker.leader(topic), topic, 3, "old")
    cluster_control.kill(before.leader)
    try:
        after = _wait_for(lambda: (lambda p: p if p.leader not in (-1, before.leader) else None)(
            _partition(bootstrap, topic)), timeout, "a new leader")
        leader_address = _address(capabilities, after.leader)
        # Metadata can name the leader a moment before it serves the partition.
        current = _wait_for(lambda: (lambda p: p if p.leader == after.leader else None)(
            _partition(leader_address, topic)), timeout, "the new leader to know it leads")
        with raw.Connection.to(leader_address) as conn:
            _wait_for(lambda: raw.list_offset_v4(conn, topic, 0, raw.LATEST_TIMESTAMP,
                                                 current.leader_epoch).error_code == 0, 30,
                      "the new leader to serve the partition")
            fenced = Errors.FENCED_LEADER_EPOCH.code
            assert _epoch_probes(conn, capabilities, topic, before.leader_epoch) == \
                dict.fromkeys(_epoch_probe_names(capabilities), fenced)
        follower = next(r for r in after.replicas if r not in (before.leader, after.leader))
        follower_address = _address(capabilities, follower)
        _wait_for(lambda: _partition(follower_address, topic).leader_epoch == current.leader_epoch, timeout,
                  "the follower to learn the new leader epoch")
        with raw.Connection.to(follower_address) as conn:
            not_leader = Errors.NOT_LEADER_OR_FOLLOWER.code
            epoch = current.leader_epoch
            # Fetch before v11 carries no client metadata, so only the leader serves it; from v11 on
            # a follower serves consumers too (KIP-392: FetchParams.fetchOnlyLeader).
            observed, expected = {}, {}
            for version in speak.versions(capabilities, raw.LIST_OFFSETS, 4):
                observed[f"ListOffsets v{version}"] = speak.list_offsets(
                    conn, topic, raw.LATEST_TIMESTAMP, version, current_leader_epoch=epoch).error_code
                expected[f"ListOffsets v{version}"] = not_leader
            for version in speak.versions(capabilities, raw.OFFSET_FOR_LEADER_EPOCH, 2):
                observed[f"OffsetForLeaderEpoch v{version}"] = speak.offset_for_leader_epoch(
                    conn, topic, 0, version, current_leader_epoch=epoch).error_code
                expected[f"OffsetForLeaderEpoch v{version}"] = not_leader
            for version in speak.versions(capabilities, raw.FETCH, 4):
                observed[f"Fetch v{version}"] = speak.fetch(conn, topic, version, offset=0, max_wait_ms=100,
                                                            current_leader_epoch=epoch).error_code
                expected[f"Fetch v{version}"] = not_leader if version < 11 else Errors.NONE.code
            assert observed == expected, "a follower's answers"
            leader_host, _, leader_port = leader_address.rpartition(":")
            for version in speak.versions(capabilities, raw.PRODUCE, 3):
                produced = speak.produce(conn, topic, raw.record_batch([raw.Record(None, b"misdirected")]), version)
                assert produced is not None
                if version < 10:
                    assert produced.error_code == not_leader, f"Produce v{version}: expected 6, observed {produced}"
                else:
                    assert _hints(produced) == (not_leader, (after.leader, epoch), (leader_host, int(leader_port))), \
                        f"Produce v{version}: observed {produced}"
    finally:
        _restart_and_rejoin(cluster_control, before.leader, bootstrap, topic, timeout)


def test_broker_without_a_replica_points_to_the_leader(topics, capabilities, bootstrap):
    """KIP-951: a broker that holds no replica of a partition answers every Produce version from
    v10 and every Fetch version from v16 with NOT_LEADER_OR_FOLLOWER (6), the partition's leader and
    leader epoch in ``current_leader`` and the leader's host and port in ``node_endpoints``, so the
    client need not refresh Metadata."""
    capabilities.require_brokers(2)
    capabilities.require_api(raw.METADATA, 12)
    topic = topics.create(replication_factor=1)
    state = _partition(bootstrap, topic)
    bystander = next(node_id for node_id in capabilities.broker_addresses if node_id not in state.replicas)
    leader_host, _, leader_port = _address(capabilities, state.leader).rpartition(":")
    not_leader = Errors.NOT_LEADER_OR_FOLLOWER.code
    with raw.Connection.to(_address(capabilities, bystander)) as conn:
        # The bystander learns the topic from the metadata log, perhaps after the leader does.
        _wait_for(lambda: _partition(_address(capabilities, bystander), topic).leader == state.leader, 20,
                  "the bystander to know the partition's leader")
        observed = {}
        for version in speak.versions(capabilities, raw.PRODUCE, 10):
            produced = speak.produce(conn, topic, raw.record_batch([raw.Record(None, b"misdirected")]), version)
            observed[f"Produce v{version}"] = _hints(produced)
        for version in speak.versions(capabilities, raw.FETCH, 16):
            fetched = speak.fetch(conn, topic, version, offset=0, max_wait_ms=0, current_leader_epoch=state.leader_epoch)
            observed[f"Fetch v{version}"] = _hints(fetched)

    expected = (not_leader, (state.leader, state.leader_epoch), (leader_host, int(leader_port)))
    assert observed == dict.fromkeys(observed, expected), f"observed {observed}"


# ---------------------------------------------------------------- fetch from follower (KIP-392)
def test_consumer_in_a_followers_rack_is_sent_to_that_follower(topics, capabilities, bootstrap, broker):
    """KIP-392: with replica.selector.class=RackAwareReplicaSelector, a leader answers a Fetch
    (every version from v11, the first with rack_id) whose rack_id is an in-sync follower's
    broker.rack with no records and preferred_read_replica naming that follower; a consumer in the
    leader's own rack gets the records from the leader (preferred_read_replica -1); the follower
    serves the same consumer the acknowledged records."""
    capabilities.require_brokers(3)
    capabilities.require_api(raw.FETCH, 11)
    selector = capabilities.broker_configs.get("replica.selector.class", "")
    if not selector.endswith("RackAwareReplicaSelector"):
        pytest.skip(f"replica.selector.class is {selector or 'not set'}, not the rack-aware selector")
    with raw.Connection.to(bootstrap.split(",")[0]) as conn:
        racks = {node_id: info.rack for node_id, info in raw.metadata(conn, [], version=7).brokers.items()}
    if len({rack for rack in racks.values() if rack}) < 2:
        pytest.skip(f"brokers advertise fewer than two racks: {racks}")
    topic = topics.create(replication_factor=3)
    state = _full_isr(bootstrap, topic)
    leader_rack = racks[state.leader]
    follower = next((r for r in state.replicas if racks.get(r) and racks[r] != leader_rack), None)
    if follower is None:
        pytest.skip(f"no follower of {state} in a rack other than the leader's ({racks})")
    epoch = state.leader_epoch
    leader = broker.leader(topic)
    _produce_values(leader, topic, 3, "rack")

    versions = speak.versions(capabilities, raw.FETCH, 11)

    def fetched(conn, version, rack_id):
        answer = speak.fetch(conn, topic, version, offset=0, max_wait_ms=0, current_leader_epoch=epoch, rack_id=rack_id)
        return answer.error_code, answer.preferred_read_replica, answer.record_count

    for version in versions:
        assert fetched(leader, version, racks[follower]) == (0, follower, 0), \
            f"Fetch v{version} from the follower's rack: expected a redirection to {follower} without records"
        assert fetched(leader, version, leader_rack) == (0, -1, 3), f"Fetch v{version} from the leader's rack"

    # The follower serves records up to the high watermark it has learnt from the leader, which
    # follows the leader's by one fetch round trip.
    with raw.Connection.to(_address(capabilities, follower)) as conn:
        _wait_for(lambda: (lambda f: f if f[0] != 0 or f[2] == 3 else None)(fetched(conn, versions[-1], racks[follower])),
                  30, "the follower to serve the acknowledged records")
        for version in versions:
            assert fetched(conn, version, racks[follower]) == (0, -1, 3), f"Fetch v{version} from the follower"


# ---------------------------------------------------------------- group coordinator failover
def _find_group_coordinator(addresses, group):
    """FindCoordinator v1 asked of the first live address; None when none answers."""
    for address in addresses:
        try:
            with raw.Connection.to(address, timeout=3) as conn:
                return raw.find_coordinator(conn, group)
        except (OSError, raw.ConnectionClosed):
            continue
    return None


@pytest.mark.slow
def test_group_coordinator_moves_when_its_node_dies(topics, capabilities, cluster_control, bootstrap):
    """The group coordinator is the leader of the group's __consumer_offsets partition: when its
    node dies, FindCoordinator names another node once the partition has a new leader, and the
    offsets committed before are fetched from the new coordinator."""
    capabilities.require_brokers(3)
    timeout = _failover_timeout_s(capabilities)
    topic = topics.create(replication_factor=3)
    group = topics.name("group")
    addresses = list(capabilities.broker_addresses.values())
    first = _wait_for(lambda: (lambda c: c if c is not None and c.error_code == 0 else None)(
        _find_group_coordinator(addresses, group)), 30, "a group coordinator")
    with raw.Connection(first.host, first.port) as conn:
        committed = _wait_for(lambda: (lambda e: e if e == {0: 0} else None)(
            raw.offset_commit(conn, group, -1, "", topic, {0: 42})), 30, "a committed offset")
    assert committed == {0: 0}
    cluster_control.kill(first.node_id)
    try:
        survivors = [a for node_id, a in capabilities.broker_addresses.items() if node_id != first.node_id]
        moved = _wait_for(lambda: (lambda c: c if c is not None and c.error_code == 0
                                   and c.node_id != first.node_id else None)(
            _find_group_coordinator(survivors, group)), timeout, "the coordinator to move")
        assert moved.address in survivors
        with raw.Connection(moved.host, moved.port) as conn:
            # The new coordinator first loads the group from the log (COORDINATOR_LOAD_IN_PROGRESS,
            # 14, or NOT_COORDINATOR, 16, a moment earlier), then answers reads at its partition's
            # high watermark, which passes the commit record one follower fetch after the election:
            # Kafka 4.3.1 answers offset -1 without an error in between.  Only the committed offset,
            # or the end of the budget, ends the wait.
            deadline = time.monotonic() + 30
            while True:
                group_error, fetched = raw.offset_fetch_with_group_error(conn, group, topic, [0])
                if (group_error == 0 and 0 in fetched and fetched[0].offset == 42) or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
        assert group_error == 0, f"expected 0, observed group error {group_error}"
        assert (fetched[0].error_code, fetched[0].offset) == (0, 42), fetched
    finally:
        cluster_control.restart(first.node_id)
