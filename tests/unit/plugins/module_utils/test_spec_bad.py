# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every file in tests/unit/data/bad/ is invalid; its first line `# expect: ...` is one of its messages."""

from __future__ import annotations

import os

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _spec

BAD = os.path.join(os.path.dirname(__file__), "..", "..", "data", "bad")
FILES = sorted(name for name in os.listdir(BAD) if name.endswith(".yml"))


def _expected(path):
    with open(path, encoding="utf-8") as handle:
        first = handle.readline()
    assert first.startswith("# expect: "), "%s must start with '# expect: <message>'" % path
    return first[len("# expect: "):].rstrip("\n")


def test_there_are_enough_bad_files():
    assert len(FILES) >= 30


@pytest.mark.parametrize("name", FILES)
def test_bad_file_reports_its_message(name):
    path = os.path.join(BAD, name)
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    with pytest.raises(_spec.SpecError) as caught:
        _spec.load_text(text, source="stacks.yml")
    expected = "stacks.yml: " + _expected(path)
    assert any(message.startswith(expected) for message in caught.value.errors), "\n".join(caught.value.errors)
    assert str(caught.value).splitlines()[0].startswith("stacks.yml: ")
