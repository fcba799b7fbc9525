"""The verdicts of _status: one per planned container, orphans are exactly ours-not-in-plan,
and each state (stopped, killed, removed, duplicated, changed by hand, host down) is named."""
import json

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _converge as cv
from ansible_collections.stackfleet.cluster.plugins.module_utils import _secrets
from ansible_collections.stackfleet.cluster.plugins.module_utils import _status as st
from ansible_collections.stackfleet.cluster.plugins.module_utils._desired import config_hash
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import LABEL_CONFIG_HASH
from hypothesis import given, settings
from hypothesis import strategies as hs

IMG = "sha256:" + "a" * 64
IMG2 = "sha256:" + "b" * 64


def doc(name="prod.web-1.web", host="h1", **over):
    instance, service = name.split(".")[1:]
    d = {"name": name, "cluster": "prod", "deploy": instance.rsplit("-", 1)[0], "instance": instance, "service": service,
         "host": host, "image": "local/busybox:1", "command": ["sleep", "1000"], "entrypoint": None,
         "env": {"MODE": "a"}, "ports": [], "volumes": [], "labels": {"team": "a"}, "restart": "unless-stopped",
         "network_mode": "host", "resources": {"cpus": 0.5, "memory_mb": 64}, "healthcheck": None, "update": {"parallelism": 1}}
    d.update(over)
    return d


def seen(d, host="h1", state="running", status="Up 3 minutes", name=None, labels=None, image_id=IMG, secrets=None, **extra):
    """A container stackfleet created from `d`, as the engine's listing shows it (labels through JSON, as Docker has them)."""
    lab = cv.container_labels(_secrets.hashable(d, secrets)) if labels is None else labels
    lab = json.loads(json.dumps(dict(lab, maintainer="merged in from the image")))
    obs = cv.Observed(id="id-%s-%s" % (host, name or d["name"]), name=name or d["name"], image=d["image"], image_id=image_id,
                      state=state, status=status, labels=lab)
    return st.Seen(host=host, observed=obs, **extra)


def view(host, *containers, reachable=True, **over):
    return st.HostView(host, reachable, version="20.10.24" if reachable else None, containers=containers,
                       image_ids={"local/busybox:1": IMG}, **over)


def one(result, name):
    [entry] = [e for e in result["containers"] if e["name"] == name and e["verdict"] != st.ORPHAN]
    return entry


WEB = doc()
DB = doc("prod.web-1.db")
LB = doc("prod.lb-1.lb", host="h2", resources={})
PLAN = {"h1": [DB, WEB], "h2": [LB], "h3": []}
PLACEMENT = {"web-1": "h1", "lb-1": "h2"}


def run(views, plan=None, **kwargs):
    return st.status("prod", PLAN if plan is None else plan, {v.name: v for v in views}, placement=PLACEMENT, **kwargs)


def test_everything_running_as_planned_is_ok():
    result = run([view("h1", seen(WEB), seen(DB)), view("h2", seen(LB, "h2")), view("h3")])
    assert result["ok"] and result["problems"] == []
    assert [e["verdict"] for e in result["containers"]] == ["ok"] * 3
    assert result["counts"] == dict({v: 0 for v in st.VERDICTS}, ok=3)
    web = one(result, WEB["name"])
    assert web["expected_host"] == "h1" and web["key"] == "web-1" and web["instance"] == "web-1"
    assert web["found"] == [{"host": "h1", "name": WEB["name"], "id": "id-h1-prod.web-1.web", "state": "running",
                             "status": "Up 3 minutes", "health": None, "restart_count": None, "started_at": None,
                             "image": "local/busybox:1", "image_id": IMG, "config_hash_matches": True}]
    assert result["instances"] == {"lb-1": {"deploy": "lb", "verdict": "ok", "hosts": ["h2"], "containers": ["prod.lb-1.lb"]},
                                   "web-1": {"deploy": "web", "verdict": "ok", "hosts": ["h1"],
                                             "containers": ["prod.web-1.db", "prod.web-1.web"]}}
    assert result["summary"] == "prod: 3 containers on 3 hosts: 3 ok"


