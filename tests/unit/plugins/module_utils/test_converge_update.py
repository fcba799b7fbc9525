"""In-place updates in _converge: `updated` for resources/restart, recreate for the rest, the 0.1
hash still accepted. Labels and documents go through their real representations (JSON as module
arguments arrive, Docker's label strings, an inspect payload as dockerd 20.10 returns it)."""
import copy
import json

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _converge as cv
from ansible_collections.stackfleet.cluster.plugins.module_utils import _docker
from ansible_collections.stackfleet.cluster.plugins.module_utils._desired import config_hash
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import LABEL_CONFIG_HASH

IMG = "sha256:" + "a" * 64
IMAGES = {"local/busybox:1": IMG, "local/busybox:2": IMG}
#: The image's own config as `GET /images/{id}/json` shows it (merged into every container).
IMAGE_CONFIG = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"], "Entrypoint": None,
                "Labels": {"maintainer": "image"}}


def doc(**over):
    d = {"name": "prod.db-1.db", "cluster": "prod", "deploy": "db", "instance": "db-1", "service": "db", "host": "h1",
         "image": "local/busybox:1", "command": ["sleep", "1000"], "entrypoint": None, "env": {"DB_HOST": "10.0.0.1"},
         "ports": [{"container_port": 8080, "protocol": "tcp", "host_port": 18080, "host_ip": ""}],
         "volumes": [{"source": "data", "target": "/data", "read_only": False}], "labels": {"team": "a"},
         "restart": "unless-stopped", "network_mode": None, "resources": {"cpus": 0.5, "memory_mb": 512}, "healthcheck": None}
    d.update(over)
    return json.loads(json.dumps(d))  # as module arguments arrive


def inspect_of(created, memory=None, nano_cpus=None, restart=None):
    """What dockerd 20.10 returns for a container created from `created` by `_docker.create_arguments`
    (recorded shape; the HostConfig values are the ones a `docker update` changes)."""
    labels = json.loads(json.dumps(dict(cv.container_labels(created), maintainer="image")))  # labels are strings in Docker
    res = created.get("resources") or {}
    policy = _docker._restart_policy(created.get("restart")) or {"Name": ""}
    return {
        "Id": "c" * 64, "Name": "/" + created["name"], "Image": IMG, "State": {"Status": "running", "StartedAt": "2026-12-02T12:00:00Z"},
        "Config": {"Image": created["image"], "Cmd": created["command"] or IMAGE_CONFIG["Cmd"], "Entrypoint": created["entrypoint"],
                   "Env": ["%s=%s" % kv for kv in created["env"].items()] + IMAGE_CONFIG["Env"], "Labels": labels,
                   "ExposedPorts": {"8080/tcp": {}}},
        "HostConfig": {"Binds": ["data:/data:rw"], "NetworkMode": created.get("network_mode") or "default",
                       "PortBindings": {"8080/tcp": [{"HostIp": "", "HostPort": "18080"}]},
                       "RestartPolicy": dict(dict(policy, MaximumRetryCount=policy.get("MaximumRetryCount", 0)), **(restart or {})),
                       "Memory": int(res.get("memory_mb", 0) * 1048576) if memory is None else memory, "MemorySwap": 0,
                       "NanoCpus": int(res.get("cpus", 0) * 1e9) if nano_cpus is None else nano_cpus},
    }


def observed(created, state="running", labels=None):
    return cv.Observed(id="c" * 64, name=created["name"], image=created["image"], image_id=IMG, state=state, status="Up",
                       labels=json.loads(json.dumps(cv.container_labels(created) if labels is None else labels)))


def plan_for(desired, created, **inspect_over):
    real = _docker.doc_from_inspect(inspect_of(created, **inspect_over), IMAGE_CONFIG)
    return cv.plan([desired], [observed(created)], IMAGES, configs={desired["name"]: real})


def only(p):
    (action,) = p.actions
    return action


def test_real_configuration_of_an_unchanged_container_shows_no_difference():
    d = doc()
    action = only(plan_for(d, d))
    assert action.action == cv.UNCHANGED and not plan_for(d, d).changed


def test_raising_a_memory_limit_is_an_update_in_place():
    action = only(plan_for(doc(resources={"cpus": 0.5, "memory_mb": 1024}), doc()))
    assert action.action == cv.UPDATE
    assert action.report()["changes"] == ["resources.memory_mb: 512 → 1024"]
    assert _docker.update_arguments(action) == {"Memory": 1024 * 1048576, "MemorySwap": 2048 * 1048576}


def test_a_hand_edit_of_memory_cpus_and_restart_is_repaired_in_place():
    d = doc()
    action = only(plan_for(d, d, memory=64 * 1048576, nano_cpus=2 * 10 ** 9, restart={"Name": "no"}))
    assert action.action == cv.UPDATE
    assert action.report()["changes"] == ["restart: no → unless-stopped", "resources.cpus: 2 → 0.5", "resources.memory_mb: 64 → 512"]
    assert _docker.update_arguments(action) == {"RestartPolicy": {"Name": "unless-stopped"}, "NanoCpus": 500000000,
                                                "Memory": 512 * 1048576, "MemorySwap": 1024 * 1048576}


def test_lifting_a_limit_recreates():
    action = only(plan_for(doc(resources={"cpus": 0.5, "memory_mb": 0}), doc()))
    assert action.action == cv.RECREATE and "cannot lift a limit" in action.reason


def test_a_stopped_container_is_updated_then_started():
    d, created = doc(restart="always"), doc()
    real = _docker.doc_from_inspect(inspect_of(created), IMAGE_CONFIG)
    p = cv.plan([d], [observed(created, state="exited")], IMAGES, configs={d["name"]: real})
    assert only(p).action == cv.UPDATE and "then start it" in only(p).reason


