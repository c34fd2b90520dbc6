"""Detectors for 0/1 error indicators and rates in [0, 1]: DDM, EDDM, HDDM_A, HDDM_W.

They watch a stream of "was this prediction wrong?" (or a rate between 0 and 1), as
River's ``drift.binary`` does, and so suit labelled error streams rather than raw
measurements.
"""

from riskstream.core.detectors.binary.ddm import DDM
from riskstream.core.detectors.binary.eddm import EDDM
from riskstream.core.detectors.binary.hddm_a import HDDMA
from riskstream.core.detectors.binary.hddm_w import HDDMW

__all__ = ["DDM", "EDDM", "HDDMA", "HDDMW"]
