"""Deferred removal: a container whose instance runs on another host now waits; the rest is as before."""
from ansible_collections.stackfleet.cluster.plugins.module_utils import _converge as cv

IMG = "sha256:" + "a" * 64


def doc(name, **over):
    instance, service = name.split(".")[1:]
    d = {"name": name, "cluster": "prod", "deploy": instance.rsplit("-", 1)[0], "instance": instance, "service": service,
         "image": "local/busybox:1", "network_mode": "host"}
    d.update(over)
    return d


def seen(d, state="running"):
    return cv.Observed(id="id-" + d["name"], name=d["name"], image=d["image"], image_id=IMG, state=state, status="Up",
                       labels=cv.container_labels(d))


def by_action(p):
    return {a.name: a.action for a in p.actions}


def test_moved_instances_wait_scaled_away_ones_go_desired_ones_stay():
    keep, moved_db, moved_web, gone = doc("prod.lamp-1.web"), doc("prod.lamp-3.db"), doc("prod.lamp-3.web"), doc("prod.lamp-9.web")
    p = cv.plan([keep], [seen(keep), seen(moved_db), seen(moved_web, "exited"), seen(gone)], {"local/busybox:1": IMG},
                defer={"lamp-3", "lb-1"})
    assert by_action(p) == {"prod.lamp-1.web": cv.UNCHANGED, "prod.lamp-3.db": cv.DEFERRED, "prod.lamp-3.web": cv.DEFERRED,
                            "prod.lamp-9.web": cv.REMOVE}
    assert [a.name for a in p.removals] == ["prod.lamp-9.web"] and p.changed
    assert [a.name for a in p.deferred] == ["prod.lamp-3.db", "prod.lamp-3.web"]
    assert p.deferred[0].reason == "lamp-3 runs on another host now: removed once every host converged"
    assert p.deferred[0].observed.id == "id-prod.lamp-3.db"


def test_only_deferred_containers_is_no_change():
    moved = doc("prod.lamp-3.web")
    p = cv.plan([doc("prod.lamp-1.web")], [seen(doc("prod.lamp-1.web")), seen(moved)], {"local/busybox:1": IMG}, defer={"lamp-3"})
    assert not p.changed and by_action(p)["prod.lamp-3.web"] == cv.DEFERRED


def test_a_drained_host_defers_everything_that_moved_with_prune_all():
    a, b = doc("prod.lamp-2.web"), doc("prod.lb-1.lb")
    p = cv.plan([], [seen(a), seen(b)], {}, prune_all=True, defer={"lamp-2"})
    assert by_action(p) == {"prod.lamp-2.web": cv.DEFERRED, "prod.lb-1.lb": cv.REMOVE}
    # Without defer the host is emptied at once, as before.
    assert by_action(cv.plan([], [seen(a), seen(b)], {}, prune_all=True)) == {"prod.lamp-2.web": cv.REMOVE, "prod.lb-1.lb": cv.REMOVE}


def test_colocate_false_keys_name_instance_and_service():
    web, db = doc("prod.app-2.web"), doc("prod.app-2.db")
    p = cv.plan([db], [seen(web), seen(db)], {"local/busybox:1": IMG}, defer={"app-2.web"})
    assert by_action(p) == {"prod.app-2.db": cv.UNCHANGED, "prod.app-2.web": cv.DEFERRED}
    assert cv.moved_key(seen(web), {"app-2.db"}) is None and cv.moved_key(seen(web), {"app-2"}) == "app-2"


def test_prune_false_removes_and_defers_nothing_and_leftover_temps_still_go():
    moved = doc("prod.lamp-3.web")
    temp = cv.Observed(id="t", name="prod.lamp-3.web" + cv.TEMP_SUFFIX, image="local/busybox:1", image_id=IMG, state="created",
                       status="", labels=cv.container_labels(moved))
    p = cv.plan([], [seen(moved), temp], {}, prune=False, defer={"lamp-3"})
    assert by_action(p) == {"prod.lamp-3.web.sf-next": cv.REMOVE}
    p = cv.plan([], [seen(moved), temp], {}, prune_all=True, defer={"lamp-3"})
    assert by_action(p) == {"prod.lamp-3.web": cv.DEFERRED, "prod.lamp-3.web.sf-next": cv.REMOVE}


def test_a_container_without_instance_label_is_never_deferred():
    d = doc("prod.x-1.x")
    obs = cv.Observed(id="i", name=d["name"], image=d["image"], image_id=IMG, state="running", status="",
                      labels={k: v for k, v in cv.container_labels(d).items() if k != "io.stackfleet.instance"})
    assert by_action(cv.plan([], [obs], {}, prune_all=True, defer={"", "x-1"})) == {"prod.x-1.x": cv.REMOVE}


def test_every_key_of_the_plan_may_be_given_this_hosts_own_keys_are_ignored():
    """site.yml passes one list, every key of the plan, to every host (a complement per host cost hosts x instances)."""
    keep, stray, moved, gone = doc("prod.lamp-1.web"), doc("prod.lamp-1.old"), doc("prod.lamp-3.web"), doc("prod.lamp-9.web")
    every = {"lamp-1", "lamp-3", "lb-1"}
    p = cv.plan([keep], [seen(keep), seen(stray), seen(moved), seen(gone)], {"local/busybox:1": IMG}, defer=every)
    # lamp-1 runs here: its stray container (a service no longer in the stack) goes, as with the complement
    assert by_action(p) == {"prod.lamp-1.web": cv.UNCHANGED, "prod.lamp-1.old": cv.REMOVE, "prod.lamp-3.web": cv.DEFERRED,
                            "prod.lamp-9.web": cv.REMOVE}
    complement = cv.plan([keep], [seen(keep), seen(stray), seen(moved), seen(gone)], {"local/busybox:1": IMG}, defer=every - {"lamp-1"})
    assert by_action(complement) == by_action(p)
    # colocate: false keys: this host runs app-2.db, app-2.web runs elsewhere
    web, db = doc("prod.app-2.web"), doc("prod.app-2.db")
    p = cv.plan([db], [seen(web), seen(db)], {"local/busybox:1": IMG}, defer={"app-2.web", "app-2.db"})
    assert by_action(p) == {"prod.app-2.db": cv.UNCHANGED, "prod.app-2.web": cv.DEFERRED}
