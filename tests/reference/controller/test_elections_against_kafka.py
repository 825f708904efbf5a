"""refka's partition change rules against Apache Kafka's own ``PartitionChangeBuilder``.

A small Java driver (written here, compiled into a temporary directory) feeds random partition
states, target ISRs, live-broker sets, min ISR, ELR on/off, election types and unclean-shutdown
replicas to ``org.apache.kafka.controller.PartitionChangeBuilder`` from the cached Kafka jars, and
prints the PartitionChangeRecord it builds; every case must come out the same from
:func:`reference.controller.elections.build_partition_change`.  Skipped without a JDK (``javac``)
or without the cached Kafka jars (``refka kafka`` or the conformance suite fetches them).
"""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.apache_kafka import cache_root, pinned_version
from reference.controller.elections import Election, build_partition_change

DRIVER = r"""
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.metadata.PartitionChangeRecord;
import org.apache.kafka.controller.PartitionChangeBuilder;
import org.apache.kafka.metadata.LeaderRecoveryState;
import org.apache.kafka.metadata.PartitionRegistration;
import org.apache.kafka.server.common.ApiMessageAndVersion;
import org.apache.kafka.server.common.MetadataVersion;
import java.io.*;
import java.util.*;

public class PartitionChangeDriver {
    static int[] ints(String text) {
        if (text.isEmpty()) return new int[0];
        return Arrays.stream(text.split(",")).mapToInt(Integer::parseInt).toArray();
    }
    static List<Integer> list(String text) {
        List<Integer> out = new ArrayList<>();
        for (int value : ints(text)) out.add(value);
        return out;
    }
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; ) {
            // replicas|isr|leader|recovery|elr|lastKnownElr|targetIsr|alive|minIsr|elrEnabled|election|unclean|targetRecovery
            String[] f = line.split("\\|", -1);
            int[] replicas = ints(f[0]);
            Uuid[] directories = new Uuid[replicas.length];
            for (int i = 0; i < replicas.length; i++) directories[i] = new Uuid(7, replicas[i]);
            PartitionRegistration partition = new PartitionRegistration.Builder()
                .setReplicas(replicas).setDirectories(directories).setIsr(ints(f[1]))
                .setRemovingReplicas(new int[0]).setAddingReplicas(new int[0])
                .setLeader(Integer.parseInt(f[2])).setLeaderRecoveryState(LeaderRecoveryState.of(Byte.parseByte(f[3])))
                .setLeaderEpoch(5).setPartitionEpoch(9).setElr(ints(f[4])).setLastKnownElr(ints(f[5])).build();
            Set<Integer> alive = new HashSet<>(list(f[7]));
            PartitionChangeBuilder builder = new PartitionChangeBuilder(partition, new Uuid(1, 2), 0, alive::contains,
                MetadataVersion.IBP_4_3_IV0, Integer.parseInt(f[8]), Boolean.parseBoolean(f[9]));
            builder.setDefaultDirProvider(replica -> new Uuid(7, replica));
            if (!f[6].equals("-")) builder.setTargetIsr(list(f[6]));
            builder.setElection(PartitionChangeBuilder.Election.valueOf(f[10]));
            if (!f[11].isEmpty()) builder.setUncleanShutdownReplicas(list(f[11]));
            if (!f[12].equals("-")) builder.setTargetLeaderRecoveryState(LeaderRecoveryState.of(Byte.parseByte(f[12])));
            Optional<ApiMessageAndVersion> built = builder.build();
            if (built.isEmpty()) { System.out.println("none"); continue; }
            PartitionChangeRecord c = (PartitionChangeRecord) built.get().message();
            System.out.println(c.isr() + "|" + c.leader() + "|" + c.leaderRecoveryState() + "|"
                + c.eligibleLeaderReplicas() + "|" + c.lastKnownElr() + "|" + c.replicas() + "|" + c.directories());
        }
    }
}
"""


@dataclass
class Partition:
    replicas: list[int]
    isr: list[int]
    leader: int
    leader_recovery_state: int
    elr: list[int]
    last_known_elr: list[int]


