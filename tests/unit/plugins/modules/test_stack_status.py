"""stack_status's engine reads (one listing, one image listing, inspects of the cluster's containers only)
and its document checks, with a fake engine."""
import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _fleet
from ansible_collections.stackfleet.cluster.plugins.module_utils._converge import DocumentError, Observed
from ansible_collections.stackfleet.cluster.plugins.modules import stack_status


class FakeEngine:
    def __init__(self, rows):
        self.rows = rows
        self.calls = []
        self.api = self

    def close(self):
        self.calls.append("close")

    def version(self):
        return {"Version": "20.10.24"}

    def list_all(self):
        self.calls.append("list")
        return self.rows

    def runtime(self, observed):
        ids = [o.id for o in observed]
        self.calls.append(("inspect", ids))
        return {i: {"restart_count": 2, "started_at": "2026-12-02T16:00:00Z", "health": None, "config": None} for i in ids}

    def image_ids(self, refs):
        self.calls.append(("images", list(refs)))
        return {ref: "sha256:x" for ref in refs}


def row(name, cluster):
    labels = {"io.stackfleet.cluster": cluster} if cluster else {}
    return Observed(id="id-" + name, name=name, image="i", image_id="sha256:x", state="running", status="Up", labels=labels)


def test_one_listing_and_inspects_of_the_clusters_containers_only():
    engine = FakeEngine([row("p.a-1.web", "p"), row("other", None), row("q.b-1.web", "q")])
    read = stack_status._reader("p", ["local/busybox:1"], inspect=True)(engine)
    assert engine.calls == ["list", ("inspect", ["id-p.a-1.web"]), ("images", ["local/busybox:1"]), "close"]
    assert read["version"] == "20.10.24" and read["foreign"] == 2 and [o.name for o in read["ours"]] == ["p.a-1.web"]
    assert read["runtime"]["id-p.a-1.web"]["restart_count"] == 2


def test_without_inspect_only_the_listings():
    engine = FakeEngine([row("p.a-1.web", "p")])
    read = stack_status._reader("p", [], inspect=False)(engine)
    assert engine.calls == ["list", "close"] and read["runtime"] == {} and read["image_ids"] == {}


def test_read_views_turns_failures_into_unreachable_hosts(monkeypatch):
    def on_engines(engines, fn, timeout, max_workers, deadline=None):
        return {"h1": _fleet.Outcome("h1", True, fn(FakeEngine([row("p.a-1.web", "p")])), None, 0.02),
                "h2": _fleet.Outcome("h2", False, None, "cannot reach the Docker engine at tcp://h2:2376", 3.0)}

    monkeypatch.setattr(_fleet, "on_engines", on_engines)
    views = stack_status.read_views("p", {"h1": {}, "h2": {}}, [], True, 3.0, 4)
    assert views["h1"].reachable and views["h1"].containers[0].restart_count == 2 and views["h1"].seconds == 0.02
    assert not views["h2"].reachable and "cannot reach" in views["h2"].error


def test_documents_are_checked_per_host():
    good = {"name": "p.a-1.web", "cluster": "p", "image": "i"}
    assert stack_status._documents({"h1": [good], "h2": []}, "p") == {"h1": [good], "h2": []}
    with pytest.raises(DocumentError, match=r"containers\[h1\].*belongs to cluster 'q'"):
        stack_status._documents({"h1": [dict(good, cluster="q")]}, "p")
    with pytest.raises(DocumentError, match="is not a list"):
        stack_status._documents({"h1": "x"}, "p")


def test_logged_arguments_carry_no_env_value_or_secret():
    args = stack_status.scrubbed({"containers": {"h1": [{"name": "n", "env": {"A": "plain"}}]}, "secrets": {"s": "v"}})
    assert args["containers"]["h1"][0]["env"] == {"A": "********"} and args["secrets"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
