"""The heartbeat state table against Kafka's own ``BrokerHeartbeatManager.calculateNextBrokerState``.

A Java driver (compiled here into a temporary directory, in Kafka's controller package since the
class is package-private) sets up a broker in each state, with or without another active broker
at some metadata offset, and asks Kafka for the next state for every combination of WantFence,
WantShutDown, caught up or not, leading partitions or not.  Skipped without a JDK or the cached
Kafka jars.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import pytest

from conformance.apache_kafka import cache_root, pinned_version
from reference.controller.cluster_control import BrokerControlState, next_state

DRIVER = r"""
package org.apache.kafka.controller;

import org.apache.kafka.common.message.BrokerHeartbeatRequestData;
import org.apache.kafka.common.utils.LogContext;
import org.apache.kafka.common.utils.Time;
import java.io.*;

public class HeartbeatDriver {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; ) {
            // state|wantFence|wantShutDown|currentOffset|registerOffset|leads|shutdownOffset|otherActiveOffset
            String[] f = line.split("\\|", -1);
            BrokerHeartbeatManager manager = new BrokerHeartbeatManager(new LogContext(), Time.SYSTEM, 9_000_000_000L);
            String state = f[0];
            manager.register(1, state.equals("FENCED"));
            if (!state.equals("FENCED")) manager.touch(1, false, 0);
            if (state.equals("CONTROLLED_SHUTDOWN")) manager.maybeUpdateControlledShutdownOffset(1, Long.parseLong(f[6]));
            if (!f[7].isEmpty()) { manager.register(2, false); manager.touch(2, false, Long.parseLong(f[7])); }
            BrokerHeartbeatRequestData request = new BrokerHeartbeatRequestData().setBrokerId(1)
                .setWantFence(Boolean.parseBoolean(f[1])).setWantShutDown(Boolean.parseBoolean(f[2]))
                .setCurrentMetadataOffset(Long.parseLong(f[3]));
            boolean leads = Boolean.parseBoolean(f[5]);
            BrokerControlStates states = manager.calculateNextBrokerState(1, request, Long.parseLong(f[4]), () -> leads);
            System.out.println(states.current() + "|" + states.next());
        }
    }
}
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    javac, java = shutil.which("javac"), shutil.which("java")
    libs = cache_root() / f"kafka-{pinned_version()}" / "libs"
    if javac is None or java is None or not (libs / f"kafka-metadata-{pinned_version()}.jar").exists():
        pytest.skip("needs a JDK and the cached Apache Kafka jars")
    build = Path(tmp_path_factory.mktemp("heartbeat-driver"))
    source = build / "HeartbeatDriver.java"
    source.write_text(DRIVER)
    subprocess.run([javac, "-cp", f"{libs}/*", "-d", str(build), str(source)], check=True, capture_output=True)
    return java, f"{libs}/*:{build}"


def test_the_heartbeat_state_table_is_kafkas(driver: tuple[str, str]) -> None:
    java, classpath = driver
    cases = []
    for state, want_fence, want_shut_down, caught_up, leads, other in itertools.product(
            ("FENCED", "UNFENCED", "CONTROLLED_SHUTDOWN"), (False, True), (False, True), (False, True),
            (False, True), (None, 4, 5, 6)):
        cases.append((state, want_fence, want_shut_down, 10 if caught_up else 9, 10, leads, 5, other))
    lines = ["|".join("" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
                      for value in case) for case in cases]
    answer = subprocess.run([java, "-cp", classpath, "org.apache.kafka.controller.HeartbeatDriver"],
                            input="\n".join(lines) + "\n", capture_output=True, text=True, check=True, timeout=120)
    kafka = answer.stdout.splitlines()
    assert len(kafka) == len(cases)
    for (state, want_fence, want_shut_down, current, register, leads, shutdown, other), expected in zip(
            cases, kafka, strict=True):
        replayed = other is None or shutdown <= other  # no active broker, or every one is past it
        refka = next_state(BrokerControlState[state], want_fence=want_fence, want_shut_down=want_shut_down,
                           caught_up=current >= register, leads_partitions=leads, shutdown_offset_replayed=replayed)
        assert f"{state}|{refka.name}" == expected, (state, want_fence, want_shut_down, current, leads, other)
