"""Three combined KRaft nodes: a controller is elected, brokers register and are unfenced,
topics created through any broker reach every broker's metadata."""

from __future__ import annotations

from pathlib import Path

from reference.node.broker_lifecycle import BrokerState
from reference.protocol.apis import API_BY_KEY
from reference.protocol.frames import Request, RequestHeader, decode_response

from .harness import SimulatedCluster

CREATE_TOPICS = API_BY_KEY[19]
METADATA = API_BY_KEY[3]


def running(cluster: SimulatedCluster) -> bool:
    """Every broker RUNNING, and every node's committed image knows them all unfenced."""
    return all(node.broker_state is BrokerState.RUNNING and len(node.image.brokers) == len(cluster.nodes)
               and not any(registration.fenced for registration in node.image.brokers.values())
               for node in cluster.nodes.values())


def test_a_new_cluster_elects_an_active_controller_bootstraps_and_unfences_every_broker(tmp_path: Path) -> None:
    cluster = SimulatedCluster(tmp_path)
    cluster.run_until(lambda: cluster.leader() is not None)
    cluster.run_until(lambda: running(cluster))
    for node in cluster.nodes.values():
        assert node.image.features.get("metadata.version") == 30
        assert sorted(node.image.brokers) == [0, 1, 2]
        assert not any(registration.fenced for registration in node.image.brokers.values())


def create_topic(cluster: SimulatedCluster, via: int, name: str, partitions: int, replication_factor: int) -> list[object]:
    topic = CREATE_TOPICS.request.struct("CreatableTopic")
    body = CREATE_TOPICS.request.make(topics=[topic.make(name=name, num_partitions=partitions,
                                                         replication_factor=replication_factor,
                                                         assignments=[], configs=[])],
                                      timeout_ms=30000, validate_only=False)
    broker = cluster.nodes[via].broker
    assert broker is not None
    answers: list[object] = []
    reply = broker.handle(Request(RequestHeader(19, 7, 1, "test"), CREATE_TOPICS, body), cluster.now_ms)
    reply.on_done(answers.append)
    return answers


def test_create_topics_through_a_broker_is_decided_by_the_controller_and_reaches_every_broker(tmp_path: Path) -> None:
    cluster = SimulatedCluster(tmp_path)
    cluster.run_until(lambda: running(cluster))
    answers = create_topic(cluster, via=1, name="orders", partitions=3, replication_factor=3)
    cluster.run_until(lambda: bool(answers))
    _, response = decode_response(CREATE_TOPICS, 7, answers[0][4:])  # type: ignore[index]
    assert [(topic.name, topic.error_code, topic.num_partitions) for topic in response.topics] == [("orders", 0, 3)]
    # Committed means a majority has it; every broker learns it from the next fetch.
    cluster.run_until(lambda: all("orders" in node.image.topics for node in cluster.nodes.values()))
    for node in cluster.nodes.values():
        topic = node.image.topics["orders"]
        assert sorted(topic.partitions) == [0, 1, 2]
        for registration in topic.partitions.values():
            assert sorted(registration.replicas) == [0, 1, 2] and registration.leader in registration.isr
        assert node.broker is not None and node.broker.topics.get("orders") is not None
    leaders = {registration.leader for registration in cluster.nodes[0].image.topics["orders"].partitions.values()}
    assert len(leaders) == 3, "three partitions on three brokers: one leader each"


def test_producer_ids_come_from_controller_blocks_so_two_brokers_never_hand_out_the_same(tmp_path: Path) -> None:
    """Each broker counted on its own before: two idempotent producers got the same id and the
    leader dropped the second one's first batch as a duplicate.  Blocks come from the controller."""
    from reference.errors import Errors, KafkaError

    cluster = SimulatedCluster(tmp_path)
    cluster.run_until(lambda: running(cluster))
    handed_out: dict[int, list[int]] = {0: [], 1: [], 2: []}

    def take(node_id: int) -> bool:
        broker = cluster.nodes[node_id].broker
        assert broker is not None
        try:
            handed_out[node_id].append(broker.producer_ids.init_producer_id()[0])
            return True
        except KafkaError as error:  # no block yet: the client retries, as with Kafka
            assert error.error is Errors.COORDINATOR_LOAD_IN_PROGRESS
            return False

    for node_id in handed_out:
        cluster.run_until(lambda node_id=node_id: take(node_id))  # type: ignore[misc]
        for _ in range(5):
            assert take(node_id)
    every = [producer_id for ids in handed_out.values() for producer_id in ids]
    assert len(every) == len(set(every)) == 18
    assert all(ids == sorted(ids) for ids in handed_out.values())


