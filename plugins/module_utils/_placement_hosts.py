# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mutable per-host bookkeeping for the placement engine (`_placement`).

Hosts are numbered in name order, so "ties broken by host name" is simply the
smaller index. Resources are integers (milli-cpus, MiB) so sums are exact and a
plan never depends on float rounding. Everything here is O(1) per call: the
engine asks "does this unit fit host i" thousands of times per plan.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._model import Host, Service

#: Stands in for "not limited": larger than any real reservation.
UNLIMITED = 1 << 62


class Shape:
    """What one placement unit reserves: the sum of its services' resources, their static host
    ports and their dynamic (`auto`) ones: `dynamic` lists (service, port, range) in service
    order, `needs` how many ports of each (protocol, low, high) range that is."""

    __slots__ = ("services", "milli_cpus", "memory_mb", "ports", "dynamic", "needs", "stateful", "any_ports", "publishers")

    def __init__(self, services: t.Sequence[Service]):
        self.services = tuple(s.name for s in services)
        self.milli_cpus = sum(_milli(s.resources.cpus) for s in services)
        self.memory_mb = sum(int(s.resources.memory_mb) for s in services)
        ports: t.Set[t.Tuple[int, str]] = set()
        for service in services:
            ports.update(service.host_ports)
        self.ports = frozenset(ports)
        # static host port -> (service, container port) that publishes it, for error messages
        self.publishers = {p.host_key: (s.name, p.container_port) for s in services for p in s.ports
                           if p.host_key is not None and not p.dynamic}
        self.dynamic = tuple((s.name, p, tuple(s.host_port_range)) for s in services for p in s.ports if p.dynamic)
        needs: t.Dict[t.Tuple[str, int, int], int] = {}
        for _name, port, (low, high) in self.dynamic:
            needs[(port.protocol, low, high)] = needs.get((port.protocol, low, high), 0) + 1
        self.needs = tuple(sorted(needs.items()))
        self.stateful = any(getattr(s, "stateful", False) for s in services)
        self.any_ports = bool(self.ports or self.needs)  # one test in `fits` for units without ports

    def describe(self) -> str:
        parts = ["cpus %s" % fmt_cpus(self.milli_cpus), "memory %d MiB" % self.memory_mb]
        if self.ports:
            parts.append("ports " + fmt_ports(self.ports))
        if self.needs:
            parts.append("dynamic ports " + fmt_needs(self.needs))
        return ", ".join(parts)


