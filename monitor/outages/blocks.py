"""What the block rounds say about the end-user networks: each /24's latest belief, summed per
cell (one country, network and region), each cell's up-count against the median of its own
sliding window (IODA's active-probing signal), and the cells as the rules see them.

A cell is dark when less than `dark_ratio` of its baseline is up and more than the rest of it is
believed down: blocks Trinocular cannot decide (`unknown`) are no evidence either way,
so a lossy or sparse block never makes a network dark. Nothing here is ever one series or one
view per block: the rules and the metrics see cells, a few per network.
"""

from __future__ import annotations

import statistics
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from monitor.catalog.schema import BlockEntry, LivenessOptions
from monitor.outages.outage import Scope
from monitor.probing.belief import BlockState
from monitor.probing.block_rounds import BlockResult

__all__ = [
    "BLOCK_STATES",
    "MEMBER_PREFIX",
    "BlockLedger",
    "Cell",
    "CellView",
    "is_cell",
    "is_dark",
]

_Key = tuple[Scope, str]  # an outage's key (rules.OutageKey)
MEMBER_PREFIX = "blocks:"  # a cell among an outage's members; target names never hold a colon
UNWATCHED = "unwatched"  # no responsive address found at discovery: nothing to ask
BLOCK_STATES = (*(state.value for state in BlockState), UNWATCHED)


def is_cell(member: str) -> bool:
    return member.startswith(MEMBER_PREFIX)


@dataclass(frozen=True, slots=True)
class Cell:
    country: str
    asn: int
    region: str | None
    kind: str | None  # of network: mobile, fixed, ...

    @property
    def name(self) -> str:
        """`blocks:KZ/AS9198/KZ-75`: the blocks of one network in one region of a country."""
        region = f"/{self.region}" if self.region else ""
        return f"{MEMBER_PREFIX}{self.country}/AS{self.asn}{region}"


@dataclass(frozen=True, slots=True)
class CellView:
    """One cell as the rules see it at a verdict."""

    cell: Cell
    up: int  # blocks believed up now
    down: int  # blocks believed down now
    baseline: float | None  # median up-count over the window; None until `baseline_rounds` rounds
    dark_since: float | None  # first probe that showed it dark, while it is
    back_since: float | None  # first probe that showed it back, while it is not dark
    up_times: tuple[float, ...] = ()  # when each block believed up was last seen up, sorted
    down_since: tuple[float, ...] = ()  # when each block believed down went down, sorted
    probed_times: tuple[float, ...] = ()  # when each watched block was last probed (0: never), sorted
    explained_by: _Key | None = None  # its cause at the last verdict, as an outage key
    released_at: float | None = None  # when the wider outage that explained it ended
    released_from: _Key | None = None

    @property
    def name(self) -> str:
        return self.cell.name

    @property
    def country(self) -> str:
        return self.cell.country

    @property
    def asn(self) -> int:
        return self.cell.asn

    @property
    def region(self) -> str | None:
        return self.cell.region

    @property
    def network_kind(self) -> str | None:
        return self.cell.kind


def is_dark(up: int, down: int, baseline: float, ratio: float) -> bool:
    """Less than `ratio` of the baseline up, and more than the rest of it believed down (IODA:
    critical below half of the baseline)."""
    return up < ratio * baseline and down > (1 - ratio) * baseline


@dataclass(slots=True)
class _CellRecord:
    prefixes: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    samples: deque[tuple[float, int]] = field(default_factory=deque)  # (round end, up-count)
    baseline: float | None = None
    dark_since: float | None = None
    back_since: float | None = None
    version: int = 0


