"""docs/runbooks.md names the integration test (or, for a step that needs no lab, the tests/unit/docs test) behind
each numbered step: every test it names exists, in the file it names, so a renamed or deleted test cannot leave a
step unexercised unnoticed."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
FOLDERS = (os.path.join(ROOT, "tests", "integration"), os.path.join(ROOT, "tests", "unit", "docs"))


def _sources():
    return {name: open(os.path.join(folder, name), encoding="utf-8").read()
            for folder in FOLDERS for name in os.listdir(folder) if name.startswith("test_") and name.endswith(".py")}


def test_every_test_the_runbooks_name_exists():
    with open(os.path.join(ROOT, "docs", "runbooks.md"), encoding="utf-8") as handle:
        text = handle.read()
    sources = _sources()
    named = re.findall(r"(?:tests/(?:integration|unit/docs)/)?(test_\w+\.py)::(test_\w+)", text)
    assert len(named) >= 8
    for filename, test in named:
        assert filename in sources, filename
        assert re.search(r"^def %s\(" % test, sources[filename], re.M), "%s::%s" % (filename, test)
    for filename in re.findall(r"tests/(?:integration|unit/docs)/(test_\w+\.py)", text):
        assert filename in sources, filename
    for test in re.findall(r"`(test_\w+)`", text):
        assert any(re.search(r"^def %s\(" % test, source, re.M) for source in sources.values()), test