class HostTable:
    """Free resources, used ports and placed instances of every host, indexed by position in name order."""

    def __init__(self, hosts: t.Sequence[Host], reserved: t.AbstractSet[t.Tuple[int, str]] = frozenset(),
                 missing: t.Sequence[Host] = ()):
        """`reserved`: every static host port of the stack file, never handed out dynamically.
        `missing`: hosts not given that hold stateful units (docs/placement.md "Held"): eligible
        for nothing, like drained ones, but present so the units held there keep their host."""
        self.hosts = sorted(list(hosts) + list(missing), key=lambda h: h.name)
        self.names = [h.name for h in self.hosts]
        gone = {h.name for h in missing}
        self.missing = [h.name in gone for h in self.hosts]
        self.given = len(self.hosts) - len(gone)
        self.drained = [bool(getattr(h, "drain", False)) or self.missing[i] for i, h in enumerate(self.hosts)]
        self.reserved = frozenset(reserved)
        self._reserved_in: t.Dict[t.Tuple[str, int, int], int] = {}
        self.index = {name: i for i, name in enumerate(self.names)}
        self.cap_cpu = [_capacity(h, "cpus") for h in self.hosts]
        self.cap_mem = [_capacity(h, "memory_mb") for h in self.hosts]
        self.free_cpu = list(self.cap_cpu)
        self.free_mem = list(self.cap_mem)
        self.ports: t.List[t.Set[t.Tuple[int, str]]] = [set() for _host in self.hosts]
        # deploy key -> {instance id -> units of that instance here}
        self.placed: t.List[t.Dict[str, t.Dict[str, int]]] = [{} for _host in self.hosts]
        self.containers = [0] * len(self.hosts)
        self.counted = [0] * len(self.hosts)  # units of counted (not global) deploys: is the host "in use"
        self.version = [0] * len(self.hosts)  # bumped on every change; invalidates stale heap entries
        # Size order for binpack's choice among empty hosts: larger first.
        self.size = [(-self.cap_cpu[i], -self.cap_mem[i]) for i in range(len(self.hosts))]

    def __len__(self) -> int:
        return len(self.names)

    def fits(self, i: int, shape: Shape, deploy: str, instance: str, exclusive: bool, max_per_host: int) -> bool:
        """Capacity, ports and this deploy's own per-host limits. Conflicts with other
        deploys, affinity and eligibility are the caller's (they do not change while one
        deploy is being placed)."""
        if self.free_cpu[i] < shape.milli_cpus or self.free_mem[i] < shape.memory_mb:
            return False
        if shape.any_ports:
            if shape.ports and not self.ports[i].isdisjoint(shape.ports):
                return False
            if shape.needs and (self.short_range(i, shape.needs) is not None
                                or (len(shape.needs) > 1 and self.allocate(i, shape, strict=False) is None)):
                return False  # (several ranges in one unit may overlap: only a trial assignment tells)
        mine = self.placed[i].get(deploy)
        if mine and instance not in mine and (exclusive or len(mine) >= max_per_host):
            return False
        return True

    def free_in_range(self, i: int, protocol: str, low: int, high: int, need: int = 0) -> int:
        """Ports of low-high/protocol host i can still hand out (a lower bound of `need` or more
        is returned without counting exactly: the common case, a range far from full, is O(1))."""
        slot = (protocol, low, high)
        reserved = self._reserved_in.get(slot)
        if reserved is None:
            reserved = self._reserved_in[slot] = sum(1 for p, pr in self.reserved if pr == protocol and low <= p <= high)
        size = high - low + 1 - reserved
        used = self.ports[i]
        if size - len(used) >= need > 0:
            return size - len(used)
        return size - sum(1 for p, pr in used if pr == protocol and low <= p <= high and (p, pr) not in self.reserved)

    def short_range(self, i: int, needs: t.Sequence[t.Tuple[t.Tuple[str, int, int], int]]) -> t.Optional[t.Tuple[str, int, int]]:
        """The first (protocol, low, high) range host i has too few free ports in for `needs`, or None."""
        for (protocol, low, high), need in needs:
            if self.free_in_range(i, protocol, low, high, need) < need:
                return (protocol, low, high)
        return None

    def allocate(self, i: int, shape: Shape, prefer: t.Sequence[t.Optional[int]] = (), strict: bool = True
                 ) -> t.Optional[t.Tuple[int, ...]]:
        """Host ports for the unit's dynamic ports on host i, in `shape.dynamic` order: the
        preferred one (its port of the previous plan) when it is in range and free, else the
        lowest free port of its range. Deterministic. None (or ValueError when `strict`) when
        the ranges cannot give them all; `fits` checked that they can."""
        for wanted in ((prefer, ()) if any(p is not None for p in prefer) else ((),)):
            chosen = self._assign(i, shape, wanted)
            if chosen is not None:
                return chosen
        if strict:
            raise ValueError("the host_port_ranges of %s are exhausted on %s" % (", ".join(shape.services), self.names[i]))
        return None

    def _assign(self, i: int, shape: Shape, prefer: t.Sequence[t.Optional[int]]) -> t.Optional[t.Tuple[int, ...]]:
        used, reserved = self.ports[i], self.reserved
        chosen: t.List[t.Optional[int]] = [None] * len(shape.dynamic)
        taken: t.Set[t.Tuple[int, str]] = set()
        for n, (_name, port, (low, high)) in enumerate(shape.dynamic):
            want = prefer[n] if n < len(prefer) else None
            if want is None or not low <= want <= high:
                continue
            slot = (want, port.protocol)
            if slot not in used and slot not in reserved and slot not in taken:
                chosen[n] = want
                taken.add(slot)
        # Lowest free port, narrowest deadline first: with overlapping ranges in one unit this finds
        # an assignment whenever one exists (intervals matched by earliest end).
        for n in sorted((n for n in range(len(chosen)) if chosen[n] is None), key=lambda n: (shape.dynamic[n][2][1], shape.dynamic[n][2][0], n)):
            _name, port, (low, high) = shape.dynamic[n]
            number = low
            while (number, port.protocol) in used or (number, port.protocol) in reserved or (number, port.protocol) in taken:
                number += 1
            if number > high:
                return None
            chosen[n] = number
            taken.add((number, port.protocol))
        return tuple(t.cast(int, n) for n in chosen)

    def take_ports(self, i: int, shape: Shape, prefer: t.Sequence[t.Optional[int]] = ()) -> t.Tuple[int, ...]:
        """Choose and reserve the unit's dynamic ports on host i (after `add`; only for a shape with
        `dynamic`, so units without them cost nothing here)."""
        dynamic = t.cast(t.Tuple[int, ...], self.allocate(i, shape, prefer))
        self.ports[i].update((number, shape.dynamic[n][1].protocol) for n, number in enumerate(dynamic))
        self.version[i] += 1
        return dynamic

    def add(self, i: int, shape: Shape, deploy: str, instance: str, counted: bool = True) -> None:
        """Reserve the unit on host i (its dynamic ports: `take_ports`)."""
        self.free_cpu[i] -= shape.milli_cpus
        self.free_mem[i] -= shape.memory_mb
        if shape.ports:
            self.ports[i].update(shape.ports)
        mine = self.placed[i].setdefault(deploy, {})
        mine[instance] = mine.get(instance, 0) + 1
        self.containers[i] += len(shape.services)
        self.counted[i] += counted
        self.version[i] += 1

    def remove(self, i: int, shape: Shape, deploy: str, instance: str, counted: bool = True,
               dynamic: t.Sequence[int] = ()) -> None:
        """Undo one `add` (rebalance moves a kept unit)."""
        self.free_cpu[i] += shape.milli_cpus
        self.free_mem[i] += shape.memory_mb
        mine = self.placed[i][deploy]
        mine[instance] -= 1
        if not mine[instance]:
            del mine[instance]
        if not mine:
            del self.placed[i][deploy]
        if shape.ports:
            self.ports[i].difference_update(shape.ports)  # one unit per port per host: nobody else holds them
        if dynamic:
            self.ports[i].difference_update((number, shape.dynamic[n][1].protocol) for n, number in enumerate(dynamic))
        self.containers[i] -= len(shape.services)
        self.counted[i] -= counted
        self.version[i] += 1

    def runs_any(self, i: int, deploys: t.Iterable[str]) -> bool:
        placed = self.placed[i]
        return any(d in placed for d in deploys)

    def runs_all(self, i: int, deploys: t.Iterable[str]) -> bool:
        placed = self.placed[i]
        return all(d in placed for d in deploys)

    def load(self, i: int) -> float:
        """Fraction of the host in use: the fuller of cpu and memory (0 where unlimited)."""
        cpu = 0.0 if self.cap_cpu[i] >= UNLIMITED else (self.cap_cpu[i] - self.free_cpu[i]) / self.cap_cpu[i]
        mem = 0.0 if self.cap_mem[i] >= UNLIMITED else (self.cap_mem[i] - self.free_mem[i]) / self.cap_mem[i]
        return cpu if cpu > mem else mem

    def spread_key(self, i: int) -> t.Tuple[t.Any, ...]:
        """Least loaded first; then fewest containers; then name."""
        return (self.load(i), self.containers[i], i, self.version[i])

    def binpack_key(self, i: int) -> t.Tuple[t.Any, ...]:
        """Hosts already in use first, fullest first; then unused hosts, largest first, so fewer are opened.
        Global deploys (on every host anyway) do not make a host "in use"."""
        if self.counted[i]:
            return (0, -self.load(i), -self.containers[i], i, self.version[i])
        return (1, self.size[i], i, self.version[i])

    def describe_free(self, i: int) -> str:
        cpu = "unlimited" if self.cap_cpu[i] >= UNLIMITED else fmt_cpus(self.free_cpu[i])
        mem = "unlimited" if self.cap_mem[i] >= UNLIMITED else "%d MiB" % self.free_mem[i]
        return "cpus %s, memory %s free" % (cpu, mem)


