"""The drift rules of _converge: hash-based, storm-free, and never touching foreign containers."""
import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _converge as cv
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import (
    LABEL_CLUSTER,
    LABEL_CONFIG_HASH,
    LABEL_INSTANCE,
    LABEL_SERVICE,
)

IMG = "sha256:" + "a" * 64
IMG2 = "sha256:" + "b" * 64


def doc(name="prod.web-1.web", **over):
    instance, service = name.split(".")[1:]
    d = {"name": name, "cluster": "prod", "deploy": instance.rsplit("-", 1)[0], "instance": instance, "service": service,
         "host": "h1", "image": "local/busybox:1", "command": ["sleep", "1000"], "entrypoint": None,
         "env": {"PASSWORD": "s3cret"}, "ports": [], "volumes": [], "labels": {"team": "a"}, "restart": "unless-stopped",
         "network_mode": "host", "resources": {"cpus": 0.5, "memory_mb": 64}, "healthcheck": None}
    d.update(over)
    return d


def seen(d, state="running", image_id=IMG, labels=None, name=None, status="Up 3 minutes"):
    """What the one listing row of a container stackfleet created from `d` looks like."""
    lab = cv.container_labels(d) if labels is None else labels
    lab = dict(lab, **{"maintainer": "image label merged in by the daemon"})
    return cv.Observed(id="id-" + (name or d["name"]), name=name or d["name"], image=d["image"], image_id=image_id,
                       state=state, status=status, labels=lab)


def actions(p):
    return [(a.name, a.action) for a in p.actions]


def test_hash_ignores_host_and_key_order_and_integral_floats():
    a = doc(resources={"cpus": 1.0, "memory_mb": 64})
    b = dict(reversed(list(doc(host="h9", resources={"memory_mb": 64, "cpus": 1}).items())))
    assert cv.config_hash(a) == cv.config_hash(b)
    assert cv.config_hash(a) != cv.config_hash(doc(env={"PASSWORD": "other"}))


@pytest.mark.parametrize("field, value", [
    ("image", "local/busybox:2"), ("command", ["sleep", "5"]), ("entrypoint", ["/bin/sh", "-c"]),
    ("env", {"PASSWORD": "x"}), ("ports", [{"container_port": 80, "protocol": "tcp", "host_port": 8080, "host_ip": ""}]),
    ("volumes", [{"source": "data", "target": "/data", "read_only": False}]), ("labels", {"team": "b"}),
    ("network_mode", None),  # restart and resources are updated in place: test_converge_update.py
    ("healthcheck", {"test": ["CMD", "true"], "interval": 5.0, "timeout": 30.0, "retries": 3, "start_period": 0.0}),
])
def test_every_config_field_counts_as_drift(field, value):
    old = doc()
    p = cv.plan([doc(**{field: value})], [seen(old)], {"local/busybox:1": IMG, "local/busybox:2": IMG})
    assert actions(p) == [("prod.web-1.web", cv.RECREATE)]
    assert "configuration changed" in p.actions[0].reason


def test_no_change_means_no_action_even_with_daemon_added_labels():
    d = doc()
    p = cv.plan([d], [seen(d)], {"local/busybox:1": IMG})
    assert not p.changed and actions(p) == [("prod.web-1.web", cv.UNCHANGED)]


def test_image_tag_moved_to_a_new_id_recreates():
    d = doc()
    p = cv.plan([d], [seen(d, image_id=IMG)], {"local/busybox:1": IMG2})
    assert actions(p) == [("prod.web-1.web", cv.RECREATE)] and "now points to" in p.actions[0].reason


def test_unresolvable_image_is_not_drift():
    d = doc()
    assert not cv.plan([d], [seen(d)], {"local/busybox:1": None}).changed


@pytest.mark.parametrize("state, want", [("exited", cv.START), ("created", cv.START), ("paused", cv.START),
                                         ("dead", cv.RECREATE), ("running", cv.UNCHANGED), ("restarting", cv.UNCHANGED)])
