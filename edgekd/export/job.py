"""What an export format's plug-in gets: the bundle folder being built, its manifest, the options, and
(when exporting a run) the trained network and the run's data, loaded once for every format."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from edgekd.bundle import Manifest
from edgekd.errors import EdgekdError

_UNLOADED = object()


@dataclass
class TrainedRun:
    """A finished run: the network, its checkpoint state and results.json."""

    net: Any  # edgekd.models.MultiExitNet
    state: dict[str, Any]
    results: dict[str, Any]


@dataclass
class ExportJob:
    folder: Path
    opts: dict[str, Any]
    log: Callable[[str], None]
    manifest: Optional[Manifest] = None  # set by the first format of the chain, or read from the bundle extended
    run: Optional[TrainedRun] = None  # None when a format extends an exported bundle
    specs: list = field(default_factory=list)  # the FP32 graphs' GraphSpecs, when exporting a run
    _data: Any = _UNLOADED
    _reference: Any = None

    def data(self, required_by: str | None = None) -> Any:
        """The run's data splits (edgekd.data.DataSplits), built once; None where they are not available,
        unless `required_by` names the format that cannot do without them."""
        if self._data is _UNLOADED:
            self._data = self._build_data()
        if isinstance(self._data, EdgekdError):
            if required_by:
                raise EdgekdError(f"{required_by} needs the run's training and validation images, which are not available "
                                  f"here ({self._data})") from None
            return None
        return self._data

    def fp32_reference(self, required_by: str) -> Any:
        """The validation split through the FP32 `full` graph (`precision_check.Reference`), computed once for
        every reduced-precision format of the bundle."""
        if self._reference is None:
            from edgekd.export.precision_check import fp32_reference

            self._reference = fp32_reference(self.folder, self.data(required_by=required_by))
        return self._reference

    def _build_data(self) -> Any:
        from edgekd.config import RecipeConfig
        from edgekd.data import build_data

        if self.run is None:
            return EdgekdError("an exported bundle carries no training data; export the run folder instead")
        try:
            return build_data(RecipeConfig.model_validate(self.run.state["config"]).data)
        except EdgekdError as err:
            return err
