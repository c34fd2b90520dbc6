"""Regenerate the example reports in this folder: ``python docs/examples/generate.py``.

tests/unit/test_report_examples.py fails when the committed files differ from what
this writes, so run it after changing the reports or the medical situation.
"""

from __future__ import annotations

from pathlib import Path

from riskstream.report_examples import example_files


def main() -> None:
    here = Path(__file__).resolve().parent
    for name, text in example_files().items():
        (here / name).write_text(text, encoding="utf-8")
        print(f"wrote {here / name}")


if __name__ == "__main__":
    main()