def test_state_drift(state, want):
    d = doc()
    p = cv.plan([d], [seen(d, state=state)], {"local/busybox:1": IMG})
    assert actions(p) == [(d["name"], want)]
    assert bool(p.warnings) == (state == "restarting")


def test_unhealthy_is_a_warning_not_a_recreate_loop():
    d = doc()
    p = cv.plan([d], [seen(d, status="Up 2 minutes (unhealthy)")], {"local/busybox:1": IMG})
    assert not p.changed and "unhealthy" in p.warnings[0]


def test_hand_made_container_without_hash_label_is_replaced():
    d = doc()
    p = cv.plan([d], [seen(d, labels={LABEL_CLUSTER: "prod"})], {"local/busybox:1": IMG})
    assert actions(p) == [(d["name"], cv.RECREATE)] and LABEL_CONFIG_HASH in p.actions[0].reason


def test_stackfleet_label_edited_is_replaced():
    d = doc()
    labels = dict(cv.container_labels(d), **{LABEL_SERVICE: "db"})
    p = cv.plan([d], [seen(d, labels=labels)], {"local/busybox:1": IMG})
    assert actions(p) == [(d["name"], cv.RECREATE)] and LABEL_SERVICE in p.actions[0].reason


def test_renamed_container_is_removed_and_recreated_under_its_name():
    d = doc()
    p = cv.plan([d], [seen(d, name="my-copy")], {"local/busybox:1": IMG})
    assert actions(p) == [("my-copy", cv.REMOVE), (d["name"], cv.CREATE)]
    assert "renamed by hand" in p.removals[0].reason


def test_prune_removes_exactly_the_undesired_and_only_when_asked():
    docs = [doc("prod.web-%d.web" % i) for i in (1, 2, 3)]
    obs = [seen(d) for d in docs]
    p = cv.plan(docs[:1], obs, {"local/busybox:1": IMG})
    assert actions(p) == [("prod.web-1.web", cv.UNCHANGED), ("prod.web-2.web", cv.REMOVE), ("prod.web-3.web", cv.REMOVE)]
    assert not cv.plan(docs[:1], obs, {"local/busybox:1": IMG}, prune=False).changed


def test_foreign_container_with_a_desired_name_is_an_error_not_a_removal():
    d = doc()
    with pytest.raises(cv.DocumentError, match="not managed by this cluster"):
        cv.plan([d], [], {"local/busybox:1": IMG}, foreign={d["name"]: "abc"})


def test_missing_names_are_the_only_ones_checked_for_foreign_clashes():
    a, b = doc("prod.web-1.web"), doc("prod.web-2.web")
    assert cv.missing_names([a, b], [seen(a)]) == ["prod.web-2.web"]


def test_validate_reports_every_problem_at_once():
    bad = [{"name": "x"}, doc(cluster="other"), doc(), doc(), doc("prod.db-1.db", env={"N": 3})]
    with pytest.raises(cv.DocumentError) as err:
        cv.validate(bad, "prod")
    msg = str(err.value)
    for part in ("containers[0] lacks cluster, image", "belongs to cluster 'other'", "appears twice", "env must map names to strings"):
        assert part in msg


def test_batches_and_rollout_order():
    docs = [doc("prod.web-%d.web" % i) for i in range(1, 6)]
    p = cv.plan(docs, [], {"local/busybox:1": IMG})
    groups = cv.batches(p.rollout, 2)
    assert [[a.name for a in g] for g in groups] == [["prod.web-1.web", "prod.web-2.web"], ["prod.web-3.web", "prod.web-4.web"],
                                                     ["prod.web-5.web"]]
    assert len(cv.batches(p.rollout, 0)) == 5


def test_labels_written_carry_identity_and_hash():
    d = doc()
    labels = cv.container_labels(d)
    assert labels[LABEL_INSTANCE] == "web-1" and labels[LABEL_CONFIG_HASH] == cv.config_hash(d) and labels["team"] == "a"


