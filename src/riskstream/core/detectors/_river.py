"""River's modules, imported when a River detector is first built or restored.

``river.drift`` and ``river.stats`` import scipy: about 1.5 s of CPU at every start of
every process and CLI command, which the learned kinds of the shipped default config
never need.  Each accessor imports once; Python caches the module after that.

The two detectors the processor runs most, ADWIN and Page-Hinkley, need even less:
their modules (``river/drift/adwin.py``, ``river/drift/page_hinkley.py``) import only
``river.base``, ``river.stats`` and River's Rust extension, but importing them the usual
way first runs ``river/drift/__init__.py``, which imports every drift detector, KSWIN's
scipy.stats and the drift datasets' scipy.io: 1.0 s of CPU of a processor's 2.3 s
start-up.  :func:`drift_class` loads just the one module, under its own name
(``river.drift.adwin``), so that a later ``import river.drift`` finds it in
``sys.modules`` and every caller gets the same class.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any


def drift() -> Any:
    from river import drift as river_drift

    return river_drift


def drift_class(module: str, name: str) -> Any:
    """River's ``river.drift.<module>.<name>``, without running ``river.drift``'s
    ``__init__`` when it has not run yet (see the module docstring)."""
    full = f"river.drift.{module}"
    loaded = sys.modules.get(full)
    if loaded is None and "river.drift" not in sys.modules:
        loaded = _load_alone(full, module)
    if loaded is None:  # river.drift is imported already, or the shortcut failed
        loaded = importlib.import_module(full)
    return getattr(loaded, name)


def _load_alone(full: str, module: str) -> Any:
    """``river/drift/<module>.py`` executed on its own; None when it cannot be (another
    River layout, a relative import): the caller imports it the usual way."""
    import river

    path = Path(river.__file__).resolve().parent / "drift" / f"{module}.py"
    spec = importlib.util.spec_from_file_location(full, path)
    if spec is None or spec.loader is None or not path.is_file():
        return None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[full] = loaded
    try:
        spec.loader.exec_module(loaded)
    except Exception:
        if sys.modules.get(full) is loaded:
            del sys.modules[full]
        return None
    return loaded


def binary() -> Any:
    from river.drift import binary as river_binary

    return river_binary


def stats() -> Any:
    from river import stats as river_stats

    return river_stats


def rust_drift() -> Any:
    from river._river_rust import drift as river_rust_drift

    return river_rust_drift


def hddm_w_sample_info() -> Any:
    from river.drift.binary.hddm_w import SampleInfo

    return SampleInfo