def test_host_facts_reserved_capacity_ours_and_foreign():
    result = run([view("h1", seen(WEB), seen(DB), foreign=4), view("h2", seen(LB, "h2")), view("h3")],
                 capacities={"h1": {"cpus": 0.75, "memory_mb": 4096}, "h2": {}})
    h1 = result["hosts"]["h1"]
    assert h1["reachable"] and h1["engine_version"] == "20.10.24" and h1["ours"] == 2 and h1["foreign"] == 4
    assert h1["planned"] == 2 and h1["reserved"] == {"cpus": 1.0, "memory_mb": 128}
    assert h1["capacity"] == {"cpus": 0.75, "memory_mb": 4096} and h1["over_capacity"] is True
    assert result["hosts"]["h2"]["capacity"] is None and result["hosts"]["h2"]["reserved"] == {"cpus": 0.0, "memory_mb": 0}
    assert result["hosts"]["h3"]["planned"] == 0 and result["hosts"]["h1"]["verdicts"] == {"ok": 2}


@pytest.mark.parametrize("state, status", [("exited", "Exited (137) 2 seconds ago"), ("created", "Created"),
                                           ("paused", "Up 1 minute (Paused)"), ("dead", "Dead")])
def test_a_container_that_does_not_run_is_stopped(state, status):
    result = run([view("h1", seen(WEB, state=state, status=status), seen(DB)), view("h2", seen(LB, "h2")), view("h3")])
    web = one(result, WEB["name"])
    assert web["verdict"] == "stopped" and state in web["reason"]
    assert result["instances"]["web-1"]["verdict"] == "stopped" and not result["ok"]
    assert result["problems"] == ["prod.web-1.web: stopped (%s)" % web["reason"]]


@pytest.mark.parametrize("state, status, health", [("restarting", "Restarting (1) 2 seconds ago", None),
                                                   ("running", "Up 2 minutes (unhealthy)", None),
                                                   ("running", "Up 2 minutes", "unhealthy")])
def test_restarting_or_failing_its_health_check_is_unhealthy(state, status, health):
    result = run([view("h1", seen(WEB, state=state, status=status, health=health), seen(DB)), view("h2", seen(LB, "h2")), view("h3")])
    assert one(result, WEB["name"])["verdict"] == "unhealthy"


def test_health_and_restarts_are_reported_on_an_ok_container():
    result = run([view("h1", seen(WEB, status="Up 1 minute (healthy)", restart_count=3, started_at="2026-12-02T16:00:00Z"), seen(DB)),
                  view("h2", seen(LB, "h2")), view("h3")])
    web = one(result, WEB["name"])
    assert web["verdict"] == "ok" and "restarted 3 times" in web["reason"]
    assert web["found"][0]["health"] == "healthy" and web["found"][0]["restart_count"] == 3
    assert web["found"][0]["started_at"] == "2026-12-02T16:00:00Z"


def test_no_container_is_missing():
    result = run([view("h1", seen(DB)), view("h2", seen(LB, "h2")), view("h3")])
    web = one(result, WEB["name"])
    assert web["verdict"] == "missing" and web["found"] == [] and web["reason"] == "no container on h1"


def test_a_copy_only_on_another_host_is_missing_here_and_named():
    result = run([view("h1", seen(DB)), view("h2", seen(LB, "h2")), view("h3", seen(WEB, "h3"))])
    web = one(result, WEB["name"])
    assert web["verdict"] == "missing" and "a copy is on h3" in web["reason"]
    assert [f["host"] for f in web["found"]] == ["h3"]
    assert result["counts"]["orphan"] == 0  # its instance is planned: it is not an orphan


def test_a_second_copy_on_another_host_is_a_duplicate():
    result = run([view("h1", seen(WEB), seen(DB)), view("h2", seen(LB, "h2"), seen(WEB, "h2", name="by-hand")), view("h3")])
    web = one(result, WEB["name"])
    assert web["verdict"] == "duplicate" and "by-hand on h2" in web["reason"]
    assert [(f["host"], f["name"]) for f in web["found"]] == [("h1", WEB["name"]), ("h2", "by-hand")]  # the expected one first
    assert result["counts"]["duplicate"] == 1 and result["counts"]["orphan"] == 0


def test_a_second_copy_on_the_same_host_under_another_name_is_a_duplicate():
    result = run([view("h1", seen(WEB), seen(DB), seen(WEB, name="web-copy")), view("h2", seen(LB, "h2")), view("h3")])
    assert one(result, WEB["name"])["verdict"] == "duplicate"


