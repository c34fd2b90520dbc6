"""The ``notifications:`` section of the config file: receivers, retries, dead letters.

Read with the same line-numbered checks as the rest of the config (see
:mod:`riskstream.config`).  Secrets are not in the file: a PagerDuty routing key
(and, if wanted, a webhook URL) is named by an environment variable and read
only when the notifier starts, by :func:`receiver_secrets`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import yaml

from riskstream.config.nodes import Problem, YamlNode, boolean, integer, number, string
from riskstream.core.delivery import RetryPolicy
from riskstream.core.notifications import (
    PAGERDUTY_URL,
    RECEIVER_KINDS,
    SEVERITIES,
    NotificationSettings,
    Receiver,
)
from riskstream.errors import ConfigError

__all__ = ["read_notifications", "receiver_secrets"]

_KEYS = ("receivers", "retry", "dead_letter_topic", "console_url", "group_id", "batch_size")
_RECEIVER_KEYS = (
    "name", "kind", "url", "url_env", "routing_key_env", "min_severity", "types", "subjects",
    "updates", "timeout_s",
)  # fmt: skip
_RETRY_KEYS = ("max_attempts", "initial_backoff_s", "max_backoff_s", "max_elapsed_s")


def read_notifications(node: YamlNode, source: str) -> NotificationSettings:
    fields = node.known(_KEYS)
    defaults = NotificationSettings()
    receivers: list[Receiver] = []
    if "receivers" in fields:
        for r_node in fields["receivers"].seq():
            receiver = _receiver(r_node, source)
            if any(r.name == receiver.name for r in receivers):
                raise Problem(r_node, f"receiver name {receiver.name!r} is used twice")
            receivers.append(receiver)
    return NotificationSettings(
        receivers=tuple(receivers),
        retry=_retry(fields["retry"]) if "retry" in fields else defaults.retry,
        dead_letter_topic=string(fields["dead_letter_topic"])
        if "dead_letter_topic" in fields
        else defaults.dead_letter_topic,
        console_url=_url(fields["console_url"]) if "console_url" in fields else None,
        group_id=string(fields["group_id"]) if "group_id" in fields else defaults.group_id,
        batch_size=integer(fields["batch_size"], 1)
        if "batch_size" in fields
        else defaults.batch_size,
    )


def _url(node: YamlNode) -> str:
    url = string(node)
    if not url.startswith(("http://", "https://")):
        raise Problem(node, "expected an http:// or https:// URL")
    return url


def _names(node: YamlNode) -> tuple[str, ...]:
    if isinstance(node.node, yaml.ScalarNode):
        return (string(node),)
    return tuple(string(n) for n in node.seq())


def _receiver(node: YamlNode, source: str) -> Receiver:
    f = node.known(_RECEIVER_KEYS)
    for required in ("name", "kind"):
        if required not in f:
            raise Problem(node, f"a receiver needs a {required!r}")
    kind = string(f["kind"])
    if kind not in RECEIVER_KINDS:
        raise Problem(f["kind"], f"kind must be one of {', '.join(RECEIVER_KINDS)}")
    if "url" in f and "url_env" in f:
        raise Problem(f["url_env"], "give url or url_env, not both")
    url = _url(f["url"]) if "url" in f else None
    if url is None and "url_env" not in f:
        if kind != "pagerduty":
            raise Problem(node, f"a {kind} receiver needs a 'url' (or 'url_env')")
        url = PAGERDUTY_URL
    if kind == "pagerduty" and "routing_key_env" not in f:
        raise Problem(
            node,
            "a pagerduty receiver needs 'routing_key_env': the variable holding "
            "the integration's routing key (keys never go in the file)",
        )
    if kind != "pagerduty" and "routing_key_env" in f:
        raise Problem(f["routing_key_env"], "only pagerduty receivers take a routing key")
    severity = string(f["min_severity"]) if "min_severity" in f else "info"
    if severity not in SEVERITIES:
        raise Problem(f["min_severity"], f"min_severity must be one of {', '.join(SEVERITIES)}")
    timeout = number(f["timeout_s"]) if "timeout_s" in f else 10.0
    if timeout <= 0:
        raise Problem(f["timeout_s"], "timeout_s must be above 0")
    return Receiver(
        name=string(f["name"]),
        kind=kind,
        url=url,
        url_env=string(f["url_env"]) if "url_env" in f else None,
        routing_key_env=string(f["routing_key_env"]) if "routing_key_env" in f else None,
        min_severity=severity,
        types=frozenset(_names(f["types"])) if "types" in f else frozenset(),
        subjects=_names(f["subjects"]) if "subjects" in f else (),
        updates=boolean(f["updates"]) if "updates" in f else False,
        timeout_s=timeout,
        origin=f"{source}:{node.line}: {node.path}",
    )


def _retry(node: YamlNode) -> RetryPolicy:
    f = node.known(_RETRY_KEYS)
    d = RetryPolicy()
    try:
        return RetryPolicy(
            max_attempts=integer(f["max_attempts"], 1) if "max_attempts" in f else d.max_attempts,
            initial_backoff_s=number(f["initial_backoff_s"])
            if "initial_backoff_s" in f
            else d.initial_backoff_s,
            max_backoff_s=number(f["max_backoff_s"]) if "max_backoff_s" in f else d.max_backoff_s,
            max_elapsed_s=number(f["max_elapsed_s"]) if "max_elapsed_s" in f else d.max_elapsed_s,
        )
    except ConfigError as exc:
        raise Problem(node, str(exc)) from None


def receiver_secrets(
    receiver: Receiver, environ: Mapping[str, str] | None = None
) -> tuple[str, str | None]:
    """The receiver's URL and routing key, read from the environment where named
    (``environ``, by default the process's own).

    Raises :class:`ConfigError` naming the config line and the variable (never
    its value) when one is unset, so the notifier refuses to start instead of
    failing on the first incident.
    """
    environ = os.environ if environ is None else environ
    where = f"{receiver.origin} (receiver {receiver.name!r})"
    url = receiver.url
    if receiver.url_env is not None:
        url = environ.get(receiver.url_env, "")
        if not url.startswith(("http://", "https://")):
            state = "is not set" if not url else "does not hold an http(s) URL"
            raise ConfigError(f"{where}: url_env {receiver.url_env} {state}")
    key = None
    if receiver.routing_key_env is not None:
        key = environ.get(receiver.routing_key_env, "").strip()
        if not key:
            raise ConfigError(
                f"{where}: the environment variable {receiver.routing_key_env} (routing_key_env) "
                "is not set; export the PagerDuty integration's routing key in it"
            )
    if url is None:  # the reader never lets this happen; a hand-made Receiver might
        raise ConfigError(f"{where}: no url")
    return url, key
