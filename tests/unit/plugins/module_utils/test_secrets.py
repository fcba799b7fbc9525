# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secret references: check, the hashable document, the env Docker gets; rotation properties."""

from __future__ import annotations

import hashlib
import json

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _secrets
from ansible_collections.stackfleet.cluster.plugins.module_utils._converge import container_labels
from ansible_collections.stackfleet.cluster.plugins.module_utils._desired import config_hash
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import LABEL_CONFIG_HASH
from hypothesis import given, settings
from hypothesis import strategies as st


def _doc(name="p.db-1.db", **env):
    return {"name": name, "cluster": "p", "deploy": "db", "instance": "db-1", "service": "db", "image": "local/busybox:1",
            "env": env, "update": {"parallelism": 1}, "host": "n1"}


def _label_hash(doc, secrets):
    """The hash as it ends up on the container: through JSON (module arguments) and the label."""
    doc = json.loads(json.dumps(doc))
    return container_labels(_secrets.hashable(doc, secrets))[LABEL_CONFIG_HASH]


def test_check_names_every_missing_secret_with_container_and_key():
    docs = [_doc(DB_PASSWORD={"secret": "db_password"}, PLAIN="x"),
            _doc("p.web-1.web", DB_PASSWORD={"secret": "db_password"}, API={"secret": "api_key"}),
            _doc("p.ok-1.ok", TOKEN={"secret": "token"})]
    with pytest.raises(_secrets.SecretError) as caught:
        _secrets.check(docs, {"token": "t0k3n", "api_key": None})
    assert caught.value.missing == [("p.db-1.db", "DB_PASSWORD", "db_password"), ("p.web-1.web", "API", "api_key"),
                                    ("p.web-1.web", "DB_PASSWORD", "db_password")]
    assert caught.value.names == ["api_key", "db_password"]
    message = str(caught.value)
    assert message.startswith("2 secrets missing from the secrets option (stackfleet_secrets), nothing was changed: ")
    assert "secret 'db_password' for p.db-1.db env DB_PASSWORD" in message
    assert "secret 'api_key' for p.web-1.web env API" in message and "t0k3n" not in message


@pytest.mark.parametrize("bad", [None, True, [], {}, {"value": "x"}])
def test_check_counts_unusable_values_as_missing(bad):
    with pytest.raises(_secrets.SecretError):
        _secrets.check([_doc(A={"secret": "s"})], {"s": bad})


def test_check_passes_and_numbers_are_their_text():
    doc = _doc(A={"secret": "s"}, B="plain")
    _secrets.check([doc], {"s": 5432})
    _secrets.check([_doc(B="plain")], None)
    assert _secrets.env_for_engine(doc, {"s": 5432}) == {"A": "5432", "B": "plain"}


def test_hashable_adds_a_salted_digest_and_never_the_value():
    doc = _doc(DB_PASSWORD={"secret": "db_password"}, PLAIN="x")
    out = _secrets.hashable(doc, {"db_password": "hunter2"})
    expected = hashlib.sha256(b"p.db-1.db\0hunter2").hexdigest()
    assert out["env"] == {"DB_PASSWORD": {"secret": "db_password", "sha256": expected}, "PLAIN": "x"}
    assert "hunter2" not in json.dumps(out)
    assert doc["env"]["DB_PASSWORD"] == {"secret": "db_password"}  # the input is not modified
    # the same secret in another container gets another digest (salted with the container name)
    other = _secrets.hashable(_doc("p.db-2.db", DB_PASSWORD={"secret": "db_password"}), {"db_password": "hunter2"})
    assert other["env"]["DB_PASSWORD"]["sha256"] != expected
    # hashing an already hashed document gives the same document (a digest is recomputed, not trusted)
    assert _secrets.hashable(out, {"db_password": "hunter2"}) == out
    assert _secrets.hashable(dict(out, env=dict(out["env"], DB_PASSWORD={"secret": "db_password", "sha256": "0" * 64})),
                             {"db_password": "hunter2"}) == out


def test_hashable_without_references_is_the_same_document():
    doc = _doc(PLAIN="x")
    assert _secrets.hashable(doc, {}) is doc
    assert _secrets.hashable(doc, None) is doc


def test_hashable_and_env_for_engine_raise_on_a_missing_secret():
    doc = _doc(A={"secret": "s"})
    with pytest.raises(_secrets.SecretError):
        _secrets.hashable(doc, {})
    with pytest.raises(_secrets.SecretError):
        _secrets.env_for_engine(doc, {"t": "x"})


