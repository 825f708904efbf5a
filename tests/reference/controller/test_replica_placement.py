"""StripedReplicaPlacer: hard constraints and the rack-first striping."""

from __future__ import annotations

import random
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.apache_kafka import cache_root, pinned_version
from reference.controller.replica_placement import UsableBroker, place_replicas
from reference.errors import Errors, KafkaError


def brokers(racks: dict[int, str | None], fenced: set[int] = frozenset()) -> list[UsableBroker]:  # type: ignore[assignment]
    return [UsableBroker(b, rack, b in fenced) for b, rack in racks.items()]


def test_replicas_of_a_partition_are_distinct_and_the_leader_is_unfenced() -> None:
    placements = place_replicas(brokers({1: None, 2: None, 3: None}, fenced={2}), 20, 3, random.Random(1))
    for replicas in placements:
        assert len(set(replicas)) == 3 and replicas[0] != 2


def test_too_high_a_replication_factor_is_refused() -> None:
    with pytest.raises(KafkaError) as refused:
        place_replicas(brokers({1: None, 2: None}), 1, 3, random.Random(0))
    assert refused.value.error is Errors.INVALID_REPLICATION_FACTOR
    assert refused.value.message == ("The target replication factor of 3 cannot be reached because only 2 "
                                     "broker(s) are registered or some brokers have all their log directories cordoned.")


def test_all_fenced_is_refused() -> None:
    with pytest.raises(KafkaError) as refused:
        place_replicas(brokers({1: None}, fenced={1}), 1, 1, random.Random(0))
    assert refused.value.message == "All brokers are currently fenced, or have all their log directories cordoned."


def test_every_partition_spans_every_rack_when_the_replication_factor_allows() -> None:
    racks = {1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
    for replicas in place_replicas(brokers(racks), 30, 3, random.Random(7)):
        assert sorted(racks[b] for b in replicas) == ["a", "b", "c"]


def test_leaders_spread_evenly_over_the_brokers() -> None:
    placements = place_replicas(brokers({b: None for b in range(1, 5)}), 40, 2, random.Random(3))
    assert set(Counter(replicas[0] for replicas in placements).values()) == {10}


@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 30), st.integers(0, 1000))
def test_any_feasible_placement_keeps_the_hard_constraints(broker_count: int, rf: int, partitions: int,
                                                           seed: int) -> None:
    usable = brokers({b: f"r{b % 3}" for b in range(broker_count)})
    if rf > broker_count:
        with pytest.raises(KafkaError):
            place_replicas(usable, partitions, rf, random.Random(seed))
        return
    placements = place_replicas(usable, partitions, rf, random.Random(seed))
    assert len(placements) == partitions
    for replicas in placements:
        assert len(replicas) == rf and len(set(replicas)) == rf
        racks_used = {b % 3 for b in replicas}
        assert len(racks_used) == min(rf, len({b % 3 for b in range(broker_count)}))


# -- against Kafka's own StripedReplicaPlacer ------------------------------------------------------------


class JavaRandom(random.Random):
    """``java.util.Random``'s generator behind the two calls the placer makes: ``randrange(n)`` is
    ``nextInt(n)`` and ``shuffle`` is ``Collections.shuffle``."""

    MULTIPLIER, ADDEND, MASK = 0x5DEECE66D, 0xB, (1 << 48) - 1

    def __init__(self, seed: int) -> None:
        super().__init__(0)
        self.state = (seed ^ self.MULTIPLIER) & self.MASK

    def _next(self, bits: int) -> int:
        self.state = (self.state * self.MULTIPLIER + self.ADDEND) & self.MASK
        return self.state >> (48 - bits)

    def randrange(self, stop: int) -> int:  # type: ignore[override]
        value = self._next(31)
        if stop & (stop - 1) == 0:
            return (stop * value) >> 31
        while value - value % stop + stop - 1 >= 1 << 31:  # Java's int overflow: draw again
            value = self._next(31)
        return value % stop

    def shuffle(self, x: list[int]) -> None:  # type: ignore[override]
        for size in range(len(x), 1, -1):
            other = self.randrange(size)
            x[size - 1], x[other] = x[other], x[size - 1]


