"""The redelivery window: what a save that may not have landed gives back."""

from __future__ import annotations

from riskstream.core.dedup import RecentIds


def test_a_failed_save_writes_the_ids_chunk_again_whatever_else_it_held() -> None:
    """The processor saves the ids chunk with the detectors' state in one call; when
    that call fails, only the chunk is given back here (found in CI after a merge:
    a detector's key made ``unsave`` raise ValueError and the processor exit)."""
    recent = RecentIds(100)
    assert not recent.seen("a") and not recent.seen("b")
    chunk, gone = recent.take_changed()
    assert chunk and gone == []
    recent.unsave({"drift\x1fsensor-0081": b"{}", **chunk})
    again, _ = recent.take_changed()
    assert again.keys() == chunk.keys() and again == chunk
    assert recent.seen("a")  # still in the window
