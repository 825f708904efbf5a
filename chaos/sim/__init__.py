"""The deterministic simulator: the real cluster cores on a seeded network, clock and fault schedule.

Modules, in the order a run uses them: :mod:`~chaos.sim.network` (links and their faults),
:mod:`~chaos.sim.cluster` (the event queue and the nodes), :mod:`~chaos.sim.faults` (the schedule
and swarm testing), :mod:`~chaos.sim.clients` (producers and the final reader, writing the history
:mod:`chaos.checker` judges), :mod:`~chaos.sim.invariants` (the models' invariants after every
event), :mod:`~chaos.sim.probes` (coverage), :mod:`~chaos.sim.run` (one run),
:mod:`~chaos.sim.shrink` (a failing schedule made minimal) and :mod:`~chaos.sim.cli`
(``refka sim``).
"""
