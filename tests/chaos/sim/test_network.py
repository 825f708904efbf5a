"""The simulated network: cuts lose messages, a quiet link keeps order, faults draw from the seed."""

from __future__ import annotations

import random

from chaos.sim.network import LinkFaults, Network


def test_a_quiet_link_delivers_once_after_one_hop_in_the_order_sent() -> None:
    network = Network(random.Random(1))
    assert network.transmit(0, 1, 100) == [101]
    assert network.transmit(0, 1, 100) == [101]
    assert network.transmit("producer", 2, 5) == [6]


def test_a_cut_link_loses_every_message_in_its_direction_only() -> None:
    network = Network(random.Random(1), cut={(0, 1)})
    assert network.transmit(0, 1, 10) == []
    assert network.transmit(1, 0, 10) == [11], "a one-way cut leaves the reverse direction"


def test_loss_and_duplication_happen_at_about_their_rates() -> None:
    network = Network(random.Random(7), faults={(0, 1): LinkFaults(loss=0.3, duplicate=0.2)})
    copies = [len(network.transmit(0, 1, 0)) for _ in range(2000)]
    assert 500 < copies.count(0) < 700  # 30 % of 2000 = 600
    assert 240 < copies.count(2) < 330  # 20 % of the 1400 that survive = 280


def test_without_reorder_a_jittery_link_never_lets_a_later_message_overtake() -> None:
    network = Network(random.Random(3), faults={(0, 1): LinkFaults(jitter_ms=50)})
    arrivals = [network.transmit(0, 1, now)[0] for now in range(0, 200, 2)]
    assert arrivals == sorted(arrivals)


def test_with_reorder_later_messages_do_overtake_earlier_ones() -> None:
    network = Network(random.Random(3), faults={(0, 1): LinkFaults(jitter_ms=50, reorder=True)})
    arrivals = [network.transmit(0, 1, now)[0] for now in range(0, 200, 2)]
    assert arrivals != sorted(arrivals)
    assert all(at > now for at, now in zip(arrivals, range(0, 200, 2), strict=True))


def test_the_same_seed_draws_the_same_fates() -> None:
    def fates(seed: int) -> list[list[int]]:
        network = Network(random.Random(seed), faults={(0, 1): LinkFaults(0.2, 0.2, 30, True)})
        return [network.transmit(0, 1, now) for now in range(100)]

    assert fates(5) == fates(5)
    assert fates(5) != fates(6)


def test_heal_removes_cuts_and_faults() -> None:
    network = Network(random.Random(1), cut={(0, 1)}, faults={(1, 0): LinkFaults(loss=1.0)})
    network.heal()
    assert network.transmit(0, 1, 0) == [1] and network.transmit(1, 0, 0) == [1]