def natural_key(key: str) -> t.List[t.Any]:
    """Sort key ordering `lamp-2` before `lamp-10`."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", key)]


def _milli(cpus: float) -> int:
    return int(round(float(cpus) * 1000))


def _capacity(host: Host, what: str) -> int:
    """A host without capacity, or with 0 in one dimension, is not limited in it."""
    if host.capacity is None:
        return UNLIMITED
    value = _milli(host.capacity.cpus) if what == "cpus" else int(host.capacity.memory_mb)
    return value if value > 0 else UNLIMITED


def fmt_cpus(milli: int) -> str:
    return ("%.3f" % (milli / 1000.0)).rstrip("0").rstrip(".") if milli % 1000 else "%d" % (milli // 1000)


def fmt_ports(ports: t.Iterable[t.Tuple[int, str]]) -> str:
    return ",".join("%d/%s" % p for p in sorted(ports))


def fmt_range(protocol: str, low: int, high: int) -> str:
    return "%d-%d/%s" % (low, high, protocol)


def fmt_needs(needs: t.Iterable[t.Tuple[t.Tuple[str, int, int], int]]) -> str:
    """`1 from 20000-32000/tcp`: a unit's dynamic ports per host_port_range."""
    return ", ".join("%d from %s" % (n, fmt_range(*slot)) for slot, n in needs)
