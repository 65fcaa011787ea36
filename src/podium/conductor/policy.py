"""Who may ask the conductor for what: rules checked between dispatch and the object method.

Signing (:mod:`podium.rpc`) proves which service process sent a request;
the policy decides what that sender may do with it. Each object call is
checked against the rule named ``"<ObjectName>:<method>"`` (else the rule
``default``), with the *credentials* of the request (the signed sender's
``service`` and ``host``, and the context's ``user_id``, ``project_id``,
``roles`` and ``is_admin``) and one or more *targets* (what the call acts
on: an instance's stored ``host`` and ``project_id``, say).

Rules are a small language, oslo.policy's::

    "rule:cross_host or (service:compute and host:%(host)s)"

``kind:value`` compares a credential with a literal or with a target value
(``%(name)s``); ``role:NAME`` asks whether the context has the role;
``rule:NAME`` uses another rule; ``@`` always passes, ``!`` never; ``and``,
``or``, ``not`` and parentheses combine them. An application gives its
defaults in code (:class:`PolicyDefaults`); an operator overrides any rule
by name in a TOML file (``policy_file``).

Only signed requests are checked: a request accepted unsigned (signatures
not required, or not checked at all, as in the all-in-one) has no sender to
check, and runs as it always did.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podium.apps import App, resolve
from podium.config import ConfigError
from podium.context import RequestContext
from podium.exceptions import AppError, PolicyNotAuthorized
from podium.rpc import Sender, current_sender

__all__ = [
    "CREDENTIAL_KINDS",
    "Credentials",
    "LazyTarget",
    "Policy",
    "PolicyDefaults",
    "PolicyError",
    "PolicyRequest",
    "load_policy_file",
    "named_arguments",
    "policy_of",
]

#: Refusals go to their own logger, for operators to route apart.
AUDIT = logging.getLogger("podium.audit")

#: The longest an audit line shows a refused call's targets.
_MAX_SHOWN = 400

#: What a ``kind:value`` check may compare (``role`` asks for membership).
CREDENTIAL_KINDS = ("service", "host", "user_id", "project_id", "is_admin", "role")


class PolicyError(ConfigError):
    """A rule that does not parse, names an unknown rule or kind, or refers to itself."""


@dataclass(frozen=True)
class Credentials:
    """Who asks: the signed sender (never the context's say) and the context it sent."""

    service: str
    host: str
    user_id: str | None = None
    project_id: str | None = None
    roles: tuple[str, ...] = ()
    is_admin: bool = False

    @classmethod
    def of(cls, sender: Sender, context: RequestContext) -> Credentials:
        return cls(
            service=sender.service,
            host=sender.host,
            user_id=context.user_id,
            project_id=context.project_id,
            roles=tuple(context.roles),
            is_admin=context.is_admin,
        )

    def __str__(self) -> str:
        return f"{self.service}.{self.host}"


@dataclass(frozen=True)
class PolicyRequest:
    """One object call to decide on.

    ``obj``: the object of an object method, as sent (None for a class
    method). ``arguments``: the call's arguments by name (the context left out).
    """

    credentials: Credentials
    context: RequestContext
    object_name: str
    method: str
    obj: Any = None
    arguments: Mapping[str, Any] = field(default_factory=dict)

    @property
    def action(self) -> str:
        return f"{self.object_name}:{self.method}"


#: Builds the targets of a request: the rule must hold for every one (an
#: update's row as stored, and as it will be).
TargetFunction = Callable[[PolicyRequest], Sequence[Mapping[str, Any]]]


class LazyTarget(Mapping[str, Any]):
    """A target read only if a rule asks for one of its values, at most once.

    ``load()`` gives the stored values (a database read); ``overrides`` are
    known without it and win over them (an update's new values). Several
    targets may share one ``load`` (wrap it in :func:`functools.cache`).
    """

    def __init__(
        self, load: Callable[[], Mapping[str, Any]], overrides: Mapping[str, Any] | None = None
    ) -> None:
        self._load = load
        self._overrides = dict(overrides or {})
        self._loaded: Mapping[str, Any] | None = None

    def _values(self) -> Mapping[str, Any]:
        if self._loaded is None:
            self._loaded = {**self._load(), **self._overrides}
        return self._loaded

    def __getitem__(self, key: str) -> Any:
        if key in self._overrides:
            return self._overrides[key]
        return self._values()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())

    def known(self) -> dict[str, Any]:
        """What has been read so far (for a log line: it never loads)."""
        return dict(self._loaded if self._loaded is not None else self._overrides)


