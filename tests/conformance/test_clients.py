"""The conformance kit's client adapters, without a broker: what they say they lack, how each maps
its library's fencing error to ``TransactionFenced``, and that ``consume`` passes the isolation
level on.  (The refka adapter has its own module, test_refka_client.py; the adapters' behaviour
against brokers is what the suite itself exercises.)"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from conformance import clients
from conformance.clients import Client, ClientLacks, KcatClient, TransactionFenced


def test_a_client_without_an_adapter_for_transactions_lacks_them() -> None:
    with pytest.raises(ClientLacks, match="cannot express: transactions"):
        Client("127.0.0.1:1").transactional_producer("txn")


def test_kcat_lacks_transactions_and_the_python_clients_do_not() -> None:
    assert "transactions" in KcatClient.lacks
    for name in ("kafka-python", "confluent-kafka", "aiokafka"):
        assert "transactions" not in clients.ADAPTERS[name].lacks, name


@pytest.mark.parametrize("error", ["kafka.errors:ProducerFencedError", "kafka.errors:InvalidProducerEpochError",
                                   "aiokafka.errors:ProducerFenced", "aiokafka.errors:InvalidProducerEpoch"])
def test_python_clients_fencing_errors_become_transaction_fenced(error: str) -> None:
    module_name, class_name = error.split(":")
    fencing = getattr(__import__(module_name, fromlist=[class_name]), class_name)()
    with pytest.raises(TransactionFenced) as raised, clients._fencing_reported("a client"):
        raise fencing
    assert raised.value.__cause__ is fencing


def test_a_fencing_error_is_found_behind_the_error_raised_from_it() -> None:
    from kafka.errors import KafkaError, ProducerFencedError

    with pytest.raises(TransactionFenced), clients._fencing_reported("a client"):
        try:
            raise ProducerFencedError()
        except ProducerFencedError as fenced:
            raise KafkaError("the producer is in a fatal state") from fenced


def test_other_errors_pass_through_unchanged() -> None:
    from kafka.errors import ConcurrentTransactionsError

    with pytest.raises(ConcurrentTransactionsError), clients._fencing_reported("a client"):
        raise ConcurrentTransactionsError()


def test_librdkafka_fencing_is_its_fatal_fenced_error() -> None:
    from confluent_kafka import KafkaError

    assert clients._confluent_fenced(KafkaError(KafkaError._FENCED, fatal=True))
    assert clients._confluent_fenced(KafkaError(KafkaError.PRODUCER_FENCED, fatal=True))
    assert not clients._confluent_fenced(KafkaError(KafkaError._FENCED, fatal=False))
    assert not clients._confluent_fenced(KafkaError(KafkaError.CONCURRENT_TRANSACTIONS, fatal=True))
    assert not clients._confluent_fenced(None)


def test_kcat_consume_passes_the_isolation_level(monkeypatch: pytest.MonkeyPatch) -> None:
    if not (clients.shutil.which("kcat") or clients.shutil.which("kafkacat")):
        pytest.skip("kcat is not installed")
    commands: list[list[str]] = []

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        commands.append(command)
        return subprocess.CompletedProcess(command, 0, b"", b"")

    monkeypatch.setattr(clients.subprocess, "run", run)
    KcatClient("127.0.0.1:1").consume("topic", [0, 1], count=1, isolation_level="read_committed")
    assert len(commands) == 2
    assert all("isolation.level=read_committed" in command for command in commands), commands
