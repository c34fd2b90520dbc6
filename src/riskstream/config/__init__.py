"""Configuration: the monitor config file and the settings read from the environment.

The YAML reader (:mod:`.loader`, on :mod:`.nodes`) turns the file into a checked
:class:`Config` or an error naming ``file:line``; each section has its own module
(:mod:`.monitors`, :mod:`.processor`, :mod:`.containment`, :mod:`.notifications`,
:mod:`.reports`).  :mod:`.environment` is the one place that reads environment
variables, when a process starts rather than at import time.
"""

from __future__ import annotations

from riskstream.config.loader import DEFAULT_CONFIG, Config, load_config
from riskstream.config.processor import EVENT_KINDS, ProcessorSettings, Topics

__all__ = ["DEFAULT_CONFIG", "EVENT_KINDS", "Config", "ProcessorSettings", "Topics", "load_config"]
