"""YAML nodes that remember where they came from, for errors that name the line.

The config readers walk these instead of plain dicts, so every complaint can say
``file:line: path: problem``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import yaml

__all__ = ["Problem", "YamlNode", "boolean", "integer", "number", "scalar", "string"]


class YamlNode:
    """A YAML node with its path (``$.monitors[2].detector``) and line."""

    __slots__ = ("node", "path")

    def __init__(self, node: yaml.Node, path: str) -> None:
        self.node, self.path = node, path

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + 1

    def items(self) -> Iterator[tuple[str, YamlNode]]:
        if not isinstance(self.node, yaml.MappingNode):
            raise Problem(self, "expected a mapping (key: value lines)")
        for k, v in self.node.value:
            yield str(k.value), YamlNode(v, f"{self.path}.{k.value}")

    def seq(self) -> Iterator[YamlNode]:
        if not isinstance(self.node, yaml.SequenceNode):
            raise Problem(self, "expected a list")
        for i, v in enumerate(self.node.value):
            yield YamlNode(v, f"{self.path}[{i}]")

    def known(self, allowed: Iterable[str]) -> dict[str, YamlNode]:
        """The mapping's fields, refusing any key not in ``allowed``."""
        allowed = list(allowed)
        out = {}
        for k, v in self.items():
            if k not in allowed:
                raise Problem(v, f"unknown key {k!r}; known: {', '.join(allowed)}")
            out[k] = v
        return out

    def plain(self) -> Any:
        return yaml.safe_load(yaml.serialize(self.node))


class Problem(Exception):
    """What is wrong with a node; the reader turns it into a ConfigError with the line."""

    def __init__(self, node: YamlNode, message: str) -> None:
        super().__init__(message)
        self.node, self.message = node, message


def scalar(node: YamlNode, kind: type | tuple[type, ...], what: str) -> Any:
    value = node.plain()
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise Problem(node, f"expected {what}, got {value!r}")
    return value


def integer(node: YamlNode, minimum: int = 0) -> int:
    value: int = scalar(node, int, "an integer")
    if value < minimum:
        raise Problem(node, f"must be >= {minimum}, got {value}")
    return value


def number(node: YamlNode) -> float:
    return float(scalar(node, (int, float), "a number"))


def boolean(node: YamlNode) -> bool:
    value: bool = scalar(node, bool, "true or false")
    return value


def string(node: YamlNode) -> str:
    value: str = scalar(node, str, "a string")
    if not value:
        raise Problem(node, "must not be empty")
    return value