@pytest.mark.parametrize("labels, why", [
    (lambda d: dict(cv.container_labels(d), **{LABEL_CONFIG_HASH: "0" * 64}), "configuration changed"),
    (lambda d: {k: v for k, v in cv.container_labels(d).items() if k != LABEL_CONFIG_HASH}, "no io.stackfleet.config-hash label"),
    (lambda d: dict(cv.container_labels(d), team="b"), "labels differ from the plan's: team"),
])
def test_a_container_changed_by_hand_is_drifted(labels, why):
    result = run([view("h1", seen(WEB, labels=labels(WEB)), seen(DB)), view("h2", seen(LB, "h2")), view("h3")])
    web = one(result, WEB["name"])
    assert web["verdict"] == "drifted" and why in web["reason"]


def test_drift_names_the_fields_when_the_container_was_inspected():
    real = dict(WEB, env={"MODE": "b"})  # recreated by hand with another env: the hash label says so too
    result = run([view("h1", seen(WEB, labels=cv.container_labels(real), config=real), seen(DB)), view("h2", seen(LB, "h2")), view("h3")])
    web = one(result, WEB["name"])
    assert web["verdict"] == "drifted" and web["reason"] == "configuration changed: env.MODE: changed"
    assert web["found"][0]["config_hash_matches"] is False


def test_a_limit_changed_in_place_is_drifted_when_inspected():
    real = dict(WEB, resources={"cpus": 0.5, "memory_mb": 128})  # docker update --memory 128m
    result = run([view("h1", seen(WEB, config=real), seen(DB)), view("h2", seen(LB, "h2")), view("h3")])
    web = one(result, WEB["name"])
    assert web["verdict"] == "drifted" and web["reason"] == "changed in place: resources.memory_mb: 128 → 64"  # container → plan
    assert web["found"][0]["config_hash_matches"] is True


def test_an_image_tag_that_moved_is_drifted():
    result = run([view("h1", seen(WEB, image_id=IMG2), seen(DB)), view("h2", seen(LB, "h2")), view("h3")])
    assert "now points to" in one(result, WEB["name"])["reason"]


def test_the_01_hash_is_accepted():
    legacy = dict(cv.container_labels(WEB), **{LABEL_CONFIG_HASH: config_hash(WEB, legacy=True)})
    result = run([view("h1", seen(WEB, labels=legacy), seen(DB)), view("h2", seen(LB, "h2")), view("h3")])
    assert one(result, WEB["name"])["verdict"] == "ok"


def test_secret_references_hash_with_the_secrets_and_are_unknown_without():
    web = doc(env={"PASSWORD": {"secret": "pw"}})
    plan = {"h1": [web], "h2": [], "h3": []}
    container = seen(web, secrets={"pw": "one"})
    with_secret = run([view("h1", container), view("h2"), view("h3")], plan=plan, secrets={"pw": "one"})
    assert one(with_secret, web["name"])["verdict"] == "ok"
    rotated = run([view("h1", container), view("h2"), view("h3")], plan=plan, secrets={"pw": "two"})
    assert one(rotated, web["name"])["verdict"] == "drifted"
    unknown = run([view("h1", container), view("h2"), view("h3")], plan=plan)
    entry = one(unknown, web["name"])
    assert entry["verdict"] == "ok" and entry["found"][0]["config_hash_matches"] is None and "secrets not given" in entry["reason"]


def test_ours_not_in_the_plan_is_an_orphan_and_foreign_is_not_judged():
    old = doc("prod.web-2.web")
    other_cluster = dict(seen(doc("other.x-1.x", cluster="other")).observed.labels)
    result = run([view("h1", seen(WEB), seen(DB), seen(old)), view("h2", seen(LB, "h2")),
                  view("h3", st.Seen("h3", cv.Observed("id-x", "other.x-1.x", "i", IMG, "running", "Up", other_cluster)))])
    orphans = [e for e in result["containers"] if e["verdict"] == "orphan"]
    assert [(e["name"], e["found"][0]["host"], e["expected_host"]) for e in orphans] == [("prod.web-2.web", "h1", None)]
    assert result["instances"].keys() == {"web-1", "lb-1"}
    assert result["hosts"]["h1"]["verdicts"] == {"ok": 2, "orphan": 1} and result["hosts"]["h3"]["ours"] == 0


def test_a_leftover_temporary_container_is_an_orphan_not_a_duplicate():
    result = run([view("h1", seen(WEB), seen(DB), seen(WEB, name=cv.temp_name(WEB["name"]))), view("h2", seen(LB, "h2")), view("h3")])
    assert one(result, WEB["name"])["verdict"] == "ok"
    [orphan] = [e for e in result["containers"] if e["verdict"] == "orphan"]
    assert orphan["name"] == "prod.web-1.web.sf-next" and "interrupted replacement" in orphan["reason"]