@pytest.mark.parametrize("change, named", [
    ({"image": "local/busybox:2"}, "image: local/busybox:1 → local/busybox:2"),
    ({"env": {"DB_HOST": "10.0.0.2"}}, "env.DB_HOST: changed"),
    ({"command": ["sleep", "5"]}, 'command: ["sleep","1000"] → ["sleep","5"]'),
    ({"labels": {"team": "b"}}, "labels.team: a → b"),
    ({"volumes": []}, 'volumes: [{"read_only":false,"source":"data","target":"/data"}] → []'),
])
def test_other_changes_still_recreate_and_name_the_field(change, named):
    action = only(plan_for(doc(**change), doc()))
    assert action.action == cv.RECREATE
    assert action.report()["changes"] == [named] and named in action.reason
    assert "10.0.0.2" not in json.dumps(action.report())


def test_a_recreate_together_with_an_in_place_change_names_both():
    action = only(plan_for(doc(image="local/busybox:2", restart="always"), doc()))
    assert action.action == cv.RECREATE
    assert action.report()["changes"] == ["image: local/busybox:1 → local/busybox:2", "restart: unless-stopped → always"]


def test_without_configs_in_place_fields_are_not_compared():
    p = cv.plan([doc(resources={"cpus": 0.5, "memory_mb": 1024})], [observed(doc())], IMAGES)
    assert only(p).action == cv.UNCHANGED


# --- containers created by 0.1 carry the legacy hash (in-place fields included)


def legacy_labels(created):
    labels = dict(cv.container_labels(created))
    labels[LABEL_CONFIG_HASH] = config_hash(created, legacy=True)
    return labels


def test_a_0_1_container_is_kept_after_the_upgrade():
    d = doc()
    assert legacy_labels(d)[LABEL_CONFIG_HASH] != cv.container_labels(d)[LABEL_CONFIG_HASH]
    real = _docker.doc_from_inspect(inspect_of(d), IMAGE_CONFIG)
    p = cv.plan([d], [observed(d, labels=legacy_labels(d))], IMAGES, configs={d["name"]: real})
    assert only(p).action == cv.UNCHANGED


def test_a_hand_edit_of_a_0_1_container_is_repaired_in_place():
    d = doc()
    real = _docker.doc_from_inspect(inspect_of(d, memory=64 * 1048576), IMAGE_CONFIG)
    p = cv.plan([d], [observed(d, labels=legacy_labels(d))], IMAGES, configs={d["name"]: real})
    assert only(p).action == cv.UPDATE


def test_a_0_1_container_whose_limit_changes_is_recreated_once_under_the_current_hash():
    # Its label cannot change in place, so the first in-place change moves it to the current hash.
    old, new = doc(), doc(resources={"cpus": 0.5, "memory_mb": 1024})
    real = _docker.doc_from_inspect(inspect_of(old), IMAGE_CONFIG)
    p = cv.plan([new], [observed(old, labels=legacy_labels(old))], IMAGES, configs={new["name"]: real})
    assert only(p).action == cv.RECREATE
    assert only(p).report()["changes"] == ["resources.memory_mb: 512 → 1024"]
    assert cv.container_labels(new)[LABEL_CONFIG_HASH] == config_hash(old)  # the replacement's label: the current hash


def test_the_current_hash_survives_a_changed_limit():
    # After an in-place update the label still matches: no recreate on the next run.
    old, new = doc(), doc(resources={"cpus": 0.5, "memory_mb": 1024})
    real = _docker.doc_from_inspect(inspect_of(new), IMAGE_CONFIG)
    p = cv.plan([new], [observed(old)], IMAGES, configs={new["name"]: real})
    assert only(p).action == cv.UNCHANGED


def test_doc_from_inspect_drops_image_defaults_and_stackfleet_labels():
    real = _docker.doc_from_inspect(inspect_of(doc(command=None)), IMAGE_CONFIG)
    assert real["env"] == {"DB_HOST": "10.0.0.1"} and real["labels"] == {"team": "a"} and real["command"] is None
    assert real["network_mode"] is None and real["restart"] == "unless-stopped"
    assert real["ports"] == doc()["ports"] and real["volumes"] == doc()["volumes"]
    raw = _docker.doc_from_inspect(inspect_of(doc()))  # without the image: what the container has, all of it
    assert "PATH" in raw["env"] and raw["labels"] == {"team": "a", "maintainer": "image"}


def test_on_failure_retry_count_round_trips():
    d = doc(restart="on-failure:3")
    info = inspect_of(d)
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert _docker.doc_from_inspect(copy.deepcopy(info), IMAGE_CONFIG)["restart"] == "on-failure:3"


def test_a_pending_replacement_names_its_fields_and_updates_still_happen_with_replace_false():
    d1, d2 = doc(image="local/busybox:2"), doc(name="prod.db-2.db", instance="db-2", restart="always")
    c1, c2 = doc(), doc(name="prod.db-2.db", instance="db-2")
    configs = {c["name"]: _docker.doc_from_inspect(inspect_of(c), IMAGE_CONFIG) for c in (c1, c2)}
    p = cv.plan([d1, d2], [observed(c1), cv.Observed(**dict(vars(observed(c2)), id="d" * 64))], IMAGES, replace=False, configs=configs)
    assert [(a.name, a.action) for a in p.actions] == [("prod.db-1.db", cv.PENDING), ("prod.db-2.db", cv.UPDATE)]
    assert p.actions[0].report()["changes"] == ["image: local/busybox:1 → local/busybox:2"]
