"""The block ledger on a fake clock: each /24's latest belief summed per cell, the baseline as the
median of the rounds' up-counts, and a cell dark only when its blocks are believed down."""

from __future__ import annotations

from monitor.catalog.schema import BlockEntry, LivenessOptions
from monitor.outages.blocks import BlockLedger, is_cell
from monitor.probing.belief import DOWN_BELOW, UP_ABOVE
from monitor.probing.block_rounds import BlockResult

OPTIONS = LivenessOptions(round="10s", timeout="1s", baseline_rounds=3, baseline_window="100s")
BLOCKS = [
    BlockEntry(prefix="10.1.0.0/23", asn=64500, country="KZ", region="KZ-75"),
    BlockEntry(prefix="10.2.0.0/24", asn=64501, country="KZ", kind="mobile"),
]
PREFIXES = ["10.1.0.0/24", "10.1.1.0/24", "10.2.0.0/24"]


def result(prefix: str, at: float, alive: bool = True, local: bool = False) -> BlockResult:
    belief = 0.99 if alive else 0.01
    return BlockResult(prefix, belief, 3, 3 if alive else 0, at, at + 1, local)


def ledger(watched: list[str] = PREFIXES) -> BlockLedger:
    book = BlockLedger()
    book.set_catalog(BLOCKS, OPTIONS, lambda asn: "fixed")
    book.set_watched(watched, 0.0)
    return book


def counts(book: BlockLedger) -> dict[str, dict[str, int]]:
    return {cell.name: {k: v for k, v in found.items() if v} for cell, found in book.counts().items()}


def rounds(book: BlockLedger, count: int, start: float = 0.0, alive: bool = True) -> float:
    at = start
    for _ in range(count):
        for prefix in PREFIXES:
            book.record(result(prefix, at, alive))
        book.end_round(at, at + 10)
        at += 10
    return at


def test_cells_are_a_network_in_a_region_and_count_their_blocks_by_state() -> None:
    book = ledger(watched=PREFIXES[:2])
    assert counts(book) == {
        "blocks:KZ/AS64500/KZ-75": {"unknown": 2},
        "blocks:KZ/AS64501": {"unwatched": 1},
    }
    assert all(is_cell(cell.name) for cell in book.cells)
    assert UP_ABOVE > 0.99 - 0.1 and DOWN_BELOW > 0.01  # the beliefs used here are decided
    book.record(result("10.1.0.0/24", 1.0))
    book.record(result("10.1.1.0/24", 1.0, alive=False))
    book.record(result("10.2.0.0/24", 1.0))  # unwatched: no hitlist, nothing to learn
    assert counts(book)["blocks:KZ/AS64500/KZ-75"] == {"up": 1, "down": 1}
    assert not book.record(result("10.1.0.0/24", 2.0, local=True))  # ours: no evidence
    assert counts(book)["blocks:KZ/AS64500/KZ-75"] == {"up": 1, "down": 1}


def test_no_cell_is_dark_before_it_has_a_baseline_of_enough_rounds() -> None:
    book = ledger()
    rounds(book, 2)
    assert all(record.baseline is None for record in book.cells.values())
    assert not any(book.record(result(prefix, 30.0, alive=False)) for prefix in PREFIXES)
    assert all(view.dark_since is None for view in book.views({}, {}))


def test_a_cell_goes_dark_when_its_blocks_are_down_and_is_dated_by_the_probe_that_showed_it() -> None:
    book = ledger()
    at = rounds(book, 3)
    assert {cell.name: record.baseline for cell, record in book.cells.items()} == {
        "blocks:KZ/AS64500/KZ-75": 2.0,
        "blocks:KZ/AS64501": 1.0,
    }
    assert not book.record(result("10.1.0.0/24", at + 1, alive=False))  # 1 of 2 down: at the ratio...
    assert book.record(result("10.1.1.0/24", at + 2, alive=False))  # ...2 of 2: dark
    view = next(view for view in book.views({}, {}) if view.region == "KZ-75")
    assert (view.up, view.down, view.dark_since, view.back_since) == (0, 2, at + 2, None)
    assert book.record(result("10.1.1.0/24", at + 12))
    view = next(view for view in book.views({}, {}) if view.region == "KZ-75")
    assert view.dark_since is None and view.back_since == at + 12
    assert view.up_times == (at + 12,)


def test_blocks_trinocular_cannot_decide_are_no_evidence_of_darkness() -> None:
    book = ledger()
    at = rounds(book, 3)
    for prefix in PREFIXES:
        undecided = BlockResult(prefix, 0.5, 15, 4, at, at + 1)
        assert not book.record(undecided)
    assert all(view.dark_since is None and view.up == 0 for view in book.views({}, {}))


def half_rounds(book: BlockLedger, count: int, start: float) -> float:
    """Rounds with one of the region's two /24s down: fewer up, not dark."""
    at = start
    for _ in range(count):
        for prefix, alive in zip(PREFIXES, (True, False, True), strict=True):
            book.record(result(prefix, at, alive))
        book.end_round(at, at + 10)
        at += 10
    return at


def test_the_baseline_is_the_median_of_the_window_learnt_in_normal_times_and_outlives_a_restart() -> None:
    book = ledger()
    at = rounds(book, 5)
    region = next(record for cell, record in book.cells.items() if cell.region)
    at = half_rounds(book, 4, start=at)  # 4 rounds at 1 of 7: the median stays
    assert region.baseline == 2.0
    at = half_rounds(book, 7, start=at)  # the window (100s) now holds mostly rounds at 1
    assert region.baseline == 1.0
    at = rounds(book, 30, start=at, alive=False)  # dark for 300s: no sample, the baseline stays
    assert region.baseline == 1.0 and region.samples[-1] == (160.0, 1)  # the last round before it
    again = ledger()
    again.restore(book.samples(), now=160.0 + 50)  # a restart within the window of the last samples
    assert [record.baseline for record in again.cells.values()] == [
        record.baseline for record in book.cells.values()
    ]


def test_blocks_that_went_silent_as_our_uplink_went_are_forgotten() -> None:
    book = ledger()
    at = rounds(book, 3)
    book.record(result("10.1.0.0/24", at + 1, alive=False))
    book.record(result("10.1.1.0/24", at + 5, alive=False))
    book.forget_since(at + 3)
    assert counts(book)["blocks:KZ/AS64500/KZ-75"] == {"down": 1, "unknown": 1}
    assert all(view.dark_since is None for view in book.views({}, {}))


def test_a_cell_not_probed_all_through_a_round_gets_no_sample() -> None:
    book = ledger(watched=PREFIXES[:1])
    book.record(result("10.1.0.0/24", 5.0))
    book.end_round(0.0, 10.0)  # the other /24 of the region is not watched yet: counted without it
    book.set_watched(PREFIXES[:2], 12.0)
    book.record(result("10.1.0.0/24", 21.0))
    book.end_round(20.0, 30.0)  # 10.1.1.0/24 watched but not probed in this round
    samples = book.samples()
    assert samples["blocks:KZ/AS64500/KZ-75"] == [(10.0, 1)] and samples["blocks:KZ/AS64501"] == []


def test_a_reload_keeps_the_states_and_baselines_of_the_cells_that_stay() -> None:
    book = ledger()
    rounds(book, 3)
    book.set_catalog(BLOCKS[:1], OPTIONS, lambda asn: "fixed")
    assert counts(book) == {"blocks:KZ/AS64500/KZ-75": {"up": 2}}
    assert next(iter(book.cells.values())).baseline == 2.0
