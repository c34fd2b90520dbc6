from __future__ import annotations

import random

import pytest

from riskstream.core.detectors import ADWIN
from riskstream.errors import ConfigError, SnapshotError


def _shifted(seed: int, n: int = 4000, at: int = 2000, shift: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(shift if i >= at else 0.0, 1.0) for i in range(n)]


def test_adwin_alarms_after_a_shift_with_onset_near_it() -> None:
    det = ADWIN(delta=1e-5)
    alarms = [a for x in _shifted(1) if (a := det.update(x))]
    assert alarms, "a 1-sigma shift must be detected"
    first = alarms[0]
    assert 2000 < first.index < 2400
    assert first.onset <= first.index
    assert first.after.mean > first.before.mean


@pytest.mark.parametrize("cut", [1, 777, 2030, 3999])
def test_adwin_restored_from_snapshot_behaves_like_one_that_never_stopped(cut: int) -> None:
    xs = _shifted(2)
    straight, resumed = ADWIN(), ADWIN()
    for i, x in enumerate(xs):
        if i == cut:
            resumed = ADWIN.restore(resumed.snapshot())
        assert resumed.update(x) == straight.update(x)
    assert resumed.snapshot() == straight.snapshot()


def test_adwin_refuses_bad_settings_and_foreign_snapshots() -> None:
    with pytest.raises(ConfigError, match="delta"):
        ADWIN(delta=0)
    with pytest.raises(SnapshotError, match="kind='adwin'"):
        ADWIN.restore({"kind": "page-hinkley", "v": 1})


def test_river_is_imported_only_when_a_river_detector_is_built() -> None:
    """River's drift and stats modules import scipy (about 1.5 s of CPU at every start);
    the learned kinds of the shipped default never need them, and ADWIN and Page-Hinkley
    load their own River modules without river.drift's __init__ (scipy.stats, scipy.io),
    as the same classes a later ``import river.drift`` gives."""
    import subprocess
    import sys

    code = (
        "import sys, riskstream.core.monitors, riskstream.cli.run\n"
        "print('river.drift' in sys.modules, 'scipy' in sys.modules)\n"
        "from riskstream.core.detectors.page_hinkley import PageHinkley\n"
        "from riskstream.core.detectors.adwin import ADWIN\n"
        "ph, adwin = PageHinkley(), ADWIN()\n"
        "print('river.drift' in sys.modules, 'scipy.stats' in sys.modules)\n"
        "import river.drift\n"
        "print(type(ph._det) is river.drift.PageHinkley, type(adwin._det) is river.drift.ADWIN)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False", "False", "True", "True"]