def test_instances_on_a_down_host_are_host_down_even_with_a_copy_elsewhere():
    result = run([view("h1", reachable=False, error="cannot reach the Docker engine"), view("h2", seen(LB, "h2"), seen(WEB, "h2")),
                  view("h3")])
    assert one(result, WEB["name"])["verdict"] == "host-down" and one(result, DB["name"])["verdict"] == "host-down"
    assert "a copy runs on h2" in one(result, WEB["name"])["reason"]
    assert result["hosts"]["h1"] == {
        "reachable": False, "engine_version": None, "error": "cannot reach the Docker engine", "seconds": None, "ours": None,
        "foreign": None, "planned": 2, "reserved": {"cpus": 1.0, "memory_mb": 128}, "capacity": None, "over_capacity": False,
        "verdicts": {"host-down": 2}}
    assert result["summary"] == "prod: 3 containers on 3 hosts (1 down: h1): 1 ok, 2 host-down"


def test_a_planned_host_without_an_engine_is_down():
    result = st.status("prod", PLAN, {"h2": view("h2", seen(LB, "h2"))})
    assert one(result, WEB["name"])["verdict"] == "host-down" and result["hosts"]["h3"]["error"] == "no engine connection given"


def test_split_stack_placement_keys():
    result = st.status("prod", {"h1": [WEB]}, {"h1": view("h1", seen(WEB))}, placement={"web-1.web": "h1"})
    assert one(result, WEB["name"])["key"] == "web-1.web"


def test_host_verdicts_are_that_hosts_own():
    result = run([view("h1", seen(DB), seen(doc("prod.web-9.web"))), view("h2", seen(LB, "h2")), view("h3")])
    judged = st.verdicts_by_host(result["containers"])
    assert judged["h1"] == {"missing": ["prod.web-1.web"], "ok": ["prod.web-1.db"], "orphan": ["prod.web-9.web"]}
    assert judged["h2"] == {"ok": ["prod.lb-1.lb"]} and judged.get("h3", {}) == {}


def test_the_table_reads_like_docker_stack_ps():
    result = run([view("h1", seen(DB), seen(WEB, status="Up 2 minutes (healthy)", restart_count=2)),
                  view("h2", seen(LB, "h2"), seen(WEB, "h2", name="x"), seen(doc("prod.web-9.web"), "h2", state="exited")),
                  view("h3", reachable=False, error="connection refused")], plan=dict(PLAN, h3=[doc("prod.web-3.web", host="h3")]))
    assert result["table"] == [
        "INSTANCE  SERVICE  HOST    STATE              VERDICT    NOTE",
        "lb-1      lb       h2      running            ok",
        "web-1     db       h1      running            ok",
        "web-1     web      h1 +h2  running (healthy)  DUPLICATE  2 containers of this instance: prod.web-1.web on h1 (running), x on h2 (running)",
        "web-3     web      h3      -                  HOST-DOWN  host h3 is not reachable (connection refused)",
        "web-9     web      h2      exited             ORPHAN     not in the plan (exited on h2)",
        "prod: 5 containers on 3 hosts (1 down: h3): 2 ok, 1 orphan, 1 duplicate, 1 host-down",
    ]


# -- properties ------------------------------------------------------------------------------

HOSTS = ("h1", "h2", "h3")
instances = hs.from_regex(r"[a-z]{1,4}-[1-9]", fullmatch=True)
services = hs.sampled_from(["web", "db"])
STATES = ("running", "exited", "restarting", "paused", "created")