def test_scrub_masks_env_values_only():
    clean = cv.scrub_doc(doc())
    assert clean["env"] == {"PASSWORD": cv.SECRET_MASK} and clean["command"] == ["sleep", "1000"]
    assert doc()["env"]["PASSWORD"] == "s3cret"


# Issue 8: pull first, replace safely, throttle by deploy, pending, empty lists -----------------------------------


def test_images_to_pull_by_policy_and_document_override():
    a, b, c = doc("prod.web-1.web"), doc("prod.db-1.db", image="mariadb:11"), doc("prod.lb-1.lb", image="lb:1", pull="always")
    ids = {"local/busybox:1": IMG, "mariadb:11": None, "lb:1": IMG}
    assert cv.images_to_pull([a, b, c], ids) == ["lb:1", "mariadb:11"]
    assert cv.images_to_pull([a, b, c], ids, "always") == ["lb:1", "local/busybox:1", "mariadb:11"]
    assert cv.images_to_pull([a, b, c], ids, "never") == ["lb:1"]
    # an absent image is pulled if any document using it allows it
    assert cv.images_to_pull([dict(b, pull="never"), dict(b, name="prod.db-2.db")], ids) == ["mariadb:11"]
    assert cv.images_to_pull([dict(b, pull="never")], ids) == []


def test_unavailable_image_fails_its_containers_untouched_and_holds_every_replacement():
    web, db, new = doc("prod.web-1.web"), doc("prod.db-1.db", image="bad:tag"), doc("prod.web-2.web")
    changed_web = doc("prod.web-1.web", env={"PASSWORD": "new"})
    p = cv.plan([changed_web, db, new], [seen(web), seen(doc("prod.db-1.db"))], {"local/busybox:1": IMG, "bad:tag": None},
                unavailable={"bad:tag": "cannot be pulled (not found)"})
    assert actions(p) == [("prod.db-1.db", cv.FAILED), ("prod.web-1.web", cv.PENDING), ("prod.web-2.web", cv.CREATE)]
    assert "bad:tag" in p.failed[0].reason and "cannot be pulled" in p.failed[0].reason
    assert "prod.db-1.db" in p.pending[0].reason
    assert p.changed  # the create still happens: creating is not replacing


def test_replace_false_lists_pending_and_does_the_rest():
    a, b, c = doc("prod.web-1.web"), doc("prod.web-2.web"), doc("prod.web-3.web")
    p = cv.plan([doc("prod.web-1.web", env={"X": "2"}), b, c], [seen(a), seen(b, state="exited"), seen(doc("prod.old-1.old"))],
                {"local/busybox:1": IMG}, replace=False)
    assert actions(p) == [("prod.old-1.old", cv.REMOVE), ("prod.web-1.web", cv.PENDING), ("prod.web-2.web", cv.START),
                          ("prod.web-3.web", cv.CREATE)]
    assert "configuration changed" in p.pending[0].reason and "replace is false" in p.pending[0].reason
    only_pending = cv.plan([doc("prod.web-1.web", env={"X": "2"})], [seen(a)], {"local/busybox:1": IMG}, replace=False)
    assert not only_pending.changed and len(only_pending.pending) == 1


def test_check_mode_absent_image_is_a_change():
    d = doc()
    p = cv.plan([d, doc("prod.web-2.web")], [seen(d)], {"local/busybox:1": None}, would_pull={"local/busybox:1"})
    assert actions(p) == [("prod.web-1.web", cv.RECREATE), ("prod.web-2.web", cv.CREATE)]
    assert "not on the host" in p.actions[0].reason and "would pull" in p.actions[1].reason


def test_empty_documents_remove_nothing_without_prune_all():
    obs = [seen(doc("prod.web-%d.web" % i)) for i in (1, 2)]
    p = cv.plan([], obs, {})
    assert not p.changed and "prune_all" in p.warnings[0] and "2 container(s)" in p.warnings[0]
    assert [a.action for a in cv.plan([], obs, {}, prune_all=True).actions] == [cv.REMOVE, cv.REMOVE]
    assert not cv.plan([], obs, {}, prune=False, prune_all=True).changed
    assert not cv.plan([], [], {}).warnings


