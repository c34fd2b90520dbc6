"""The ``riskstream`` command line, one module per command family.

- :mod:`.main`: the parser and :func:`main` (the ``riskstream`` entry point);
- :mod:`.run`: ``run processor|containment|notifier|api``, one sub-parser each;
- :mod:`.demo`: ``demo`` and ``replay`` (no servers);
- :mod:`.containment`: ``actions``, ``flags``, ``audit``;
- :mod:`.incidents`: ``incidents``; :mod:`.reports`: ``report``;
- :mod:`.tools`: ``schemas`` and ``config``; :mod:`.tokens`: ``api-token``;
- :mod:`.simulate`: ``simulate``;
- :mod:`.common`: what the operator commands share (connection options, tables, JSON).
"""

from __future__ import annotations

from riskstream.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