class BlockLedger:
    """Each /24's latest state, each cell's counts and baseline. Fed by the daemon with the block
    results it trusts (our vantage online, our loop on time) and a sample per complete round."""

    def __init__(self) -> None:
        self.options = LivenessOptions()
        self.cell_of: dict[str, Cell] = {}  # /24 prefix -> its cell
        self.cells: dict[Cell, _CellRecord] = {}
        self._state: dict[str, tuple[str, float]] = {}  # prefix -> (state, when it entered it)
        self._probed_at: dict[str, float] = {}  # prefix -> start of its latest round
        self._views: dict[Cell, tuple[tuple[object, ...], CellView]] = {}

    def set_catalog(
        self, blocks: Sequence[BlockEntry], options: LivenessOptions, kind_of: Callable[[int], str | None]
    ) -> None:
        """Watch these blocks; states, samples and baselines of the cells that stay are kept."""
        self.options = options
        cell_of: dict[str, Cell] = {}
        for entry in blocks:
            cell = Cell(entry.country, entry.asn, entry.region, entry.kind or kind_of(entry.asn))
            for subnet in entry.network.subnets(new_prefix=24):
                cell_of[str(subnet)] = cell
        self.cell_of = cell_of
        self.cells = {cell: self.cells.get(cell, _CellRecord()) for cell in set(cell_of.values())}
        self._state = {prefix: state for prefix, state in self._state.items() if prefix in cell_of}
        self._probed_at = {prefix: at for prefix, at in self._probed_at.items() if prefix in cell_of}
        for record in self.cells.values():
            record.counts.clear()
            record.prefixes.clear()
            record.version += 1
        for prefix, cell in cell_of.items():
            self.cells[cell].prefixes.append(prefix)
            self.cells[cell].counts[self._state.get(prefix, (UNWATCHED, 0.0))[0]] += 1
        self._views.clear()

    def prefixes(self) -> list[str]:
        """Every /24 of the catalog's blocks."""
        return list(self.cell_of)

    def set_watched(self, prefixes: Iterable[str], at: float) -> None:
        """The blocks with a usable hitlist: unknown until probed; the others are unwatched."""
        watched = set(prefixes)
        for prefix in self.cell_of:
            state = self._state.get(prefix, (UNWATCHED, 0.0))[0]
            if (prefix in watched) != (state != UNWATCHED):
                self._set(prefix, BlockState.UNKNOWN.value if prefix in watched else UNWATCHED, at)

    def record(self, result: BlockResult) -> bool:
        """Take one block's round; True when its cell turned dark or came back."""
        if result.local or result.prefix not in self._state or self._state[result.prefix][0] == UNWATCHED:
            return False
        self._probed_at[result.prefix] = result.started_at
        return self._set(result.prefix, result.state.value, result.started_at)

    def forget_since(self, since: float) -> None:
        """Results from `since` on are set aside (our uplink was going): those blocks are unknown
        until their next round."""
        for prefix, (state, _) in list(self._state.items()):
            probed = self._probed_at.get(prefix, 0.0)
            if state != UNWATCHED and probed >= since:
                self._set(prefix, BlockState.UNKNOWN.value, probed)

    def _set(self, prefix: str, state: str, at: float) -> bool:
        previous, since = self._state.get(prefix, (UNWATCHED, 0.0))
        self._state[prefix] = (state, since if state == previous else at)
        record = self.cells[self.cell_of[prefix]]
        record.counts[previous] -= 1
        record.counts[state] += 1
        record.version += 1
        return self._judge(record, at)

    def _judge(self, record: _CellRecord, at: float) -> bool:
        up, down = record.counts[BlockState.UP.value], record.counts[BlockState.DOWN.value]
        dark = record.baseline is not None and is_dark(up, down, record.baseline, self.options.dark_ratio)
        if dark and record.dark_since is None:
            record.dark_since, record.back_since = at, None
            return True
        if not dark and record.dark_since is not None:
            record.dark_since, record.back_since = None, at
            return True
        return False

    def end_round(self, started: float, at: float) -> bool:
        """One sample for the baseline of each cell whose every watched block was probed in this
        round (`started` to `at`), a round we trust; True when a cell's darkness changed with its
        new baseline. A cell still being discovered has no sample yet."""
        changed = False
        for record in self.cells.values():
            if record.dark_since is not None:
                continue  # the baseline learns from normal times: a shutdown of days must not lower it
            watched = [
                prefix for prefix in record.prefixes if self._state.get(prefix, (UNWATCHED,))[0] != UNWATCHED
            ]
            if not watched or any(self._probed_at.get(prefix, 0.0) < started for prefix in watched):
                continue
            samples = record.samples
            samples.append((at, record.counts[BlockState.UP.value]))
            while samples and samples[0][0] < at - self.options.baseline_window:
                samples.popleft()
            if len(samples) >= self.options.baseline_rounds:
                record.baseline = float(statistics.median(up for _, up in samples))
            record.version += 1
            changed |= self._judge(record, at)
        return changed

    def samples(self) -> dict[str, list[tuple[float, int]]]:
        """Every cell's baseline samples, by cell name (the journal keeps them across restarts)."""
        return {cell.name: list(record.samples) for cell, record in self.cells.items()}

    def restore(self, samples: Mapping[str, Sequence[tuple[float, int]]], now: float) -> None:
        for cell, record in self.cells.items():
            kept = [
                (at, up) for at, up in samples.get(cell.name, ()) if at >= now - self.options.baseline_window
            ]
            record.samples = deque(sorted(kept))
            if len(record.samples) >= self.options.baseline_rounds:
                record.baseline = float(statistics.median(up for _, up in record.samples))
            record.version += 1

    def counts(self) -> dict[Cell, Counter[str]]:
        return {cell: record.counts for cell, record in self.cells.items()}

    def views(
        self,
        cause: Mapping[str, tuple[_Key, object]],
        released: Mapping[str, tuple[float, _Key]],
    ) -> tuple[CellView, ...]:
        """Every cell as the rules see it; rebuilt only when its blocks, cause or release changed."""
        views = []
        for cell, record in self.cells.items():
            explained = cause.get(cell.name)
            release = released.get(cell.name)
            inputs = (record.version, explained, release)
            cached = self._views.get(cell)
            if cached is None or cached[0] != inputs:
                cached = (inputs, self._view(cell, record, explained, release))
                self._views[cell] = cached
            views.append(cached[1])
        return tuple(views)

    def _view(
        self,
        cell: Cell,
        record: _CellRecord,
        explained: tuple[_Key, object] | None,
        release: tuple[float, _Key] | None,
    ) -> CellView:
        states = [(prefix, *self._state.get(prefix, (UNWATCHED, 0.0))) for prefix in record.prefixes]
        probed = self._probed_at
        up_times = sorted(
            probed.get(prefix, 0.0) for prefix, state, _ in states if state == BlockState.UP.value
        )
        down_since = sorted(since for _, state, since in states if state == BlockState.DOWN.value)
        probed_times = sorted(probed.get(prefix, 0.0) for prefix, state, _ in states if state != UNWATCHED)
        return CellView(
            cell,
            up=record.counts[BlockState.UP.value],
            down=record.counts[BlockState.DOWN.value],
            baseline=record.baseline,
            dark_since=record.dark_since,
            back_since=record.back_since,
            up_times=tuple(up_times),
            down_since=tuple(down_since),
            probed_times=tuple(probed_times),
            explained_by=explained[0] if explained is not None and explained[1] != "recovering" else None,
            released_at=release[0] if release else None,
            released_from=release[1] if release else None,
        )