def produce_acks_all(cluster: SimulatedCluster, node_id: int, topic: str, value: bytes) -> int:
    from reference.records.batch import SimpleRecord, build_batch

    produce = API_BY_KEY[0]
    topic_data = produce.request.struct("TopicProduceData")
    partition_data = produce.request.struct("PartitionProduceData")
    body = produce.request.make(transactional_id=None, acks=-1, timeout_ms=5000, topic_data=[topic_data.make(
        name=topic, partition_data=[partition_data.make(index=0, records=build_batch([SimpleRecord(value=value)]))])])
    broker = cluster.nodes[node_id].broker
    assert broker is not None
    answers: list[bytes] = []
    reply = broker.handle(Request(RequestHeader(0, 9, 1, "test"), produce, body), cluster.now_ms)
    if isinstance(reply, (bytes, bytearray)):
        answers.append(reply)
    else:
        reply.on_done(answers.append)
    cluster.run_until(lambda: bool(answers), limit_ms=20_000)
    _, response = decode_response(produce, 9, answers[0][4:])
    return int(response.responses[0].partition_responses[0].error_code)


def test_a_fenced_follower_out_of_the_isr_no_longer_holds_the_high_watermark(tmp_path: Path) -> None:
    """Kafka's isReplicaIsrEligible: a follower that died was "caught up" moments ago, but once the
    controller fenced it and took it out of the ISR, acks=all completes with the others."""
    cluster = SimulatedCluster(tmp_path, extra={"broker.session.timeout.ms": "3000",
                                                "broker.heartbeat.interval.ms": "500"})
    cluster.run_until(lambda: running(cluster))
    answers = create_topic(cluster, via=0, name="t", partitions=1, replication_factor=3)
    cluster.run_until(lambda: bool(answers) and all("t" in node.image.topics for node in cluster.nodes.values()))
    leader = cluster.nodes[0].image.topics["t"].partitions[0].leader
    cluster.run_until(lambda: cluster.nodes[leader].broker.replicas.get("t", 0) is not None)  # type: ignore[union-attr]
    assert produce_acks_all(cluster, leader, "t", b"before") == 0
    follower = next(replica for replica in cluster.nodes[leader].image.topics["t"].partitions[0].replicas
                    if replica != leader)
    cluster.crash(follower)
    cluster.run_until(lambda: follower not in cluster.nodes[leader].image.topics["t"].partitions[0].isr)
    # Well within replica.lag.time.max.ms (30 s) of the follower's last catch-up.
    assert produce_acks_all(cluster, leader, "t", b"after") == 0


def test_after_a_restart_of_every_node_the_new_controller_decides_on_the_whole_committed_image(tmp_path: Path) -> None:
    """The Raft layer hands committed batches to the node one by one after a restart; a controller
    that activated on the first of them would not know the topic and would create it again."""
    cluster = SimulatedCluster(tmp_path)
    cluster.run_until(lambda: running(cluster))
    answers = create_topic(cluster, via=0, name="orders", partitions=3, replication_factor=3)
    cluster.run_until(lambda: bool(answers) and all("orders" in node.image.topics for node in cluster.nodes.values()))
    for node_id in list(cluster.nodes):
        cluster.nodes.pop(node_id).shutdown()
    for node_id in range(3):
        cluster.start(node_id)
    cluster.run_until(lambda: running(cluster))
    again = create_topic(cluster, via=1, name="orders", partitions=3, replication_factor=3)
    cluster.run_until(lambda: bool(again))
    _, response = decode_response(CREATE_TOPICS, 7, again[0][4:])  # type: ignore[index]
    assert [(topic.name, topic.error_code) for topic in response.topics] == [("orders", 36)]  # TOPIC_ALREADY_EXISTS