# -- the rule language -------------------------------------------------------------

Check = Callable[[Credentials, Mapping[str, Any]], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<open>\() | (?P<close>\)) |
        (?P<check>[A-Za-z_][\w.]*:(?:%\([^()\s]*\)[a-z]?|[^\s()])+) |
        (?P<word>[@!]|[A-Za-z_]+) |
        (?P<bad>\S)
    )""",
    re.VERBOSE,
)
_TARGET_VALUE = re.compile(r"%\(([^()\s]+)\)s")


def _always(_creds: Credentials, _target: Mapping[str, Any]) -> bool:
    return True


def _never(_creds: Credentials, _target: Mapping[str, Any]) -> bool:
    return False


def _value_check(kind: str, value: str) -> Check:
    reference = _TARGET_VALUE.fullmatch(value)
    if reference is None and "%" in value:
        raise PolicyError(f"{kind}:{value}: a target value is written %(name)s")

    def wanted(target: Mapping[str, Any]) -> Any:
        if reference is None:
            return value
        return target.get(reference.group(1))

    if kind == "role":
        return lambda creds, target: wanted(target) in creds.roles
    if kind not in CREDENTIAL_KINDS:
        raise PolicyError(f"unknown kind {kind!r} in {kind}:{value}; kinds: {CREDENTIAL_KINDS}")

    def check(creds: Credentials, target: Mapping[str, Any]) -> bool:
        have = getattr(creds, kind)
        want = wanted(target)
        if have is None or want is None:
            return False
        if isinstance(have, bool):
            return str(want).lower() == str(have).lower()
        return isinstance(want, str | int) and not isinstance(want, bool) and str(want) == have

    return check


class _Parser:
    """Recursive descent over ``or`` > ``and`` > ``not`` > atoms; ``rule:`` resolved later."""

    def __init__(self, text: str, resolve: Callable[[str], Check]) -> None:
        self.tokens = [(m.lastgroup, m.group(m.lastgroup or 0)) for m in _TOKEN.finditer(text)]
        self.tokens = [(kind, value) for kind, value in self.tokens if kind is not None]
        self.at = 0
        self.text = text
        self.resolve = resolve

    def parse(self) -> Check:
        if not self.tokens:
            return _always  # oslo.policy's reading of an empty rule
        check = self._or()
        if self.at != len(self.tokens):
            raise self._error("unexpected")
        return check

    def _error(self, what: str) -> PolicyError:
        token = self.tokens[self.at][1] if self.at < len(self.tokens) else "end of rule"
        return PolicyError(f"{what} {token!r} in rule {self.text!r}")

    def _peek(self, word: str) -> bool:
        return self.at < len(self.tokens) and self.tokens[self.at] == ("word", word)

    def _or(self) -> Check:
        parts = [self._and()]
        while self._peek("or"):
            self.at += 1
            parts.append(self._and())
        if len(parts) == 1:
            return parts[0]
        return lambda creds, target: any(part(creds, target) for part in parts)

    def _and(self) -> Check:
        parts = [self._not()]
        while self._peek("and"):
            self.at += 1
            parts.append(self._not())
        if len(parts) == 1:
            return parts[0]
        return lambda creds, target: all(part(creds, target) for part in parts)

    def _not(self) -> Check:
        if self._peek("not"):
            self.at += 1
            inner = self._not()
            return lambda creds, target: not inner(creds, target)
        return self._atom()

    def _atom(self) -> Check:
        if self.at >= len(self.tokens):
            raise self._error("a check expected at")
        kind, value = self.tokens[self.at]
        self.at += 1
        if kind == "open":
            inner = self._or()
            if self.at >= len(self.tokens) or self.tokens[self.at][0] != "close":
                raise self._error("')' expected at")
            self.at += 1
            return inner
        if kind == "word" and value in ("@", "!"):
            return _always if value == "@" else _never
        if kind == "check":
            check_kind, _, check_value = value.partition(":")
            if check_kind == "rule":
                return self.resolve(check_value)
            return _value_check(check_kind, check_value)
        self.at -= 1
        raise self._error("a check (kind:value, @, !, rule:NAME or '(') expected, not")


# -- the policy --------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyDefaults:
    """What an application brings: its rules by name and how to find each object's targets.

    ``targets`` maps an object name to a :data:`TargetFunction`. Without one,
    a class method's target is its arguments and an object method's the
    object's fields as sent; a rule that must not trust the sender (an
    instance's ``host``) needs a function that reads the stored row.
    """

    rules: Mapping[str, str]
    targets: Mapping[str, TargetFunction] = field(default_factory=dict)


class Policy:
    """Rules by name, parsed and checked for unknown names and loops when built.

    ``overrides`` (an operator's, from :func:`load_policy_file`) replace
    defaults of the same name or add rules. A call with no rule of its own
    uses ``default``; with no ``default`` rule either, it is refused.
    """

    def __init__(
        self,
        defaults: Iterable[PolicyDefaults] = (),
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.texts: dict[str, str] = {}
        self.targets: dict[str, TargetFunction] = {}
        for part in defaults:
            for name, text in part.rules.items():
                if name in self.texts and self.texts[name] != text:
                    raise PolicyError(f"rule {name!r} is given two different defaults")
                self.texts[name] = text
            self.targets.update(part.targets)
        self.defaults = dict(self.texts)
        for name, text in (overrides or {}).items():
            if not isinstance(name, str) or not isinstance(text, str):
                raise PolicyError(f"rule {name!r}: a rule is a string, not {text!r}")
            self.texts[name] = text
        self._checks: dict[str, Check] = {}
        resolving: list[str] = []

        def resolve(name: str) -> Check:
            if name in self._checks:
                return self._checks[name]
            if name not in self.texts:
                raise PolicyError(f"rule:{name} names no rule")
            if name in resolving:
                raise PolicyError(f"rule {name!r} refers to itself: {' -> '.join(resolving)}")
            resolving.append(name)
            try:
                self._checks[name] = _Parser(self.texts[name], resolve).parse()
            except PolicyError as error:
                raise PolicyError(f"rule {name!r}: {error}") from None
            finally:
                resolving.pop()
            return self._checks[name]

        for name in self.texts:
            resolve(name)

    def rule_for(self, action: str) -> str | None:
        """The name of the rule that decides ``action`` (``Object:method``), if any."""
        if action in self._checks:
            return action
        return "default" if "default" in self._checks else None

    def allows(self, credentials: Credentials, rule: str, target: Mapping[str, Any]) -> bool:
        return self._checks[rule](credentials, target)

    def authorize(self, request: PolicyRequest) -> None:
        """Return if the request's rule holds for every target; else audit and refuse."""
        rule = self.rule_for(request.action)
        targets = self._targets(request)
        if rule is not None and all(
            self.allows(request.credentials, rule, target) for target in targets
        ):
            return
        why = "no rule" if rule is None else f"rule {rule!r} ({self.texts[rule]})"
        seen = [t.known() if isinstance(t, LazyTarget) else dict(t) for t in targets]
        # repr escapes what a sender wrote (no forged log lines); a build's
        # request spec is long, and the audit line stays one line.
        shown = repr(seen)
        shown = shown if len(shown) <= _MAX_SHOWN else shown[: _MAX_SHOWN - 3] + "..."
        context = request.context
        AUDIT.warning(
            "refused %s for %s (user %s, project %s, roles %s, admin %s): %s; targets %s",
            request.action,
            request.credentials,
            context.user_id,
            context.project_id,
            ",".join(context.roles) or "-",
            context.is_admin,
            why,
            shown,
        )
        raise PolicyNotAuthorized(
            f"{request.credentials} may not call {request.object_name}.{request.method} "
            f"on this target (policy: {why})",
            sender=str(request.credentials),
            action=request.action,
        )

    def check(
        self,
        sender: Sender,
        context: RequestContext,
        object_name: str,
        method: str,
        obj: Any = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """:meth:`authorize` the call ``sender`` signed, with ``context``'s credentials."""
        credentials = Credentials.of(sender, context)
        request = PolicyRequest(credentials, context, object_name, method, obj, arguments or {})
        self.authorize(request)

    def endpoint_check(self, topic: str) -> Callable[[Any, str, dict[str, Any]], None]:
        """An RPC server's ``authorize`` for the endpoints it serves on ``topic``.

        A signed request for ``method`` is checked against the rule
        ``"<topic>:<method>"`` (its target: the call's arguments, unless a
        target function is given for ``topic``). Endpoint methods with no rule
        of their own are let through: the ``default`` rule is for object calls.
        """

        def authorize(ctxt: Any, method: str, arguments: dict[str, Any]) -> None:
            sender = current_sender()
            if sender is None or f"{topic}:{method}" not in self._checks:
                return
            context = ctxt if isinstance(ctxt, RequestContext) else RequestContext()
            self.check(sender, context, topic, method, None, arguments)

        return authorize

    def _targets(self, request: PolicyRequest) -> Sequence[Mapping[str, Any]]:
        build = self.targets.get(request.object_name)
        if build is not None:
            return build(request)
        if request.obj is not None:
            return [_fields_as_sent(request.obj)]
        return [request.arguments]


def _fields_as_sent(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.fields if obj.obj_attr_is_set(name)}


@functools.lru_cache(maxsize=1024)
def _signature(function: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(function)


def named_arguments(
    function: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """A call's arguments by parameter name, defaults filled in; the first (``self`` or
    ``cls``) and the request context left out. Arguments that do not fit give none: the
    method, called with them, raises for itself."""
    try:
        bound = _signature(function).bind(None, *args, **kwargs)
    except TypeError:
        return {}
    bound.apply_defaults()
    return {
        name: value
        for name, value in list(bound.arguments.items())[1:]
        if not isinstance(value, RequestContext)
    }


def load_policy_file(path: str | Path) -> dict[str, str]:
    """An operator's rules from a TOML file: ``"Instance:save" = "rule:cross_host"``."""
    try:
        with open(path, "rb") as handle:
            loaded = tomllib.load(handle)
    except OSError as error:
        raise PolicyError(f"cannot read the policy file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"the policy file {path} is not TOML: {error}") from None
    rules = loaded.get("rules", loaded)
    for name, text in rules.items():
        if not isinstance(text, str):
            raise PolicyError(f"{path}: rule {name!r} must be a string, not {type(text).__name__}")
    return dict(rules)


def policy_of(apps: Iterable[App], policy_file: str | Path | None = None) -> Policy | None:
    """The policy a conductor serving ``apps`` enforces: their defaults, then the file's.

    None when no application brings rules and no file is given: every call is
    let through, as without signing.
    """
    defaults: list[PolicyDefaults] = []
    for app in apps:
        if app.policy is None:
            continue
        made = resolve(app, app.policy)()
        if not isinstance(made, PolicyDefaults):
            raise AppError(f"App {app.name}: {app.policy!r} did not give PolicyDefaults")
        defaults.append(made)
    overrides = load_policy_file(policy_file) if policy_file else None
    if not defaults and overrides is None:
        return None
    return Policy(defaults, overrides)