@dataclass
class Case:
    partition: Partition
    target_isr: list[int] | None
    alive: list[int]
    min_isr: int
    elr_enabled: bool
    election: str
    unclean_shutdown: list[int]
    target_recovery: int | None

    def line(self) -> str:
        p = self.partition
        return "|".join([_ints(p.replicas), _ints(p.isr), str(p.leader), str(p.leader_recovery_state), _ints(p.elr),
                         _ints(p.last_known_elr), "-" if self.target_isr is None else _ints(self.target_isr),
                         _ints(self.alive), str(self.min_isr), "true" if self.elr_enabled else "false",
                         self.election, _ints(self.unclean_shutdown),
                         "-" if self.target_recovery is None else str(self.target_recovery)])

    def refka(self) -> str:
        change = build_partition_change(
            self.partition, is_acceptable_leader=set(self.alive).__contains__, min_isr=self.min_isr,
            elr_enabled=self.elr_enabled, target_isr=self.target_isr, election=Election[self.election],
            unclean_shutdown_replicas=self.unclean_shutdown, target_leader_recovery_state=self.target_recovery)
        if change is None:
            return "none"
        return "|".join([_java_list(change.isr), str(change.leader), str(change.leader_recovery_state),
                         _java_list(change.eligible_leader_replicas), _java_list(change.last_known_elr), "null", "null"])


def _ints(values: list[int]) -> str:
    return ",".join(map(str, values))


def _java_list(values: list[int] | None) -> str:
    return "null" if values is None else "[" + ", ".join(map(str, values)) + "]"


def random_case(rng: random.Random) -> Case:
    """A registration that keeps Kafka's invariants, and a random change request against it."""
    replicas = rng.sample(range(1, 6), rng.randint(1, 4))
    isr = [r for r in replicas if rng.random() < 0.6]
    leader = rng.choice(isr) if isr and rng.random() < 0.8 else -1
    elr = [r for r in replicas if r not in isr and rng.random() < 0.5]
    last_known = rng.choice([[], [rng.choice(replicas)], [r for r in replicas if rng.random() < 0.3]])
    recovery = 1 if len(isr) <= 1 and rng.random() < 0.2 else 0
    return Case(
        Partition(replicas, isr, leader, recovery, elr, last_known),
        target_isr=None if rng.random() < 0.3 else [r for r in replicas if rng.random() < 0.6],
        alive=[b for b in range(1, 6) if rng.random() < 0.6], min_isr=rng.randint(1, len(replicas)),
        elr_enabled=rng.random() < 0.7, election=rng.choice(["PREFERRED", "ONLINE", "UNCLEAN"]),
        unclean_shutdown=[r for r in replicas if rng.random() < 0.15],
        target_recovery=None if rng.random() < 0.7 else rng.choice([0, 1]))


@pytest.fixture(scope="module")
def kafka_driver(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    javac, java = shutil.which("javac"), shutil.which("java")
    libs = cache_root() / f"kafka-{pinned_version()}" / "libs"
    if javac is None or java is None or not (libs / f"kafka-metadata-{pinned_version()}.jar").exists():
        pytest.skip("needs a JDK and the cached Apache Kafka jars")
    build = tmp_path_factory.mktemp("partition-change-driver")
    source = Path(build) / "PartitionChangeDriver.java"
    source.write_text(DRIVER)
    classpath = f"{libs}/*"
    subprocess.run([javac, "-cp", classpath, "-d", str(build), str(source)], check=True, capture_output=True)
    return java, f"{classpath}:{build}"


def test_partition_changes_match_kafkas_partition_change_builder(kafka_driver: tuple[str, str]) -> None:
    java, classpath = kafka_driver
    rng = random.Random(20261207)
    cases = [random_case(rng) for _ in range(5000)]
    answer = subprocess.run([java, "-cp", classpath, "-Dlog4j2.level=OFF", "PartitionChangeDriver"],
                            input="".join(case.line() + "\n" for case in cases), capture_output=True, text=True,
                            timeout=300, check=True)
    kafka = answer.stdout.splitlines()
    assert len(kafka) == len(cases)
    mismatches = [(case.line(), expected, case.refka()) for case, expected in zip(cases, kafka, strict=True)
                  if case.refka() != expected]
    assert mismatches[:5] == [] and len(mismatches) == 0
