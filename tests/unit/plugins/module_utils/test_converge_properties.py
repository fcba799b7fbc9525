"""Properties: a container created from a document is never judged drifted from it (no storms),
and the second plan after applying the first has nothing to do (idempotence)."""
from ansible_collections.stackfleet.cluster.plugins.module_utils import _converge as cv
from hypothesis import given, settings
from hypothesis import strategies as st

IMG = "sha256:" + "c" * 64
names = st.from_regex(r"[a-z]{1,6}-[1-9]", fullmatch=True)
texts = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=8)
docs = st.builds(
    lambda inst, svc, env, cmd, cpus, mem, labels: {
        "name": "p.%s.%s" % (inst, svc), "cluster": "p", "deploy": inst.split("-")[0], "instance": inst, "service": svc,
        "image": "local/busybox:1", "env": env, "command": cmd, "labels": labels,
        "resources": {"cpus": cpus, "memory_mb": mem}},
    names, st.sampled_from(["web", "db", "lb"]), st.dictionaries(st.from_regex(r"[A-Z]{1,5}", fullmatch=True), texts, max_size=3),
    st.one_of(st.none(), st.lists(texts, max_size=3)), st.sampled_from([0, 0.5, 1, 1.0, 2.25]), st.integers(0, 4096),
    st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), texts, max_size=2))


def created(d):
    return cv.Observed(id="id-" + d["name"], name=d["name"], image=d["image"], image_id=IMG, state="running",
                       status="Up", labels=cv.container_labels(d))


def apply(p, observed):
    """What the host holds after carrying out `p` (the state a real run leaves)."""
    after = {o.name: o for o in observed}
    for a in p.removals:
        del after[a.name]
    for a in p.rollout:
        after[a.name] = created(a.doc)
    return list(after.values())


@settings(max_examples=200, deadline=None)
@given(st.lists(docs, max_size=6, unique_by=lambda d: d["name"]), st.lists(docs, max_size=6, unique_by=lambda d: d["name"]))
def test_converging_twice_changes_nothing_the_second_time(current, desired):
    observed = [created(d) for d in current]
    first = cv.plan(desired, observed, {"local/busybox:1": IMG})
    second = cv.plan(desired, apply(first, observed), {"local/busybox:1": IMG})
    assert not second.changed
    assert sorted(a.name for a in second.actions) == sorted(d["name"] for d in desired)


@settings(max_examples=200, deadline=None)
@given(docs)
def test_a_container_is_never_drifted_from_its_own_document(d):
    assert not cv.plan([d], [created(d)], {"local/busybox:1": IMG}).changed
