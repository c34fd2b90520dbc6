"""The ``tickets:`` section: which ticket systems get a ticket per incident group.

Read with the same line-numbered checks as the rest of the config.  Credentials
are not in the file: each system names the environment variables that hold
them, read only when the ticketer starts (:func:`ticket_secrets`), as the
notifier does with its routing keys.

.. code-block:: yaml

    tickets:
      min_severity: warning            # groups below it get no ticket
      interval_s: 5                    # between scans of the incident records
      console_url: https://riskstream.example
      resolve_on_close: false          # true: a person closing a ticket resolves its group
      close_check_interval_s: 60       # how often, then, open groups' tickets are read
      systems:
        - {name: jira, kind: jira, url: https://acme.atlassian.net, project: OPS,
           user_env: JIRA_USER, token_env: JIRA_API_TOKEN}
        - {name: github, kind: github, url: https://api.github.com, repo: acme/models,
           token_env: GITHUB_TOKEN, labels: [incident]}
        - {name: servicenow, kind: servicenow, url: https://acme.service-now.com,
           user_env: SN_USER, token_env: SN_PASSWORD}
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import yaml

from riskstream.config.nodes import Problem, YamlNode, boolean, integer, number, string
from riskstream.core.notifications import SEVERITIES
from riskstream.core.tickets import TICKET_KINDS, TicketSettings, TicketSystemSpec
from riskstream.errors import ConfigError

__all__ = ["read_tickets", "ticket_secrets"]

_KEYS = (
    "systems", "min_severity", "interval_s", "scan_limit", "initial_backoff_s",
    "max_backoff_s", "console_url", "group_labels", "resolve_on_close",
    "close_check_interval_s",
)  # fmt: skip
_SYSTEM_KEYS = (
    "name", "kind", "url", "project", "issue_type", "repo", "labels", "user_env",
    "token_env", "close_code", "done_status", "timeout_s",
)  # fmt: skip
_NEEDS = {
    "jira": ("project", "user_env", "token_env"),
    "github": ("repo", "token_env"),
    "servicenow": ("user_env", "token_env"),
}
_DEFAULT_URL = {"github": "https://api.github.com"}


def _url(node: YamlNode) -> str:
    url = string(node)
    if not url.startswith(("http://", "https://")):
        raise Problem(node, "expected an http:// or https:// URL")
    return url


def read_tickets(node: YamlNode, source: str) -> TicketSettings:
    f = node.known(_KEYS)
    d = TicketSettings()
    systems: list[TicketSystemSpec] = []
    for s_node in f["systems"].seq() if "systems" in f else ():
        spec = _system(s_node, source)
        if any(s.name == spec.name for s in systems):
            raise Problem(s_node, f"ticket system name {spec.name!r} is used twice")
        systems.append(spec)
    severity = string(f["min_severity"]) if "min_severity" in f else d.min_severity
    if severity not in SEVERITIES:
        raise Problem(f["min_severity"], f"min_severity must be one of {', '.join(SEVERITIES)}")
    settings = TicketSettings(
        systems=tuple(systems),
        min_severity=severity,
        interval_s=number(f["interval_s"]) if "interval_s" in f else d.interval_s,
        scan_limit=integer(f["scan_limit"], 1) if "scan_limit" in f else d.scan_limit,
        initial_backoff_s=number(f["initial_backoff_s"])
        if "initial_backoff_s" in f
        else d.initial_backoff_s,
        max_backoff_s=number(f["max_backoff_s"]) if "max_backoff_s" in f else d.max_backoff_s,
        console_url=_url(f["console_url"]) if "console_url" in f else None,
        group_labels=boolean(f["group_labels"]) if "group_labels" in f else d.group_labels,
        resolve_on_close=boolean(f["resolve_on_close"])
        if "resolve_on_close" in f
        else d.resolve_on_close,
        close_check_interval_s=number(f["close_check_interval_s"])
        if "close_check_interval_s" in f
        else d.close_check_interval_s,
    )
    for key in ("interval_s", "initial_backoff_s", "max_backoff_s", "close_check_interval_s"):
        if getattr(settings, key) <= 0:
            raise Problem(f[key], f"{key} must be above 0")
    return settings


def _system(node: YamlNode, source: str) -> TicketSystemSpec:
    f = node.known(_SYSTEM_KEYS)
    for required in ("name", "kind"):
        if required not in f:
            raise Problem(node, f"a ticket system needs a {required!r}")
    kind = string(f["kind"])
    if kind not in TICKET_KINDS:
        raise Problem(f["kind"], f"kind must be one of {', '.join(TICKET_KINDS)}")
    missing = [k for k in _NEEDS[kind] if k not in f]
    if "url" not in f and kind not in _DEFAULT_URL:
        missing.insert(0, "url")
    if missing:
        raise Problem(
            node,
            f"a {kind} ticket system needs {', '.join(repr(m) for m in missing)} "
            "(credentials are named by *_env: the variables that hold them)",
        )
    labels = tuple(string(n) for n in f["labels"].seq()) if "labels" in f else ()
    for label, l_node in zip(labels, f["labels"].seq() if "labels" in f else (), strict=False):
        if any(c.isspace() for c in label):
            raise Problem(l_node, "labels cannot hold spaces (Jira refuses them)")
    repo = string(f["repo"]) if "repo" in f else None
    if repo is not None and repo.count("/") != 1:
        raise Problem(f["repo"], "repo is owner/name, e.g. acme/models")
    timeout = number(f["timeout_s"]) if "timeout_s" in f else 10.0
    if timeout <= 0:
        raise Problem(f["timeout_s"], "timeout_s must be above 0")
    if isinstance(node.node, yaml.MappingNode) and kind != "jira":
        for jira_only in ("project", "issue_type", "done_status"):
            if jira_only in f:
                raise Problem(f[jira_only], f"{jira_only} is for jira systems only")
    return TicketSystemSpec(
        name=string(f["name"]),
        kind=kind,
        url=_url(f["url"]) if "url" in f else _DEFAULT_URL[kind],
        project=string(f["project"]) if "project" in f else None,
        issue_type=string(f["issue_type"]) if "issue_type" in f else "Task",
        repo=repo,
        labels=labels,
        user_env=string(f["user_env"]) if "user_env" in f else None,
        token_env=string(f["token_env"]) if "token_env" in f else None,
        close_code=string(f["close_code"]) if "close_code" in f else "Solution provided",
        done_status=string(f["done_status"]) if "done_status" in f else None,
        timeout_s=timeout,
        origin=f"{source}:{node.line}: {node.path}",
    )


def ticket_secrets(
    spec: TicketSystemSpec, environ: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """The system's user (empty for GitHub) and token or password, from the environment.

    Raises :class:`ConfigError` naming the config line and the variable (never its
    value) when one is unset, so the ticketer refuses to start.
    """
    environ = os.environ if environ is None else environ
    values = []
    for var in (spec.user_env, spec.token_env):
        if var is None:
            values.append("")
            continue
        value = environ.get(var, "").strip()
        if not value:
            raise ConfigError(
                f"{spec.origin} (ticket system {spec.name!r}): the environment variable {var} "
                "is not set; export the credential in it"
            )
        values.append(value)
    return values[0], values[1]