def test_leftover_temporary_container_is_removed_and_the_old_one_restarted():
    d = doc()
    temp = seen(d, name=cv.temp_name(d["name"]), state="running")
    p = cv.plan([d], [seen(d, state="exited"), temp], {"local/busybox:1": IMG}, prune=False)
    assert actions(p) == [(d["name"], cv.START), (cv.temp_name(d["name"]), cv.REMOVE)]
    assert "interrupted" in p.removals[0].reason
    # the temporary container never counts as the desired one, even when only it is left
    p = cv.plan([d], [temp], {"local/busybox:1": IMG})
    assert actions(p) == [(d["name"], cv.CREATE), (cv.temp_name(d["name"]), cv.REMOVE)]


def test_a_killed_replacement_keeps_its_running_new_copy_until_the_replacement_runs():
    """A run killed after stopping the old container and starting the new one leaves the new one (temporary
    name) as the only copy running: phase 1 (replace false) keeps it, the replacement (replace true) removes it
    and replaces the old container; never both gone for the time in between."""
    d = doc(env={"VERSION": "2"})
    old = seen(doc(env={"VERSION": "1"}), state="exited", status="Exited (0) 5 seconds ago")
    temp = seen(d, name=cv.temp_name(d["name"]), state="running")
    images = {"local/busybox:1": IMG}
    p = cv.plan([d], [old, temp], images, replace=False)
    assert actions(p) == [(d["name"], cv.PENDING)] and not p.changed
    assert "%s runs in place of the stopped %s" % (temp.name, d["name"]) in p.warnings[0]
    p = cv.plan([d], [old, temp], images)
    assert actions(p) == [(d["name"], cv.RECREATE), (temp.name, cv.REMOVE)]
    # Not once the old container runs again, nor when it is current (it is started), nor when the new one is not running.
    assert (temp.name, cv.REMOVE) in actions(cv.plan([d], [seen(doc(env={"VERSION": "1"})), temp], images, replace=False))
    assert (temp.name, cv.REMOVE) in actions(cv.plan([d], [seen(d, state="exited"), temp], images, replace=False))
    stopped = seen(d, name=cv.temp_name(d["name"]), state="exited")
    assert (temp.name, cv.REMOVE) in actions(cv.plan([d], [old, stopped], images, replace=False))


def _recreates(names, **docfields):
    return [cv.Action(n, cv.RECREATE, "x", doc(n, **docfields)) for n in names]


def test_replacement_batches_hold_at_most_parallelism_of_a_deploy():
    acts = _recreates(["prod.lb-1.lb", "prod.lb-2.lb", "prod.web-1.web", "prod.web-2.web", "prod.web-3.web"])
    names = [[a.name for a in b] for b in cv.replacement_batches(acts, 4)]
    assert names == [["prod.lb-1.lb", "prod.web-1.web"], ["prod.lb-2.lb", "prod.web-2.web"], ["prod.web-3.web"]]
    wide = [cv.Action(a.name, a.action, a.reason, dict(a.doc, update={"parallelism": 2})) for a in acts]
    names = [[a.name for a in b] for b in cv.replacement_batches(wide, 3)]
    assert names == [["prod.lb-1.lb", "prod.lb-2.lb", "prod.web-1.web"], ["prod.web-2.web", "prod.web-3.web"]]
    assert [len(b) for b in cv.replacement_batches(acts, 1)] == [1] * 5


def test_validate_accepts_secret_references_and_checks_pull():
    cv.validate([doc(env={"DB_PASSWORD": {"secret": "db"}, "A": "b"})], "prod")
    with pytest.raises(cv.DocumentError, match="env must map"):
        cv.validate([doc(env={"X": {"secret": "db", "extra": 1}})], "prod")
    with pytest.raises(cv.DocumentError, match="pull must be one of"):
        cv.validate([doc(pull="sometimes")], "prod")