PLACER_DRIVER = r"""
import org.apache.kafka.common.Uuid;
import org.apache.kafka.metadata.placement.*;
import java.io.*;
import java.util.*;

public class PlacerDriver {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; ) {
            String[] f = line.split("\\|", -1);  // seed|partitions|replicationFactor|id:rack:fenced;...
            List<UsableBroker> brokers = new ArrayList<>();
            for (String b : f[3].split(";")) {
                String[] p = b.split(":", -1);
                brokers.add(new UsableBroker(Integer.parseInt(p[0]),
                    p[1].isEmpty() ? Optional.empty() : Optional.of(p[1]), Boolean.parseBoolean(p[2])));
            }
            ClusterDescriber cluster = new ClusterDescriber() {
                public Iterator<UsableBroker> usableBrokers() { return brokers.iterator(); }
                public Uuid defaultDir(int id) { return Uuid.ZERO_UUID; }
            };
            try {
                TopicAssignment placed = new StripedReplicaPlacer(new Random(Long.parseLong(f[0]))).place(
                    new PlacementSpec(0, Integer.parseInt(f[1]), Short.parseShort(f[2])), cluster);
                StringBuilder out = new StringBuilder();
                for (PartitionAssignment a : placed.assignments()) out.append(a.replicas()).append(";");
                System.out.println(out);
            } catch (Exception e) {
                System.out.println("error:" + e.getMessage());
            }
        }
    }
}
"""


def test_java_random_work_alike_matches_javas_first_draws() -> None:
    # new java.util.Random(42): nextInt(10) gives 0, 3, 8 (Java's documented generator).
    rng = JavaRandom(42)
    assert [rng.randrange(10) for _ in range(3)] == [0, 3, 8]


def test_placements_match_kafkas_striped_replica_placer(tmp_path: Path) -> None:
    javac, java = shutil.which("javac"), shutil.which("java")
    libs = cache_root() / f"kafka-{pinned_version()}" / "libs"
    if javac is None or java is None or not (libs / f"kafka-metadata-{pinned_version()}.jar").exists():
        pytest.skip("needs a JDK and the cached Apache Kafka jars")
    source = tmp_path / "PlacerDriver.java"
    source.write_text(PLACER_DRIVER)
    subprocess.run([javac, "-cp", f"{libs}/*", "-d", str(tmp_path), str(source)], check=True, capture_output=True)
    rng = random.Random(4)
    cases = []
    for _ in range(1500):
        racks = rng.choice([[None], [None, "a"], ["a", "b"], ["a", "b", "c"], ["b", "c", "d", "e"]])
        usable = [UsableBroker(b, rng.choice(racks), rng.random() < 0.2) for b in range(1, rng.randint(1, 9) + 1)]
        cases.append((rng.randrange(1 << 40), rng.randint(1, 20), rng.randint(1, 4), usable))
    lines = [f"{seed}|{partitions}|{rf}|" + ";".join(f"{b.broker_id}:{b.rack or ''}:{str(b.fenced).lower()}"
                                                     for b in usable)
             for seed, partitions, rf, usable in cases]
    kafka = subprocess.run([java, "-cp", f"{libs}/*:{tmp_path}", "PlacerDriver"], input="\n".join(lines) + "\n",
                           capture_output=True, text=True, check=True, timeout=300).stdout.splitlines()
    assert len(kafka) == len(cases)
    for (seed, partitions, rf, usable), expected in zip(cases, kafka, strict=True):
        try:
            refka = "".join("[" + ", ".join(map(str, r)) + "];"
                            for r in place_replicas(usable, partitions, rf, JavaRandom(seed)))
        except KafkaError as refused:
            refka = f"error:{refused.message}"
        assert refka == expected, (seed, partitions, rf, usable)
