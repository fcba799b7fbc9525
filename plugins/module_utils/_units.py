# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Memory sizes, CPU amounts and durations as users write them in a stack file.

Each parser raises ValueError with an "expected ..., got ..." message; `_spec` adds
the file and key path in front of it.
"""

from __future__ import annotations

import math
import re
import typing as t

_MIB = 1024 * 1024
# Docker's units are binary whatever the spelling: k = KiB, m = MiB, ... (`docker run -m`).
_MEMORY = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([bkmgt])(?:i?b)?)?\s*", re.IGNORECASE)
_MEMORY_FACTOR = {"b": 1, "k": 1024, "m": _MIB, "g": 1024 * _MIB, "t": 1024 * 1024 * _MIB}
_CPUS = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(m?)\s*")
# Go-style durations as Docker and compose take them: 1m30s, 500ms, 1.5h.
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")
_DURATION_FACTOR = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def show(value: t.Any) -> str:
    """A short, quoted rendering of a user value for messages."""
    if isinstance(value, str):
        text = repr(str(value))
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = repr(value)
    elif isinstance(value, t.Mapping):
        text = "a mapping"
    elif isinstance(value, (list, tuple)):
        text = "a list"
    else:
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: t.Any) -> t.Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def parse_memory(value: t.Any) -> int:
    """Docker-style memory size → MiB, rounded up.

    `512m`, `1g`, `1.5g`, `2048k`, `1gb`, `1GiB` (units are binary, case-insensitive).
    A bare number, or a number without unit, is bytes as in Docker: `536870912` is 512 MiB.
    """
    number = _number(value)
    if number is not None:
        size = number
    elif isinstance(value, str) and _MEMORY.fullmatch(value):
        match = _MEMORY.fullmatch(value)
        size = float(match.group(1)) * _MEMORY_FACTOR[(match.group(2) or "b").lower()]
    else:
        raise ValueError("expected a memory size such as 512m, 1g or 1.5GiB (a bare number is bytes), got %s" % show(value))
    if size < 0:
        raise ValueError("expected a non-negative memory size, got %s" % show(value))
    return int(math.ceil(size / _MIB))


def parse_cpus(value: t.Any) -> float:
    """CPU amount → number of CPUs: `1`, `0.5`, `"1.5"` or millicores `"500m"`."""
    number = _number(value)
    if number is None and isinstance(value, str) and _CPUS.fullmatch(value):
        match = _CPUS.fullmatch(value)
        number = float(match.group(1)) / (1000.0 if match.group(2) else 1.0)
    if number is None:
        raise ValueError("expected a number of CPUs such as 1, 0.5 or '500m', got %s" % show(value))
    if number < 0:
        raise ValueError("expected a non-negative number of CPUs, got %s" % show(value))
    return number


def parse_duration(value: t.Any) -> float:
    """Duration → seconds: `5s`, `1m30s`, `500ms`, `1h`; a bare number is seconds."""
    number = _number(value)
    if number is not None:
        seconds = number
    elif isinstance(value, str) and value.strip() and _DURATION_PART.sub("", value.strip()) == "":
        seconds = sum(float(amount) * _DURATION_FACTOR[unit] for amount, unit in _DURATION_PART.findall(value))
    else:
        raise ValueError("expected a duration such as 5s, 1m30s or 500ms, got %s" % show(value))
    if seconds < 0:
        raise ValueError("expected a non-negative duration, got %s" % show(value))
    return round(seconds, 9)  # 100 * 1e-3 must hash like 0.1
