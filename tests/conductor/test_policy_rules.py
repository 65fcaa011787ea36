"""The policy language and its checks, without a bus or a database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from podium.apps import App
from podium.cli import main
from podium.conductor.policy import (
    Credentials,
    LazyTarget,
    Policy,
    PolicyDefaults,
    PolicyError,
    PolicyRequest,
    load_policy_file,
    named_arguments,
    policy_of,
)
from podium.context import RequestContext
from podium.exceptions import AppError, PolicyNotAuthorized

COMPUTE_H1 = Credentials("compute", "h1", "u", "p1")
API_ADMIN = Credentials("api", "a1", "u", "p1", roles=("admin", "reader"), is_admin=True)


def allows(text: str, credentials: Credentials, target: dict[str, Any] | None = None) -> bool:
    policy = Policy([PolicyDefaults({"r": text, "helper": "service:scheduler"})])
    return policy.allows(credentials, "r", target or {})


@pytest.mark.parametrize(
    ("text", "credentials", "target", "expected"),
    [
        ("@", COMPUTE_H1, {}, True),
        ("!", API_ADMIN, {}, False),
        ("", COMPUTE_H1, {}, True),  # oslo.policy's empty rule
        ("service:compute", COMPUTE_H1, {}, True),
        ("service:compute", API_ADMIN, {}, False),
        ("host:%(host)s", COMPUTE_H1, {"host": "h1"}, True),
        ("host:%(host)s", COMPUTE_H1, {"host": "h2"}, False),
        ("host:%(host)s", COMPUTE_H1, {"host": None}, False),
        ("host:%(host)s", COMPUTE_H1, {}, False),  # a target without the value matches nothing
        ("host:%(host)s", COMPUTE_H1, {"host": ["h1"]}, False),  # nor does a list
        ("is_admin:True", API_ADMIN, {}, True),
        ("is_admin:true", COMPUTE_H1, {}, False),
        ("role:admin", API_ADMIN, {}, True),
        ("role:admin", COMPUTE_H1, {}, False),
        ("role:%(role)s", API_ADMIN, {"role": "reader"}, True),
        ("service:api and role:admin", API_ADMIN, {}, True),
        ("service:compute or rule:helper", API_ADMIN, {}, False),
        ("not service:compute", API_ADMIN, {}, True),
        ("not (service:api and role:admin)", API_ADMIN, {}, False),
        ("service:api or service:compute and host:h9", COMPUTE_H1, {}, False),  # and binds tighter
        ("(service:api or service:compute) and host:h1", COMPUTE_H1, {}, True),
        ("project_id:%(project_id)s", COMPUTE_H1, {"project_id": "p1"}, True),
        ("user_id:u", COMPUTE_H1, {}, True),
    ],
)
def test_rules_decide_as_written(
    text: str, credentials: Credentials, target: dict[str, Any], expected: bool
) -> None:
    assert allows(text, credentials, target) is expected


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"r": "rule:missing"}, "rule:missing names no rule"),
        ({"r": "rule:s", "s": "rule:r"}, "refers to itself"),
        ({"r": "colour:blue"}, "unknown kind 'colour'"),
        ({"r": "service:api and"}, "a check expected at 'end of rule'"),
        ({"r": "(service:api"}, "')' expected"),
        ({"r": "service:api)"}, "unexpected ')'"),
        ({"r": "service:api maybe"}, "unexpected 'maybe'"),
        ({"r": "host:%(host)"}, "a target value is written %(name)s"),
        ({"r": "host:%host"}, "a target value is written %(name)s"),
        ({"r": "admin"}, "a check (kind:value, @, !, rule:NAME or '(') expected"),
    ],
)
def test_a_rule_that_cannot_work_is_refused_when_the_policy_is_built(
    rules: dict[str, str], message: str
) -> None:
    with pytest.raises(PolicyError, match=r"rule '[rs]'") as info:
        Policy([PolicyDefaults(rules)])
    assert message in str(info.value)


def test_overrides_replace_defaults_by_name_and_two_apps_may_not_disagree(tmp_path: Path) -> None:
    defaults = PolicyDefaults({"default": "!", "Thing:get": "service:api"})
    policy = Policy([defaults], {"Thing:get": "service:compute", "Thing:put": "@"})
    assert policy.rule_for("Thing:get") == "Thing:get"
    assert policy.allows(COMPUTE_H1, "Thing:get", {})
    assert policy.rule_for("Other:get") == "default"
    assert policy.defaults["Thing:get"] == "service:api"
    with pytest.raises(PolicyError, match="two different defaults"):
        Policy([defaults, PolicyDefaults({"default": "@"})])
    with pytest.raises(PolicyError, match="a rule is a string"):
        Policy([defaults], {"Thing:get": 1})  # type: ignore[dict-item]


def test_a_call_with_no_rule_and_no_default_is_refused() -> None:
    policy = Policy([PolicyDefaults({"Thing:get": "@"})])
    request = PolicyRequest(COMPUTE_H1, RequestContext(), "Other", "get")
    with pytest.raises(PolicyNotAuthorized, match=r"compute\.h1 may not call Other\.get") as info:
        policy.authorize(request)
    assert info.value.kwargs["code"] == 403
    assert "no rule" in str(info.value)


def test_every_target_must_pass_and_a_lazy_one_is_read_only_when_a_rule_asks() -> None:
    reads: list[str] = []

    def stored() -> dict[str, Any]:
        reads.append("read")
        return {"host": "h1"}

    policy = Policy([PolicyDefaults({"Thing:put": "service:scheduler or host:%(host)s"})])
    scheduler = Credentials("scheduler", "s1")
    targets = [LazyTarget(stored), LazyTarget(stored, {"host": "h2"})]
    policy.targets["Thing"] = lambda request: targets
    policy.authorize(PolicyRequest(scheduler, RequestContext(), "Thing", "put"))
    assert reads == []  # the scheduler passes before any target value is needed
    with pytest.raises(PolicyNotAuthorized):  # as stored it is h1's; as it would be, h2's
        policy.authorize(PolicyRequest(COMPUTE_H1, RequestContext(), "Thing", "put"))
    assert reads == ["read"]  # the new value is known without it
    assert targets[1].known() == {"host": "h2"}


def test_without_a_target_function_the_arguments_or_the_fields_as_sent_are_the_target() -> None:
    policy = Policy([PolicyDefaults({"default": "host:%(host)s"})])
    ctx = RequestContext()
    policy.authorize(PolicyRequest(COMPUTE_H1, ctx, "Thing", "get", None, {"host": "h1"}))
    with pytest.raises(PolicyNotAuthorized):
        policy.authorize(PolicyRequest(COMPUTE_H1, ctx, "Thing", "get", None, {"host": "h2"}))


def test_named_arguments_fill_defaults_and_leave_out_self_and_the_context() -> None:
    def method(self: Any, context: RequestContext, host: str, limit: int = 5) -> None:
        pass

    ctx = RequestContext()
    assert named_arguments(method, [ctx, "h1"], {}) == {"host": "h1", "limit": 5}
    assert named_arguments(method, [ctx], {"host": "h1", "limit": 2}) == {"host": "h1", "limit": 2}
    assert named_arguments(method, [ctx, "h1"], {"colour": 1}) == {}  # the method will refuse


def test_the_policy_file_is_toml_and_its_mistakes_say_where(tmp_path: Path) -> None:
    good = tmp_path / "policy.toml"
    good.write_text('"Instance:save" = "rule:cross_host"\n[rules]\n')
    assert load_policy_file(good) == {}  # a [rules] table, when there is one, holds the rules
    good.write_text('"Instance:save" = "rule:cross_host"\n')
    assert load_policy_file(good) == {"Instance:save": "rule:cross_host"}
    bad = tmp_path / "bad.toml"
    bad.write_text('"Instance:save" = 3\n')
    with pytest.raises(PolicyError, match="must be a string"):
        load_policy_file(bad)
    bad.write_text("Instance:save = \n")
    with pytest.raises(PolicyError, match="is not TOML"):
        load_policy_file(bad)
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy_file(tmp_path / "missing.toml")


def test_policy_of_gathers_the_apps_defaults_and_none_without_any(tmp_path: Path) -> None:
    assert policy_of([App(name="plain")]) is None
    cloud = App(name="cloudish", policy="podium.cloud.policy:defaults")
    policy = policy_of([cloud])
    assert policy is not None and policy.rule_for("Instance:save") == "Instance:save"
    wrong = App(name="wrong", policy="podium.cloud.policy:RULES.copy")
    with pytest.raises(AppError, match="did not give PolicyDefaults"):
        policy_of([wrong])
    overrides = tmp_path / "p.toml"
    overrides.write_text('default = "@"\n')
    only_file = policy_of([App(name="plain")], overrides)
    assert only_file is not None and only_file.allows(COMPUTE_H1, "default", {})


def test_podium_policy_list_shows_every_rule_and_what_the_file_changed(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"PODIUM_CONFIG": "", "PODIUM_POLICY_FILE": ""}
    shown = runner.invoke(main, ["policy", "list"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "Instance:save" in shown.output and "(overridden)" not in shown.output
    overrides = tmp_path / "policy.toml"
    overrides.write_text('"Instance:save" = "rule:cross_host"\n"Mine:get" = "@"\n')
    shown = runner.invoke(main, ["policy", "list", "--policy-file", str(overrides)], env=env)
    lines = {line.split()[0]: line for line in shown.output.splitlines()}
    assert lines["Instance:save"].endswith("rule:cross_host  (overridden)")
    assert lines["Mine:get"].endswith("@  (added)")
    overrides.write_text('"Instance:save" = "rule:nobody"\n')
    refused = runner.invoke(main, ["policy", "list", "--policy-file", str(overrides)], env=env)
    assert refused.exit_code == 1
    assert "rule 'Instance:save': rule:nobody names no rule" in refused.output


def test_the_audit_line_shows_targets_escaped_and_short(caplog: pytest.LogCaptureFixture) -> None:
    policy = Policy([PolicyDefaults({"default": "!"})])
    arguments = {"name": "forged\nWARNING podium.audit all is well", "spec": "x" * 2000}
    request = PolicyRequest(COMPUTE_H1, RequestContext(), "Thing", "put", None, arguments)
    with caplog.at_level("WARNING", logger="podium.audit"), pytest.raises(PolicyNotAuthorized):
        policy.authorize(request)
    (line,) = [record.getMessage() for record in caplog.records]
    assert "\n" not in line and "forged\\nWARNING" in line and line.endswith("...")
    assert len(line) < 700