@hs.composite
def worlds(draw):
    """A plan over three hosts, and what the engines hold: planned containers (some moved, stopped,
    duplicated, edited) plus containers of instances the plan does not have; some hosts down."""
    names = draw(hs.lists(hs.tuples(instances, services), max_size=8, unique=True))
    plan = {h: [] for h in HOSTS}
    for instance, service in names:
        plan[draw(hs.sampled_from(HOSTS))].append(doc("prod.%s.%s" % (instance, service), env={"MODE": draw(hs.sampled_from("ab"))}))
    held = {h: [] for h in HOSTS}
    for host, docs in plan.items():
        for d in docs:
            for where in draw(hs.lists(hs.sampled_from(HOSTS), max_size=2, unique=True)):
                edited = dict(d, env={"MODE": draw(hs.sampled_from("ab"))})
                held[where].append(seen(edited, where, state=draw(hs.sampled_from(STATES)), name=d["name"] if where != host or not
                                        any(s.observed.name == d["name"] for s in held[where]) else d["name"] + "-2"))
    extra = draw(hs.lists(hs.tuples(instances, services, hs.sampled_from(HOSTS)), max_size=4, unique=True))
    planned = {d["name"] for docs in plan.values() for d in docs}
    for instance, service, where in extra:
        d = doc("prod.%s.%s" % (instance, service))
        if d["name"] not in planned and not any(s.observed.name == d["name"] for s in held[where]):
            held[where].append(seen(d, where))
    down = draw(hs.sets(hs.sampled_from(HOSTS), max_size=2))
    views = {h: view(h, *held[h], reachable=h not in down, error="down" if h in down else None) for h in HOSTS}
    return plan, views


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_every_planned_container_has_exactly_one_verdict_and_orphans_are_ours_not_in_plan(world):
    plan, views = world
    result = st.status("prod", plan, views)
    planned = sorted(d["name"] for docs in plan.values() for d in docs)
    judged = sorted(e["name"] for e in result["containers"] if e["verdict"] != "orphan")
    assert judged == planned
    orphans = sorted((e["found"][0]["host"], e["found"][0]["id"]) for e in result["containers"] if e["verdict"] == "orphan")
    expected = sorted((h, s.observed.id) for h, v in views.items() if v.reachable for s in v.containers if s.identity not in planned)
    assert orphans == expected
    assert sum(result["counts"].values()) == len(result["containers"])
    assert result["ok"] == (set(e["verdict"] for e in result["containers"]) <= {"ok"})
    for entry in result["containers"]:
        assert entry["verdict"] in st.VERDICTS
        if entry["verdict"] != "orphan" and not views[entry["expected_host"]].reachable:
            assert entry["verdict"] == "host-down"


@settings(max_examples=200, deadline=None)
@given(hs.lists(hs.tuples(instances, services, hs.sampled_from(HOSTS)), max_size=8, unique_by=lambda x: x[:2]))
def test_a_plan_converged_exactly_is_all_ok(units):
    plan = {h: [] for h in HOSTS}
    for instance, service, host in units:
        plan[host].append(doc("prod.%s.%s" % (instance, service), host=host))
    views = {h: view(h, *(seen(d, h) for d in plan[h])) for h in HOSTS}
    result = st.status("prod", plan, views)
    assert result["ok"] and result["counts"]["ok"] == len(units)


@hs.composite
def one_host(draw):
    """Documents of one host and what its engine holds: each container possibly edited (env, a label, the hash
    label, its limit), in any state, on another image, or absent."""
    names = draw(hs.lists(hs.tuples(instances, services), min_size=1, max_size=5, unique=True))
    docs = [doc("prod.%s.%s" % (i, s)) for i, s in names]
    held = []
    for d in docs:
        if draw(hs.booleans()) and draw(hs.booleans()):
            continue  # absent
        edit = draw(hs.sampled_from(["none", "env", "label", "hash", "limit", "image"]))
        real = dict(d, env={"MODE": "b"}) if edit == "env" else d
        labels = cv.container_labels(real)
        if edit == "label":
            labels = dict(labels, team="z")
        if edit == "hash":
            labels = {k: v for k, v in labels.items() if k != LABEL_CONFIG_HASH}
        config = dict(real, resources={"cpus": 0.5, "memory_mb": 128}) if edit == "limit" else real
        state = draw(hs.sampled_from(("running", "exited", "restarting", "paused", "created", "dead")))
        held.append(seen(d, labels=labels, state=state, image_id=IMG2 if edit == "image" else IMG, config=config,
                         status=draw(hs.sampled_from(["Up 1 minute", "Up 1 minute (unhealthy)", "Up 1 minute (healthy)"]))))
    return docs, held


@settings(max_examples=300, deadline=None)
@given(one_host())
def test_ok_means_the_next_converge_leaves_the_container_as_it_is(world):
    docs, held = world
    result = st.status("prod", {"h1": docs}, {"h1": view("h1", *held)})
    converge = cv.plan(docs, [s.observed for s in held], {"local/busybox:1": IMG}, configs={s.observed.name: s.config for s in held})
    actions = {a.name: a.action for a in converge.actions}
    for entry in result["containers"]:
        if entry["verdict"] == "ok":
            assert actions[entry["name"]] == cv.UNCHANGED, entry
        if actions.get(entry["name"]) == cv.UNCHANGED:
            assert entry["verdict"] in ("ok", "unhealthy"), entry
