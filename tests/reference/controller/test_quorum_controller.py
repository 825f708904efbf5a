"""The quorum controller's decisions: records and responses with Kafka 4.3's rules and error codes."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from reference.controller.cluster_control import BrokerControlState, next_state
from reference.controller.image import MetadataImage
from reference.controller.metadata_records import (
    CONFIG_RESOURCE_BROKER,
    CONFIG_RESOURCE_TOPIC,
    MetadataRecord,
)
from reference.controller.quorum_controller import ControllerConfig, ControllerResult, QuorumController
from reference.errors import Errors, by_name
from reference.protocol.messages import alter_configs as alter_configs_api
from reference.protocol.messages import incremental_alter_configs as incremental_api

from .controller_cluster import CLUSTER_ID, Cluster, names, new_topic

STALE_BROKER_EPOCH = by_name["STALE_BROKER_EPOCH"].code
DUPLICATE_BROKER_REGISTRATION = by_name["DUPLICATE_BROKER_REGISTRATION"].code
INCONSISTENT_CLUSTER_ID = by_name["INCONSISTENT_CLUSTER_ID"].code
INVALID_REGISTRATION = by_name["INVALID_REGISTRATION"].code
INELIGIBLE_REPLICA = by_name["INELIGIBLE_REPLICA"].code
INVALID_UPDATE_VERSION = by_name["INVALID_UPDATE_VERSION"].code
PREFERRED_LEADER_NOT_AVAILABLE = by_name["PREFERRED_LEADER_NOT_AVAILABLE"].code
ELIGIBLE_LEADERS_NOT_AVAILABLE = by_name["ELIGIBLE_LEADERS_NOT_AVAILABLE"].code
BROKER_ID_NOT_REGISTERED = by_name["BROKER_ID_NOT_REGISTERED"].code
PREFERRED, UNCLEAN = 0, 1
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


# -- bootstrap -----------------------------------------------------------------------------------------


def test_bootstrap_finalizes_kafka_43_features_and_the_elr_safety_config_in_one_transaction() -> None:
    controller = QuorumController(ControllerConfig(min_insync_replicas=2), MetadataImage())
    result = controller.bootstrap()
    assert names(result)[0] == "BeginTransactionRecord" and names(result)[-1] == "EndTransactionRecord"
    assert result.records[1].data.name == "metadata.version" and result.records[1].data.feature_level == 30
    # Kafka 4.3's default levels, capped at what refka implements (reference.controller.features):
    # transaction version 2 (KIP-890 part 2) as Kafka; group, share and streams versions stay at 0,
    # so they are not finalized.
    assert controller.image.features == {"metadata.version": 30, "eligible.leader.replicas.version": 1,
                                         "transaction.version": 2}
    assert controller.image.configs == {(CONFIG_RESOURCE_BROKER, ""): {"min.insync.replicas": "2"}}
    assert controller.bootstrap().records == []  # a log with a metadata.version is not bootstrapped again


def test_bootstrap_without_elr_writes_no_elr_feature_and_no_safety_config() -> None:
    controller = QuorumController(ControllerConfig(eligible_leader_replicas_version=0), MetadataImage())
    controller.bootstrap()
    assert "eligible.leader.replicas.version" not in controller.image.features
    assert controller.image.configs == {}
    assert not controller.elr_enabled()


# -- BrokerRegistration (62) ---------------------------------------------------------------------------------


def test_a_new_broker_is_registered_fenced_with_the_offset_of_its_batch_as_epoch() -> None:
    cluster = Cluster(brokers=0)
    offset = cluster.controller.next_offset
    result = cluster.register(1, rack="r1")
    assert names(result) == ["RegisterBrokerRecord"]
    assert result.response.error_code == 0 and result.response.broker_epoch == offset
    registration = cluster.image.brokers[1]
    assert registration.fenced and registration.broker_epoch == offset and registration.rack == "r1"
    assert registration.log_dirs and registration.listeners[0].port == 9091


def test_registration_with_another_cluster_id_is_inconsistent_cluster_id() -> None:
    cluster = Cluster(brokers=0)
    result = cluster.register(1, cluster_id="another")
    assert result.response.error_code == INCONSISTENT_CLUSTER_ID and result.records == []
    assert 1 not in cluster.image.brokers


def test_another_incarnation_while_the_session_lives_is_duplicate_broker_registration() -> None:
    cluster = Cluster(brokers=1, broker_session_timeout_ms=9000)
    result = cluster.register(1)
    assert result.response.error_code == DUPLICATE_BROKER_REGISTRATION and result.records == []
    cluster.advance(9001)  # the session expires and the broker is fenced
    assert cluster.image.brokers[1].fenced
    result = cluster.register(1)
    assert result.response.error_code == 0
    assert cluster.image.brokers[1].broker_epoch == result.response.broker_epoch


def test_the_same_incarnation_registering_again_keeps_its_epoch_and_state() -> None:
    cluster = Cluster(brokers=1)
    epoch = cluster.image.brokers[1].broker_epoch
    result = cluster.register(1, incarnation=cluster.incarnations[1])
    assert result.response.error_code == 0 and result.response.broker_epoch == epoch
    assert not cluster.image.brokers[1].fenced


def test_a_broker_that_cannot_run_a_finalized_feature_level_is_unsupported_version() -> None:
    cluster = Cluster(brokers=0)
    features = {"metadata.version": (1, 29), "eligible.leader.replicas.version": (0, 1), "group.version": (0, 1),
                "share.version": (0, 1), "streams.version": (0, 1), "transaction.version": (0, 2)}
    assert cluster.register(1, features=features).response.error_code == Errors.UNSUPPORTED_VERSION.code
    del features["eligible.leader.replicas.version"]  # finalized at 1, not announced: supports only 0
    features["metadata.version"] = (1, 30)
    assert cluster.register(1, features=features).response.error_code == Errors.UNSUPPORTED_VERSION.code


def test_a_zookeeper_migrating_broker_is_refused_as_broker_id_not_registered() -> None:
    cluster = Cluster(brokers=0)
    request = cluster.registration_request(1)
    request.is_migrating_zk_broker = True
    result = cluster.checked(cluster.controller.register_broker(request, cluster.now_ms))
    assert result.response.error_code == BROKER_ID_NOT_REGISTERED and result.records == []


def test_registration_without_metadata_version_or_log_dirs_is_invalid_registration() -> None:
    cluster = Cluster(brokers=1)
    features = {"eligible.leader.replicas.version": (0, 1), "group.version": (0, 1), "share.version": (0, 1),
                "streams.version": (0, 1), "transaction.version": (0, 2)}
    assert cluster.register(2, features=features).response.error_code == INVALID_REGISTRATION
    assert cluster.register(2, log_dirs=[]).response.error_code == INVALID_REGISTRATION
    assert cluster.register(2, log_dirs=[uuid.UUID(int=5)]).response.error_code == INVALID_REGISTRATION  # reserved
    taken = [cluster.log_dirs[1]]
    assert cluster.register(2, log_dirs=taken).response.error_code == INVALID_REGISTRATION
    twice = uuid.uuid4()
    assert cluster.register(2, log_dirs=[twice, twice]).response.error_code == INVALID_REGISTRATION
    assert 2 not in cluster.image.brokers


# -- BrokerHeartbeat (63) ---------------------------------------------------------------------------------------


def test_a_broker_is_unfenced_only_once_it_has_replayed_its_registration_record() -> None:
    cluster = Cluster(brokers=0)
    cluster.register(1)
    register_offset = cluster.image.offset
    behind = cluster.heartbeat(1, offset=register_offset - 1)
    assert behind.response.is_fenced and not behind.response.is_caught_up and behind.records == []
    caught_up = cluster.heartbeat(1, offset=register_offset)
    assert not caught_up.response.is_fenced and caught_up.response.is_caught_up
    assert names(caught_up) == ["BrokerRegistrationChangeRecord"] and caught_up.records[0].data.fenced == -1
    assert not cluster.image.brokers[1].fenced


def test_a_heartbeat_with_an_old_epoch_or_from_an_unknown_broker_is_stale_broker_epoch() -> None:
    cluster = Cluster(brokers=1)
    epoch = cluster.image.brokers[1].broker_epoch
    assert cluster.heartbeat(1, epoch=epoch - 1).response.error_code == STALE_BROKER_EPOCH
    assert cluster.heartbeat(7, epoch=3).response.error_code == STALE_BROKER_EPOCH


def test_want_fence_fences_the_broker_and_moves_its_leadership() -> None:
    cluster = Cluster(brokers=3, default_replication_factor=3)
    cluster.create_topic("t", partitions=3)
    led = [p for p, part in cluster.image.topics["t"].partitions.items() if part.leader == 2]
    result = cluster.fence(2)
    assert result.response.is_fenced and cluster.image.brokers[2].fenced
    assert names(result)[-1] == "BrokerRegistrationChangeRecord" and result.records[-1].data.fenced == 1
    for partition in cluster.image.topics["t"].partitions.values():
        assert 2 not in partition.isr and partition.leader != 2
    assert led and all(cluster.partition("t", p).leader in (1, 3) for p in led)


def test_controlled_shutdown_moves_leadership_first_then_answers_should_shut_down() -> None:
    cluster = Cluster(brokers=3, default_replication_factor=3)
    cluster.create_topic("t", partitions=3)
    first = cluster.heartbeat(1, want_shut_down=True)
    assert not first.response.should_shut_down and not first.response.is_fenced
    assert cluster.image.brokers[1].in_controlled_shutdown
    assert first.records[0].name == "BrokerRegistrationChangeRecord" and first.records[0].data.in_controlled_shutdown == 1
    for partition in cluster.image.topics["t"].partitions.values():
        assert partition.leader != 1 and 1 not in partition.isr
    waiting = cluster.heartbeat(1, want_shut_down=True)  # the others have not replayed the move yet
    assert not waiting.response.should_shut_down
    cluster.heartbeat_all(except_for=(1,))
    done = cluster.heartbeat(1, want_shut_down=True)
    assert done.response.should_shut_down and done.response.is_fenced and cluster.image.brokers[1].fenced
    late = cluster.heartbeat(1, want_shut_down=True)  # asked again after the verdict: fenced, so at once
    assert late.response.is_fenced and late.response.should_shut_down


def test_a_broker_leading_nothing_may_shut_down_at_once() -> None:
    cluster = Cluster(brokers=2)
    result = cluster.heartbeat(2, want_shut_down=True)
    assert result.response.should_shut_down and result.response.is_fenced


def test_the_heartbeat_state_table() -> None:
    state = BrokerControlState

    def step(current: BrokerControlState, **given: bool) -> BrokerControlState:
        inputs = dict(want_fence=False, want_shut_down=False, caught_up=True, leads_partitions=False,
                      shutdown_offset_replayed=False)
        inputs.update(given)
        return next_state(current, **inputs)

    assert step(state.FENCED, want_shut_down=True) is state.SHUTDOWN_NOW
    assert step(state.FENCED, caught_up=False) is state.FENCED
    assert step(state.FENCED, want_fence=True) is state.FENCED
    assert step(state.FENCED) is state.UNFENCED
    assert step(state.UNFENCED, want_fence=True) is state.FENCED
    assert step(state.UNFENCED, want_fence=True, want_shut_down=True) is state.SHUTDOWN_NOW
    assert step(state.UNFENCED, want_shut_down=True, leads_partitions=True) is state.CONTROLLED_SHUTDOWN
    assert step(state.UNFENCED, want_shut_down=True) is state.SHUTDOWN_NOW
    assert step(state.CONTROLLED_SHUTDOWN, leads_partitions=True, shutdown_offset_replayed=True) \
        is state.CONTROLLED_SHUTDOWN
    assert step(state.CONTROLLED_SHUTDOWN) is state.CONTROLLED_SHUTDOWN
    assert step(state.CONTROLLED_SHUTDOWN, shutdown_offset_replayed=True) is state.SHUTDOWN_NOW


# -- sessions, fencing and elections ---------------------------------------------------------------------------


def test_a_broker_is_fenced_when_its_session_times_out_and_not_before() -> None:
    cluster = Cluster(brokers=3, default_replication_factor=3, broker_session_timeout_ms=9000)
    cluster.create_topic("t", partitions=1)
    cluster.advance(0)
    cluster.heartbeat_all(except_for=(3,))
    cluster.now_ms += 4000
    cluster.heartbeat_all(except_for=(3,))
    assert cluster.advance(5000).records == []  # 9000 ms since broker 3's last heartbeat: still alive
    cluster.heartbeat_all(except_for=(3,))
    result = cluster.advance(1)
    assert names(result)[-1] == "BrokerRegistrationChangeRecord"
    assert result.records[-1].data.broker_id == 3 and result.records[-1].data.fenced == 1
    assert cluster.image.brokers[3].fenced and not cluster.image.brokers[1].fenced
    assert 3 not in cluster.partition("t").isr


def test_a_new_active_controller_gives_every_broker_a_full_session() -> None:
    cluster = Cluster(brokers=2, broker_session_timeout_ms=9000)
    cluster.now_ms = 60_000  # long after the last heartbeats, a new controller takes over
    successor = QuorumController(cluster.controller.config, cluster.image.copy())
    assert successor.poll(cluster.now_ms).records == []
    assert successor.poll(cluster.now_ms + 9000).records == []
    fenced = successor.poll(cluster.now_ms + 9001)
    assert sorted(r.data.broker_id for r in fenced.records if r.name == "BrokerRegistrationChangeRecord") == [1, 2]
    successor.image.check_valid()


def test_isr_shrink_keeps_the_leader() -> None:
    cluster = Cluster(brokers=3, default_replication_factor=3)
    cluster.create_topics(new_topic("t", assignments=[[1, 2, 3]]))
    before = cluster.partition("t")
    result = cluster.fence(3)
    partition = cluster.partition("t")
    assert partition.leader == 1 and partition.isr == [1, 2]
    assert partition.leader_epoch == before.leader_epoch  # no leader change, no leader epoch bump
    assert partition.partition_epoch == before.partition_epoch + 1
    change = result.records[0].data
    assert change.leader == -2 and change.isr == [1, 2]


def test_leader_failure_elects_the_next_isr_member_in_assignment_order() -> None:
    cluster = Cluster(brokers=3, default_replication_factor=3)
    cluster.create_topics(new_topic("t", assignments=[[1, 3, 2]]))
    cluster.fence(1)
    partition = cluster.partition("t")
    assert partition.leader == 3 and partition.isr == [3, 2] and partition.leader_epoch == 1


def _leaderless_with_a_live_out_of_sync_replica(elr: bool = False, **config: object) -> Cluster:
    """Replicas [1, 2]; broker 2 dropped out of the ISR, then leader 1 is fenced."""
    cluster = Cluster(brokers=2, elr=elr, **config)  # type: ignore[arg-type]
    cluster.create_topics(new_topic("t", assignments=[[1, 2]]))
    assert cluster.alter_partition("t", 0, [1]).response.topics[0].partitions[0].error_code == 0
    cluster.fence(1)
    return cluster


def test_without_unclean_election_a_partition_whose_isr_died_stays_leaderless() -> None:
    cluster = _leaderless_with_a_live_out_of_sync_replica()
    partition = cluster.partition("t")
    assert partition.leader == -1 and partition.isr == [1]  # the last replica standing stays in the ISR
    cluster.advance(300_000)
    cluster.heartbeat(2)
    assert cluster.partition("t").leader == -1


def test_unclean_election_by_broker_config_elects_an_out_of_sync_replica_as_recovering() -> None:
    cluster = _leaderless_with_a_live_out_of_sync_replica(unclean_leader_election_enable=True)
    partition = cluster.partition("t")
    assert partition.leader == 2 and partition.isr == [2] and partition.leader_recovery_state == 1


def test_unclean_election_enabled_per_topic_overrides_the_broker_default() -> None:
    cluster = Cluster(brokers=2, elr=False)
    cluster.create_topics(new_topic("t", assignments=[[1, 2]], configs={"unclean.leader.election.enable": "true"}))
    cluster.alter_partition("t", 0, [1])
    cluster.fence(1)
    assert cluster.partition("t").leader == 2 and cluster.partition("t").leader_recovery_state == 1


def test_a_dynamic_cluster_wide_unclean_setting_applies_to_every_topic() -> None:
    cluster = Cluster(brokers=2, elr=False)
    cluster.create_topics(new_topic("t", assignments=[[1, 2]]))
    cluster.alter_partition("t", 0, [1])
    cluster.set_cluster_config("unclean.leader.election.enable", "true")
    cluster.fence(1)
    assert cluster.partition("t").leader == 2


def test_enabling_unclean_election_later_elects_at_the_next_periodic_check() -> None:
    cluster = _leaderless_with_a_live_out_of_sync_replica()
    cluster.set_topic_config("t", "unclean.leader.election.enable", "true")
    cluster.advance(0)  # arms the periodic tasks
    cluster.tick(298_000, except_for=(1,))
    assert cluster.partition("t").leader == -1
    cluster.tick(2_000, except_for=(1,))  # the unclean election check runs every 5 minutes
    assert cluster.partition("t").leader == 2


def test_elr_keeps_replicas_that_left_a_too_small_isr_eligible_and_elects_one_cleanly() -> None:
    cluster = Cluster(brokers=3, default_replication_factor=3, min_insync_replicas=2)
    cluster.create_topics(new_topic("t", assignments=[[1, 2, 3]]))
    cluster.fence(3)
    assert cluster.partition("t").isr == [1, 2] and cluster.partition("t").elr == []
    cluster.fence(2)
    assert cluster.partition("t").isr == [1] and cluster.partition("t").elr == [2]
    cluster.fence(1)
    partition = cluster.partition("t")
    assert partition.leader == -1 and partition.isr == [] and partition.elr == [1, 2]
    assert partition.last_known_elr == [1]  # the last known leader
    cluster.heartbeat(2)  # broker 2 comes back: an ELR member, so a clean election
    partition = cluster.partition("t")
    assert partition.leader == 2 and partition.isr == [2] and partition.elr == [1]
    assert partition.leader_recovery_state == 0 and partition.last_known_elr == []


def test_without_elr_the_isr_never_empties_and_a_returning_follower_cannot_lead() -> None:
    cluster = Cluster(brokers=3, default_replication_factor=3, min_insync_replicas=2, elr=False)
    cluster.create_topics(new_topic("t", assignments=[[1, 2, 3]]))
    cluster.fence(3)
    cluster.fence(2)
    cluster.fence(1)
    partition = cluster.partition("t")
    assert partition.leader == -1 and partition.isr == [1] and partition.elr == []
    cluster.heartbeat(2)
    assert cluster.partition("t").leader == -1
    cluster.heartbeat(1)
    assert cluster.partition("t").leader == 1


def test_growing_the_isr_back_to_min_insync_replicas_clears_the_elr() -> None:
    cluster = Cluster(brokers=3, default_replication_factor=3, min_insync_replicas=2)
    cluster.create_topics(new_topic("t", assignments=[[1, 2, 3]]))
    cluster.alter_partition("t", 0, [1])
    assert cluster.partition("t").elr == [2, 3]
    cluster.alter_partition("t", 0, [1, 2])
    assert cluster.partition("t").elr == [] and cluster.partition("t").isr == [1, 2]


def test_an_unclean_restart_removes_the_broker_from_the_elr() -> None:
    cluster = Cluster(brokers=3, default_replication_factor=3, min_insync_replicas=2)
    cluster.create_topics(new_topic("t", assignments=[[1, 2, 3]]))
    cluster.fence(3)
    cluster.fence(2)
    assert cluster.partition("t").elr == [2]
    cluster.register(2)  # a new incarnation without its previous epoch: an unclean shutdown
    assert cluster.partition("t").elr == []


def test_a_clean_restart_keeps_the_broker_in_the_elr() -> None:
    cluster = Cluster(brokers=3, default_replication_factor=3, min_insync_replicas=2)
    cluster.create_topics(new_topic("t", assignments=[[1, 2, 3]]))
    cluster.fence(3)
    epoch = cluster.image.brokers[2].broker_epoch
    cluster.fence(2)
    cluster.register(2, previous_broker_epoch=epoch)
    assert cluster.partition("t").elr == [2]


def test_the_last_known_leader_is_elected_when_isr_and_elr_are_empty() -> None:
    cluster = Cluster(brokers=2, default_replication_factor=2, min_insync_replicas=2)
    cluster.create_topics(new_topic("t", assignments=[[1, 2]]))
    cluster.fence(2)
    cluster.fence(1)
    assert cluster.partition("t").elr == [1, 2] and cluster.partition("t").last_known_elr == [1]
    cluster.register(2)  # both restart uncleanly: the ELR empties
    cluster.register(1)
    partition = cluster.partition("t")
    assert partition.isr == [] and partition.elr == [] and partition.last_known_elr == [1]
    cluster.heartbeat(2)
    assert cluster.partition("t").leader == -1  # broker 2 was never the last leader
    cluster.heartbeat(1)
    partition = cluster.partition("t")
    assert partition.leader == 1 and partition.isr == [1] and partition.leader_recovery_state == 1


# -- CreateTopics (19) ----------------------------------------------------------------------------------------


def test_create_topics_writes_topic_then_configs_then_partitions() -> None:
    cluster = Cluster(brokers=3, default_replication_factor=3)
    result = cluster.create_topic("orders", partitions=2, configs={"retention.ms": "1000"})
    assert names(result) == ["TopicRecord", "ConfigRecord", "PartitionRecord", "PartitionRecord"]
    created = result.response.topics[0]
    assert created.error_code == 0 and created.error_message is None
    assert created.num_partitions == 2 and created.replication_factor == 3
    assert uuid.UUID(int=0) != created.topic_id == cluster.topic_uuid("orders")
    assert {c.name: c.value for c in created.configs}["retention.ms"] == "1000"
    for partition in cluster.image.topics["orders"].partitions.values():
        assert partition.isr == partition.replicas and partition.leader == partition.replicas[0]
        assert partition.leader_epoch == 0 and partition.partition_epoch == 0
        assert partition.directories == [cluster.image.brokers[b].log_dirs[0] for b in partition.replicas]
    assert cluster.image.configs[(CONFIG_RESOURCE_TOPIC, "orders")] == {"retention.ms": "1000"}


@pytest.mark.parametrize(("topic", "error", "message"), [
    (new_topic("bad name"), Errors.INVALID_TOPIC_EXCEPTION, "Topic name is invalid: 'bad name' contains one or "
     "more characters other than ASCII alphanumerics, '.', '_' and '-'"),
    (new_topic("t", replication_factor=4), Errors.INVALID_REPLICATION_FACTOR, "Unable to replicate the partition "
     "4 time(s): The target replication factor of 4 cannot be reached because only 3 broker(s) are registered or some brokers have all their log directories cordoned."),
    (new_topic("t", replication_factor=0), Errors.INVALID_REPLICATION_FACTOR,
     "Replication factor must be larger than 0, or -1 to use the default value."),
    (new_topic("t", partitions=0), Errors.INVALID_PARTITIONS,
     "Number of partitions was set to an invalid non-positive value."),
    (new_topic("t", configs={"retention.ms": "soon"}), Errors.INVALID_CONFIG,
     "Invalid value soon for configuration retention.ms: Not a number of type LONG"),
    (new_topic("t", configs={"retention.ms": None}), Errors.INVALID_CONFIG,
     "Null value not supported for topic configs: retention.ms"),
    (new_topic("t", assignments=[[1, 9]]), Errors.INVALID_REPLICA_ASSIGNMENT,
     "The manual partition assignment includes broker 9, but no such broker is registered."),
    (new_topic("t", assignments=[[1, 1]]), Errors.INVALID_REPLICA_ASSIGNMENT,
     "The manual partition assignment includes the broker 1 more than once."),
    (new_topic("t", assignments=[[1, 2], [3]]), Errors.INVALID_REPLICA_ASSIGNMENT,
     "The manual partition assignment includes a partition with 1 replica(s), but this is not consistent with "
     "previous partitions, which have 2 replica(s)."),
    (new_topic("__cluster_metadata"), Errors.INVALID_REQUEST, "Creation of internal topic __cluster_metadata is "
     "prohibited."),
])
def test_create_topics_refusals(topic: object, error: object, message: str) -> None:
    cluster = Cluster(brokers=3)
    result = cluster.create_topics(topic)  # type: ignore[arg-type]
    answer = result.response.topics[0]
    assert (answer.error_code, answer.error_message) == (error.code, message)  # type: ignore[attr-defined]
    assert result.records == [] and cluster.image.topics == {}


def test_manual_assignment_with_gaps_or_with_counts_is_refused() -> None:
    cluster = Cluster(brokers=3)
    gap = new_topic("t", assignments=[[1], [2]])
    gap.assignments[1].partition_index = 2
    answer = cluster.create_topics(gap).response.topics[0]
    assert answer.error_code == Errors.INVALID_REPLICA_ASSIGNMENT.code
    both = new_topic("t", assignments=[[1]])
    both.num_partitions = 1
    assert cluster.create_topics(both).response.topics[0].error_code == Errors.INVALID_REQUEST.code
    cluster.fence(2)
    cluster.fence(3)
    fenced = cluster.create_topics(new_topic("t", assignments=[[2, 3]])).response.topics[0]
    assert (fenced.error_code, fenced.error_message) == (
        Errors.INVALID_REPLICA_ASSIGNMENT.code,
        "All brokers specified in the manual partition assignment for partition 0 are fenced or in controlled "
        "shutdown.")


def test_an_existing_or_colliding_topic_and_a_duplicated_name_are_refused() -> None:
    cluster = Cluster(brokers=1)
    cluster.create_topic("a.b")
    assert cluster.create_topic("a.b").response.topics[0].error_code == Errors.TOPIC_ALREADY_EXISTS.code
    collides = cluster.create_topic("a_b").response.topics[0]
    assert (collides.error_code, collides.error_message) == (Errors.INVALID_TOPIC_EXCEPTION.code,
                                                             "Topic 'a_b' collides with existing topic: a.b")
    result = cluster.create_topics(new_topic("x"), new_topic("x"), new_topic("y"))
    answers = {t.name: (t.error_code, t.error_message) for t in result.response.topics}
    assert len(result.response.topics) == 2
    assert answers == {"x": (Errors.INVALID_REQUEST.code, "Duplicate topic name."), "y": (0, None)}


def test_validate_only_checks_everything_and_writes_nothing() -> None:
    cluster = Cluster(brokers=3)
    offset = cluster.image.offset
    result = cluster.create_topic("t", partitions=3, validate_only=True)
    assert result.response.topics[0].error_code == 0 and result.response.topics[0].num_partitions == 3
    assert result.records == [] and "t" not in cluster.image.topics and cluster.image.offset == offset


def test_more_than_10000_partitions_in_one_request_is_a_policy_violation_for_every_topic() -> None:
    cluster = Cluster(brokers=1, num_partitions=5000)
    result = cluster.create_topics(new_topic("a", partitions=5001), new_topic("b", partitions=-1))
    assert [(t.name, t.error_code, t.error_message) for t in result.response.topics] == [
        ("a", Errors.POLICY_VIOLATION.code, "Excessively large number of partitions per request."),
        ("b", Errors.POLICY_VIOLATION.code, "Excessively large number of partitions per request.")]
    assert result.records == [] and cluster.image.topics == {}
    # A refused count (-5) adds nothing to the sum, but does not save the rest of the request.
    mixed = cluster.create_topics(new_topic("c", partitions=3), new_topic("bad/name", partitions=-5),
                                  new_topic("d", partitions=10_000))
    assert {t.error_code for t in mixed.response.topics} == {Errors.POLICY_VIOLATION.code}


def test_a_partition_sum_that_wraps_a_java_int_is_an_unknown_server_error() -> None:
    cluster = Cluster(brokers=1)
    alone = cluster.create_topics(new_topic("a", partitions=(1 << 31) - 1)).response.topics[0]
    assert alone.error_code == Errors.POLICY_VIOLATION.code
    wrapped = cluster.create_topics(new_topic("a", partitions=(1 << 31) - 1), new_topic("b", partitions=2))
    assert [(t.error_code, t.error_message) for t in wrapped.response.topics] == [
        (Errors.UNKNOWN_SERVER_ERROR.code, None)] * 2
    assert wrapped.records == []


def test_more_than_10000_records_in_one_operation_is_refused_whole_even_when_only_validating() -> None:
    cluster = Cluster(brokers=1)
    result = cluster.create_topic("a", partitions=10_000, validate_only=True)  # 10,001 records
    answer = result.response.topics[0]
    assert (answer.error_code, answer.error_message) == (Errors.POLICY_VIOLATION.code,
                                                         "Unable to perform excessively large batch operation.")
    assert result.records == [] and cluster.image.topics == {}
    ok = cluster.create_topic("b", partitions=9_999)
    assert ok.response.topics[0].error_code == 0 and len(ok.records) == 10_000


def test_the_record_cap_applies_to_config_changes_too() -> None:
    cluster = Cluster(brokers=1)
    keys = [(f"custom.key.{i}", SET, "x") for i in range(10_001)]  # unknown broker keys are accepted
    for validate_only in (True, False):
        result = cluster.alter_configs(CONFIG_RESOURCE_BROKER, "", *keys, validate_only=validate_only)
        answer = result.response.responses[0]
        assert (answer.error_code, answer.error_message) == (Errors.POLICY_VIOLATION.code,
                                                             "Unable to perform excessively large batch operation.")
        assert result.records == []
    assert cluster.alter_configs(CONFIG_RESOURCE_BROKER, "", *keys[:10_000]).response.responses[0].error_code == 0


def test_create_partitions_fails_the_topic_that_overflows_the_record_cap_with_unknown_server_error() -> None:
    cluster = Cluster(brokers=1)
    cluster.create_topic("x")
    cluster.create_topic("y")
    result = cluster.create_partitions_many({"x": 5_002, "y": 5_002})
    answers = {r.name: (r.error_code, r.error_message) for r in result.response.results}
    assert answers == {"x": (0, None), "y": (Errors.UNKNOWN_SERVER_ERROR.code, None)}
    assert len(cluster.image.topics["x"].partitions) == 5_002 and len(cluster.image.topics["y"].partitions) == 1


def test_rack_aware_placement_spreads_each_partitions_replicas_over_the_racks() -> None:
    racks = {1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
    cluster = Cluster(brokers=6, racks=racks)
    cluster.create_topic("t", partitions=12, replication_factor=3)
    leaders: dict[int, int] = {}
    for partition in cluster.image.topics["t"].partitions.values():
        assert sorted(racks[b] for b in partition.replicas) == ["a", "b", "c"]
        leaders[partition.leader] = leaders.get(partition.leader, 0) + 1
    assert sorted(leaders) == [1, 2, 3, 4, 5, 6] and set(leaders.values()) == {2}


def test_placement_never_uses_a_broker_in_controlled_shutdown_and_never_makes_a_fenced_leader() -> None:
    cluster = Cluster(brokers=4, default_replication_factor=2)
    cluster.create_topic("led", partitions=4)
    cluster.heartbeat(1, want_shut_down=True)
    cluster.fence(2)
    cluster.create_topic("t", partitions=6)
    for partition in cluster.image.topics["t"].partitions.values():
        assert 1 not in partition.replicas and partition.leader in (3, 4)
        assert 2 not in partition.isr


def test_creating_a_topic_when_every_broker_is_fenced_is_invalid_replication_factor() -> None:
    cluster = Cluster(brokers=2)
    cluster.fence(1)
    cluster.fence(2)
    answer = cluster.create_topic("t").response.topics[0]
    assert (answer.error_code, answer.error_message) == (
        Errors.INVALID_REPLICATION_FACTOR.code,
        "Unable to replicate the partition 1 time(s): All brokers are currently fenced, or have all their log directories cordoned.")


# -- CreatePartitions (37), DeleteTopics (20) ---------------------------------------------------------------------


def test_create_partitions_adds_placed_or_assigned_partitions() -> None:
    cluster = Cluster(brokers=3, default_replication_factor=2)
    cluster.create_topic("t", partitions=1)
    result = cluster.create_partitions("t", 3)
    assert result.response.results[0].error_code == 0 and names(result) == ["PartitionRecord"] * 2
    assert sorted(cluster.image.topics["t"].partitions) == [0, 1, 2]
    assigned = cluster.create_partitions("t", 4, assignments=[[3, 1]])
    assert assigned.response.results[0].error_code == 0 and cluster.partition("t", 3).replicas == [3, 1]


@pytest.mark.parametrize(("count", "assignments", "error", "message"), [
    (1, None, Errors.INVALID_PARTITIONS, "Topic already has 1 partition(s)."),
    (0, None, Errors.INVALID_PARTITIONS, "The topic t currently has 1 partition(s); 0 would not be an increase."),
    (3, [[1, 2]], Errors.INVALID_REPLICA_ASSIGNMENT,
     "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."),
    (2, [[1]], Errors.INVALID_REPLICA_ASSIGNMENT, "The manual partition assignment includes a partition with 1 "
     "replica(s), but this is not consistent with previous partitions, which have 2 replica(s)."),
])
def test_create_partitions_refusals(count: int, assignments: list[list[int]] | None, error: object,
                                   message: str) -> None:
    cluster = Cluster(brokers=3, default_replication_factor=2)
    cluster.create_topic("t", partitions=1)
    result = cluster.create_partitions("t", count, assignments)
    answer = result.response.results[0]
    assert (answer.error_code, answer.error_message) == (error.code, message)  # type: ignore[attr-defined]
    assert result.records == []
    missing = cluster.create_partitions("nope", 2).response.results[0]
    assert missing.error_code == Errors.UNKNOWN_TOPIC_OR_PARTITION.code


def test_delete_topics_by_name_and_by_id() -> None:
    cluster = Cluster(brokers=1)
    cluster.create_topic("a", configs={"retention.ms": "5"})
    cluster.create_topic("b")
    by_name_result = cluster.delete_topics(["a"])
    assert names(by_name_result) == ["RemoveTopicRecord"] and by_name_result.response.responses[0].error_code == 0
    assert "a" not in cluster.image.topics and (CONFIG_RESOURCE_TOPIC, "a") not in cluster.image.configs
    topic_id = cluster.topic_uuid("b")
    by_id = cluster.delete_topics([None], ids=[topic_id]).response.responses[0]
    assert by_id.error_code == 0 and by_id.name == "b" and cluster.image.topics == {}
    unknown_id = cluster.delete_topics([None], ids=[uuid.uuid4()]).response.responses[0]
    assert unknown_id.error_code == Errors.UNKNOWN_TOPIC_ID.code
    unknown = cluster.delete_topics(["zz"]).response.responses[0]
    assert unknown.error_code == Errors.UNKNOWN_TOPIC_OR_PARTITION.code


def test_delete_topics_refuses_duplicates_and_name_with_id() -> None:
    cluster = Cluster(brokers=1)
    cluster.create_topic("a")
    cluster.create_topic("b")
    twice = cluster.delete_topics(["a", "a"])
    assert [(r.name, r.error_code, r.error_message) for r in twice.response.responses] == [
        ("a", Errors.INVALID_REQUEST.code, "Duplicate topic name.")]
    both = cluster.delete_topics(["b"], ids=[cluster.topic_uuid("b")]).response.responses[0]
    assert (both.error_code, both.error_message) == (Errors.INVALID_REQUEST.code,
                                                     "You may not specify both topic name and topic id.")
    assert sorted(cluster.image.topics) == ["a", "b"]


def test_delete_topics_is_refused_when_topic_deletion_is_disabled() -> None:
    cluster = Cluster(brokers=1, delete_topic_enable=False)
    cluster.create_topic("a")
    result = cluster.delete_topics(["a"])
    assert result.response.responses[0].error_code == Errors.TOPIC_DELETION_DISABLED.code and result.records == []


# -- AlterPartition (56) ---------------------------------------------------------------------------------------


def _three_replica_topic() -> Cluster:
    cluster = Cluster(brokers=3, default_replication_factor=3)
    cluster.create_topics(new_topic("t", assignments=[[1, 2, 3]]))
    return cluster


def test_alter_partition_shrinks_the_isr_and_answers_the_new_state() -> None:
    cluster = _three_replica_topic()
    result = cluster.alter_partition("t", 0, [1, 2])
    answer = result.response.topics[0].partitions[0]
    assert answer.error_code == 0 and answer.isr == [1, 2] and answer.leader_id == 1
    assert answer.partition_epoch == 1 and answer.leader_epoch == 0
    assert names(result) == ["PartitionChangeRecord"] and result.records[0].data.isr == [1, 2]
    assert cluster.partition("t").isr == [1, 2] and cluster.partition("t").partition_epoch == 1


@pytest.mark.parametrize(("options", "error"), [
    ({"leader_epoch": -1}, Errors.FENCED_LEADER_EPOCH.code),
    ({"partition_epoch": -1}, INVALID_UPDATE_VERSION),
    ({"leader_epoch": 1}, Errors.NOT_CONTROLLER.code),
    ({"partition_epoch": 1}, Errors.NOT_CONTROLLER.code),
    ({"sender": 2}, Errors.INVALID_REQUEST.code),
    ({"new_isr": [2, 3]}, Errors.INVALID_REQUEST.code),  # without the leader
    ({"new_isr": [1, 4]}, Errors.INVALID_REQUEST.code),  # outside the assignment
    ({"new_isr": [1, 1]}, Errors.INVALID_REQUEST.code),
    ({"leader_recovery_state": 1}, Errors.INVALID_REQUEST.code),  # RECOVERED -> RECOVERING
    ({"broker_epochs": {2: 1}}, INELIGIBLE_REPLICA),  # a stale broker epoch (KIP-903)
])
def test_alter_partition_refusals(options: dict[str, object], error: int) -> None:
    cluster = _three_replica_topic()
    new_isr = options.pop("new_isr", [1, 2])
    result = cluster.alter_partition("t", 0, new_isr, **options)  # type: ignore[arg-type]
    assert result.response.topics[0].partitions[0].error_code == error and result.records == []
    assert cluster.partition("t").isr == [1, 2, 3]


def test_alter_partition_refuses_fenced_or_shutting_down_replicas_as_ineligible() -> None:
    cluster = _three_replica_topic()
    cluster.alter_partition("t", 0, [1])
    cluster.fence(2)
    assert cluster.alter_partition("t", 0, [1, 2]).response.topics[0].partitions[0].error_code == INELIGIBLE_REPLICA
    cluster.heartbeat(3, want_shut_down=True)  # leads nothing: it is fenced at once
    assert cluster.alter_partition("t", 0, [1, 3]).response.topics[0].partitions[0].error_code == INELIGIBLE_REPLICA


def test_alter_partition_with_unknown_topic_partition_or_epoch() -> None:
    cluster = _three_replica_topic()
    unknown_topic = cluster.alter_partition("t", 0, [1, 2], topic_id=uuid.uuid4())
    assert unknown_topic.response.topics[0].partitions[0].error_code == Errors.UNKNOWN_TOPIC_ID.code
    unknown_partition = cluster.alter_partition("t", 5, [1, 2], sender=1, leader_epoch=0, partition_epoch=0)
    assert unknown_partition.response.topics[0].partitions[0].error_code == Errors.UNKNOWN_TOPIC_OR_PARTITION.code
    stale = cluster.alter_partition("t", 0, [1, 2], broker_epoch=0)
    assert stale.response.error_code == STALE_BROKER_EPOCH and stale.records == []


# -- ElectLeaders (43) and the periodic rebalance ------------------------------------------------------------------


def _moved_leader() -> Cluster:
    """Replicas [1, 2, 3]; broker 1 was fenced and came back: broker 2 leads, 1 is back in the ISR."""
    cluster = _three_replica_topic()
    cluster.fence(1)
    cluster.heartbeat(1)
    cluster.alter_partition("t", 0, [2, 3, 1])
    assert cluster.partition("t").leader == 2
    return cluster


def test_preferred_election_moves_leadership_back_to_the_first_replica() -> None:
    cluster = _moved_leader()
    result = cluster.elect_leaders(PREFERRED, {"t": [0]})
    answer = result.response.replica_election_results[0].partition_result[0]
    assert (answer.error_code, answer.error_message) == (0, None)
    assert cluster.partition("t").leader == 1
    again = cluster.elect_leaders(PREFERRED, {"t": [0]}).response.replica_election_results[0].partition_result[0]
    assert (again.error_code, again.error_message) == (Errors.ELECTION_NOT_NEEDED.code,
                                                       "Leader election not needed for topic partition.")


def test_preferred_election_when_the_preferred_replica_is_not_in_sync_is_preferred_leader_not_available() -> None:
    cluster = _three_replica_topic()
    cluster.fence(1)
    answer = cluster.elect_leaders(PREFERRED, {"t": [0]}).response.replica_election_results[0].partition_result[0]
    assert answer.error_code == PREFERRED_LEADER_NOT_AVAILABLE


def test_unclean_election_request() -> None:
    cluster = _leaderless_with_a_live_out_of_sync_replica()
    assert cluster.elect_leaders(UNCLEAN, {"t": [0]}).response.replica_election_results[0].partition_result[0] \
        .error_code == 0
    assert cluster.partition("t").leader == 2 and cluster.partition("t").leader_recovery_state == 1
    again = cluster.elect_leaders(UNCLEAN, {"t": [0]}).response.replica_election_results[0].partition_result[0]
    assert again.error_code == Errors.ELECTION_NOT_NEEDED.code
    cluster.fence(2)
    nobody = cluster.elect_leaders(UNCLEAN, {"t": [0]}).response.replica_election_results[0].partition_result[0]
    assert nobody.error_code == ELIGIBLE_LEADERS_NOT_AVAILABLE


def test_elect_leaders_for_unknown_partitions_and_for_all_partitions() -> None:
    cluster = _moved_leader()
    cluster.create_topic("other")
    unknown = cluster.elect_leaders(PREFERRED, {"nope": [0], "t": [7]}).response.replica_election_results
    assert [(r.topic, r.partition_result[0].error_code, r.partition_result[0].error_message) for r in unknown] == [
        ("nope", Errors.UNKNOWN_TOPIC_OR_PARTITION.code, "No such topic as nope"),
        ("t", Errors.UNKNOWN_TOPIC_OR_PARTITION.code, "No such partition as t-7")]
    every = cluster.elect_leaders(PREFERRED, None).response.replica_election_results
    assert {r.topic: [p.partition_id for p in r.partition_result] for r in every} == {"t": [0], "other": []}


def test_the_periodic_rebalance_elects_preferred_leaders_only_when_enabled() -> None:
    for enabled in (True, False):
        cluster = _moved_leader()
        cluster.controller.config = ControllerConfig(**{**cluster.controller.config.__dict__,
                                                        "auto_leader_rebalance_enable": enabled})
        cluster.advance(0)
        cluster.tick(298_000)
        assert cluster.partition("t").leader == 2
        cluster.tick(2_000)  # leader.imbalance.check.interval.seconds = 300
        assert cluster.partition("t").leader == (1 if enabled else 2)


# -- configs ------------------------------------------------------------------------------------------------------


def test_incremental_alter_configs_set_delete_append_subtract() -> None:
    cluster = Cluster(brokers=1)
    cluster.create_topic("t")
    result = cluster.alter_configs(CONFIG_RESOURCE_TOPIC, "t", ("retention.ms", SET, "100"),
                                   ("cleanup.policy", APPEND, "compact"))
    assert result.response.responses[0].error_code == 0 and names(result) == ["ConfigRecord"] * 2
    assert cluster.image.configs[(CONFIG_RESOURCE_TOPIC, "t")] == {"retention.ms": "100",
                                                                   "cleanup.policy": "delete,compact"}
    cluster.alter_configs(CONFIG_RESOURCE_TOPIC, "t", ("cleanup.policy", SUBTRACT, "delete"),
                          ("retention.ms", DELETE, None))
    assert cluster.image.configs[(CONFIG_RESOURCE_TOPIC, "t")] == {"cleanup.policy": "compact"}
    unchanged = cluster.alter_configs(CONFIG_RESOURCE_TOPIC, "t", ("cleanup.policy", SET, "compact"))
    assert unchanged.records == []  # a topic key set to its current value writes nothing
    broker = cluster.alter_configs(CONFIG_RESOURCE_BROKER, "1", ("log.retention.ms", SET, "2"))
    assert names(broker) == ["ConfigRecord"]
    again = cluster.alter_configs(CONFIG_RESOURCE_BROKER, "1", ("log.retention.ms", SET, "2"))
    assert names(again) == ["ConfigRecord"]  # KAFKA-14136: brokers get a record even when unchanged


@pytest.mark.parametrize(("resource_type", "name", "operation", "error"), [
    (CONFIG_RESOURCE_TOPIC, "t", ("retention.ms", SET, "x"), Errors.INVALID_CONFIG.code),
    (CONFIG_RESOURCE_TOPIC, "t", ("no.such.key", SET, "1"), Errors.INVALID_CONFIG.code),
    (CONFIG_RESOURCE_TOPIC, "t", ("retention.ms", APPEND, "1"), Errors.INVALID_CONFIG.code),
    (CONFIG_RESOURCE_TOPIC, "missing", ("retention.ms", SET, "1"), Errors.UNKNOWN_TOPIC_OR_PARTITION.code),
    (CONFIG_RESOURCE_BROKER, "one", ("log.retention.ms", SET, "2"), Errors.INVALID_REQUEST.code),
    (CONFIG_RESOURCE_BROKER, "42", ("log.retention.ms", SET, "2"), BROKER_ID_NOT_REGISTERED),
    (CONFIG_RESOURCE_BROKER, "", ("log.retention.ms", SET, "soon"), Errors.INVALID_REQUEST.code),
    (CONFIG_RESOURCE_BROKER, "", ("listeners", SET, "PLAINTEXT://:9092"), Errors.INVALID_REQUEST.code),
])
def test_incremental_alter_configs_refusals(resource_type: int, name: str, operation: tuple[str, int, str],
                                           error: int) -> None:
    cluster = Cluster(brokers=1)
    cluster.create_topic("t")
    result = cluster.alter_configs(resource_type, name, operation)
    assert result.response.responses[0].error_code == error and result.records == []


def test_a_resource_named_twice_is_duplicate_resource() -> None:
    cluster = Cluster(brokers=1)
    cluster.create_topic("t")
    resource = incremental_api.REQUEST.struct("AlterConfigsResource")
    entry = incremental_api.REQUEST.struct("AlterableConfig")
    twice = [resource.make(resource_type=CONFIG_RESOURCE_TOPIC, resource_name="t",
                           configs=[entry.make(name="retention.ms", config_operation=SET, value="1")])] * 2
    result = cluster.checked(cluster.controller.incremental_alter_configs(incremental_api.REQUEST.make(resources=twice)))
    assert [(r.error_code, r.error_message) for r in result.response.responses] == [
        (Errors.INVALID_REQUEST.code, "Duplicate resource.")] * 2
    assert result.records == []


def test_alter_configs_validate_only_writes_nothing() -> None:
    cluster = Cluster(brokers=1)
    cluster.create_topic("t")
    result = cluster.alter_configs(CONFIG_RESOURCE_TOPIC, "t", ("retention.ms", SET, "100"), validate_only=True)
    assert result.response.responses[0].error_code == 0 and result.records == []
    assert (CONFIG_RESOURCE_TOPIC, "t") not in cluster.image.configs


def test_legacy_alter_configs_replaces_the_whole_set() -> None:
    cluster = Cluster(brokers=1)
    cluster.create_topic("t", configs={"retention.ms": "100", "segment.ms": "1000"})
    resource = alter_configs_api.REQUEST.struct("AlterConfigsResource")
    entry = alter_configs_api.REQUEST.struct("AlterableConfig")
    request = alter_configs_api.REQUEST.make(resources=[resource.make(
        resource_type=CONFIG_RESOURCE_TOPIC, resource_name="t", configs=[entry.make(name="retention.ms", value="7")])])
    result = cluster.checked(cluster.controller.alter_configs(request))
    assert result.response.responses[0].error_code == 0
    assert cluster.image.configs[(CONFIG_RESOURCE_TOPIC, "t")] == {"retention.ms": "7"}


def test_min_insync_replicas_of_a_topic_sets_its_elr_threshold() -> None:
    cluster = Cluster(brokers=3, default_replication_factor=3, min_insync_replicas=1)
    cluster.create_topics(new_topic("t", assignments=[[1, 2, 3]], configs={"min.insync.replicas": "3"}))
    cluster.fence(3)
    assert cluster.partition("t").elr == [3]  # below the topic's 3, though above the cluster's 1


def test_changing_min_insync_replicas_clears_the_elr() -> None:
    cluster = Cluster(brokers=3, default_replication_factor=3, min_insync_replicas=3)
    cluster.create_topics(new_topic("t", assignments=[[1, 2, 3]]), new_topic("u", assignments=[[1, 2, 3]]))
    cluster.fence(3)
    assert cluster.partition("t").elr == [3] and cluster.partition("u").elr == [3]
    topic_change = cluster.set_topic_config("t", "min.insync.replicas", "2")
    assert names(topic_change) == ["ConfigRecord", "ClearElrRecord"] and topic_change.records[1].data.topic_name == "t"
    assert cluster.partition("t").elr == [] and cluster.partition("u").elr == [3]
    cluster_change = cluster.set_cluster_config("min.insync.replicas", "2")
    assert names(cluster_change) == ["ConfigRecord", "ClearElrRecord"]
    assert cluster_change.records[1].data.topic_name == "" and cluster.partition("u").elr == []


# -- AllocateProducerIds (67) -----------------------------------------------------------------------------------


def test_producer_ids_come_in_blocks_of_1000() -> None:
    cluster = Cluster(brokers=2)
    first = cluster.allocate_producer_ids(1)
    second = cluster.allocate_producer_ids(2)
    assert (first.response.producer_id_start, first.response.producer_id_len) == (0, 1000)
    assert second.response.producer_id_start == 1000 and cluster.image.next_producer_id == 2000
    assert names(first) == ["ProducerIdsRecord"] and first.records[0].data.next_producer_id == 1000
    stale = cluster.allocate_producer_ids(1, broker_epoch=0)
    assert stale.response.error_code == STALE_BROKER_EPOCH and stale.records == []


# -- the controller's own bookkeeping ----------------------------------------------------------------------------


def test_records_take_consecutive_offsets_after_what_the_raft_layer_appended() -> None:
    cluster = Cluster(brokers=1)
    cluster.controller.advance_to(cluster.controller.next_offset + 5)  # e.g. a LeaderChangeMessage batch
    offset = cluster.controller.next_offset
    result = cluster.register(2)
    assert result.response.broker_epoch == offset == cluster.image.offset
    with pytest.raises(ValueError):
        cluster.controller.advance_to(offset)


def test_controller_config_reads_kafka_properties_with_kafka_defaults() -> None:
    config = ControllerConfig.from_properties({"node.id": "3", "num.partitions": "4",
                                               "unclean.leader.election.enable": "TRUE",
                                               "broker.session.timeout.ms": "18000"}, cluster_id="c")
    assert (config.node_id, config.num_partitions, config.unclean_leader_election_enable) == (3, 4, True)
    assert (config.broker_session_timeout_ms, config.broker_heartbeat_interval_ms) == (18000, 2000)
    assert (config.default_replication_factor, config.min_insync_replicas, config.auto_leader_rebalance_enable,
            config.leader_imbalance_check_interval_seconds, config.delete_topic_enable) == (1, 1, True, 300, True)


def test_the_dispatcher_serves_controller_apis_by_key() -> None:
    cluster = Cluster(brokers=1)
    request = cluster.registration_request(2)
    result = cluster.controller.handle(62, 4, request, cluster.now_ms)
    assert result.response.error_code == 0 and 2 in cluster.image.brokers
    assert CLUSTER_ID == cluster.controller.config.cluster_id


# -- a stateful test over random operations ------------------------------------------------------------------


class ControllerMachine(RuleBasedStateMachine):
    """Random operations against the controller.  After each: the image is valid (``check_valid``),
    every leader is an unfenced broker, and replaying every record the controller emitted, at the
    offsets it gave them, into an empty image rebuilds the controller's speculative image."""

    def __init__(self) -> None:
        super().__init__()
        self.cluster = Cluster(brokers=3, min_insync_replicas=2, broker_session_timeout_ms=9000)
        self.baseline = self.cluster.image.copy()  # the bootstrapped cluster, before any rule ran
        self.log: list[tuple[int, MetadataRecord]] = []

    def run(self, operation: Callable[[], ControllerResult]) -> ControllerResult:
        base = self.cluster.controller.next_offset
        result = operation()
        for i, record in enumerate(result.records):
            self.log.append((base + i, record))
        return result

    @rule(broker_id=st.integers(1, 4), clean=st.booleans())
    def register(self, broker_id: int, clean: bool) -> None:
        existing = self.cluster.image.brokers.get(broker_id)
        previous = existing.broker_epoch if existing is not None and clean else -1
        self.run(lambda: self.cluster.register(broker_id, previous_broker_epoch=previous))

    @rule(broker_id=st.integers(1, 4), want_fence=st.booleans(), want_shut_down=st.booleans())
    def heartbeat(self, broker_id: int, want_fence: bool, want_shut_down: bool) -> None:
        self.run(lambda: self.cluster.heartbeat(broker_id, want_fence=want_fence, want_shut_down=want_shut_down))

    @rule(ms=st.sampled_from([1000, 5000, 10_000]))
    def time_passes(self, ms: int) -> None:
        self.run(lambda: self.cluster.advance(ms))

    @rule(name=st.sampled_from(["a", "b", "c"]), partitions=st.integers(1, 3), rf=st.integers(1, 3),
          unclean=st.booleans())
    def create_topic(self, name: str, partitions: int, rf: int, unclean: bool) -> None:
        configs: dict[str, str | None] = {"unclean.leader.election.enable": "true"} if unclean else {}
        self.run(lambda: self.cluster.create_topic(name, partitions, rf, configs=configs))

    @rule(name=st.sampled_from(["a", "b", "c"]))
    def delete_topic(self, name: str) -> None:
        self.run(lambda: self.cluster.delete_topics([name]))

    @rule(name=st.sampled_from(["a", "b", "c"]), partitions=st.integers(2, 4))
    def add_partitions(self, name: str, partitions: int) -> None:
        if name in self.cluster.image.topics:
            self.run(lambda: self.cluster.create_partitions(name, partitions))

    @rule(name=st.sampled_from(["a", "b", "c"]), partition_id=st.integers(0, 3), data=st.data())
    def alter_isr(self, name: str, partition_id: int, data: st.DataObject) -> None:
        topic = self.cluster.image.topics.get(name)
        if topic is None or partition_id not in topic.partitions or topic.partitions[partition_id].leader < 0:
            return
        partition = topic.partitions[partition_id]
        others = [r for r in partition.replicas if r != partition.leader]
        chosen = data.draw(st.lists(st.sampled_from(others), unique=True)) if others else []
        self.run(lambda: self.cluster.alter_partition(name, partition_id, [partition.leader, *chosen]))

    @rule(election_type=st.sampled_from([PREFERRED, UNCLEAN]))
    def elect(self, election_type: int) -> None:
        self.run(lambda: self.cluster.elect_leaders(election_type, None))

    @rule(resource=st.sampled_from(["a", "b", ""]), key=st.sampled_from(["min.insync.replicas",
                                                                          "unclean.leader.election.enable"]),
          value=st.sampled_from(["1", "2", "3", "true", "false"]))
    def alter_config(self, resource: str, key: str, value: str) -> None:
        kind = CONFIG_RESOURCE_TOPIC if resource else CONFIG_RESOURCE_BROKER
        self.run(lambda: self.cluster.alter_configs(kind, resource, (key, SET, value)))

    @rule(broker_id=st.integers(1, 4))
    def allocate_producer_ids(self, broker_id: int) -> None:
        if broker_id in self.cluster.image.brokers:
            self.run(lambda: self.cluster.allocate_producer_ids(broker_id))

    @rule()
    def controller_failover(self) -> None:
        """A new active controller, rebuilt from the image every node replayed."""
        old = self.cluster.controller
        self.cluster.controller = QuorumController(old.config, old.image.copy())
        assert self.cluster.controller.next_offset == old.next_offset

    @invariant()
    def leaders_are_unfenced_brokers(self) -> None:
        image = self.cluster.image
        for topic in image.topics.values():
            for partition in topic.partitions.values():
                assert partition.leader == -1 or not image.brokers[partition.leader].fenced

    @invariant()
    def replaying_the_records_rebuilds_the_image(self) -> None:
        replayed = self.baseline.copy()
        for offset, record in self.log:
            replayed.apply(record, offset)
        image = self.cluster.image
        assert (replayed.topics, replayed.brokers, replayed.configs, replayed.features, replayed.next_producer_id,
                replayed.offset) == (image.topics, image.brokers, image.configs, image.features,
                                     image.next_producer_id, image.offset)


ControllerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                               suppress_health_check=[HealthCheck.too_slow])
test_controller_state_machine = ControllerMachine.TestCase