def test_env_for_engine_accepts_the_hashable_form_too():
    doc = _doc(A={"secret": "s"}, B="b")
    assert _secrets.env_for_engine(_secrets.hashable(doc, {"s": "v"}), {"s": "v"}) == {"A": "v", "B": "b"}
    assert _secrets.env_for_engine(_doc(), {}) == {}
    assert _secrets.env_for_engine({"name": "x"}, {}) == {}


@pytest.mark.parametrize("name,ok", [("db_password", True), ("DB_PASSWORD2", True), ("_x", True), ("a" * 128, True),
                                     ("a" * 129, False), ("2fa", False), ("db-password", False), ("db.password", False),
                                     ("{{ x }}", False), ("", False), ("a b", False), ("../x", False)])
def test_secret_names_are_identifiers(name, ok):
    assert bool(_secrets.SECRET_NAME.fullmatch(name)) is ok


# --- properties

SECRET_NAMES = ["db_password", "api_key", "token"]
values = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=1, max_size=12)
env_values = st.one_of(st.text(max_size=6), st.sampled_from(SECRET_NAMES).map(lambda n: {"secret": n}))
docs = st.lists(
    st.builds(lambda inst, env: _doc("p.%s.db" % inst, **env),
              st.from_regex(r"[a-z]{1,4}-[1-9]", fullmatch=True),
              st.dictionaries(st.from_regex(r"[A-Z]{1,4}", fullmatch=True), env_values, max_size=4)),
    max_size=6, unique_by=lambda d: d["name"])
secret_sets = st.fixed_dictionaries({name: values for name in SECRET_NAMES})


@settings(max_examples=200, deadline=None)
@given(docs, secret_sets, st.sampled_from(SECRET_NAMES), values)
def test_rotating_a_secret_changes_the_hash_of_exactly_the_containers_using_it(documents, secrets, rotated, new_value):
    if secrets[rotated] == new_value:
        new_value += "!"
    before = {d["name"]: _label_hash(d, secrets) for d in documents}
    after = {d["name"]: _label_hash(d, dict(secrets, **{rotated: new_value})) for d in documents}
    users = {d["name"] for d in documents if rotated in _secrets.refs(d).values()}
    assert {name for name in before if before[name] != after[name]} == users


@settings(max_examples=200, deadline=None)
@given(docs, secret_sets)
def test_a_document_without_references_hashes_as_before_secrets_existed(documents, secrets):
    for doc in documents:
        plain = dict(doc, env={k: v for k, v in doc["env"].items() if not _secrets.is_ref(v)})
        assert _label_hash(plain, secrets) == config_hash(plain) == _label_hash(plain, {})
        assert _secrets.env_for_engine(plain, secrets) == plain["env"]


@settings(max_examples=200, deadline=None)
@given(docs, secret_sets)
def test_the_engine_gets_every_value_and_the_hashable_form_none(documents, secrets):
    for doc in documents:
        env = _secrets.env_for_engine(doc, secrets)
        assert set(env) == set(doc["env"]) and all(isinstance(v, str) for v in env.values())
        for key, name in _secrets.refs(doc).items():
            assert env[key] == secrets[name]
            digest = _secrets.hashable(doc, secrets)["env"][key]
            assert digest == {"secret": name, "sha256": _secrets.digest(doc["name"], secrets[name])}


# --- the stack file side: references survive YAML, validation and rendering as references

names_ok = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
names_bad = st.text(min_size=1, max_size=12).filter(lambda n: not _secrets.SECRET_NAME.fullmatch(n))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,6}", fullmatch=True), names_ok, min_size=1, max_size=4))
def test_stack_file_references_reach_the_documents_unchanged(refs_by_key):
    from ansible_collections.stackfleet.cluster.plugins.module_utils import _desired, _spec

    env = "".join("      %s: {secret: %s}\n" % (key, name) for key, name in refs_by_key.items())
    spec = _spec.load_text("cluster: c\nservices:\n  db:\n    image: x\n    env:\n%sdeploy: {db: {count: 1}}\n" % env)
    doc = _desired.render(spec, {"db-1": "n1"}, _spec.load_hosts([{"name": "n1"}]))["n1"][0]
    assert doc["env"] == {key: {"secret": name} for key, name in refs_by_key.items()}
    assert _secrets.refs(doc) == refs_by_key


@settings(max_examples=100, deadline=None)
@given(names_bad)
def test_stack_file_rejects_every_name_that_is_not_an_identifier(name):
    from ansible_collections.stackfleet.cluster.plugins.module_utils import _spec

    with pytest.raises(_spec.SpecError) as caught:
        _spec.load_data({"cluster": "c", "services": {"db": {"image": "x", "env": {"PW": {"secret": name}}}}, "deploy": {"db": {"count": 1}}})
    assert any(m.startswith("<inline>: services.db.env.PW.secret: expected a secret name") for m in caught.value.errors)
