"""The bundle manifest (`manifest.json`), typed: what the exporters write and the runtime reads.

Version 2. `migrate` turns the version-1 manifests of earlier bundles into this form, so they keep
loading. Every section refuses fields it does not know, so a typo in a hand-edited manifest is
named instead of ignored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from edgekd.bundle import names
from edgekd.bundle.preprocess import PreprocessSpec

SCHEMA_VERSION = 2
FP32 = "fp32"
FP16 = "fp16"
# The reduced-precision graph sets a bundle can hold, and the export that writes each.
# The tests `calibrate --confidence` can certify a target drop with (runtime.drop_tests).
DropTest = Literal["exact", "betting"]
PRECISION_FORMATS = {FP16: "onnx-fp16", "int8": "onnx-int8", "int8-u8s8": "onnx-int8 --int8-scheme u8s8"}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(Section):
    """The first segment's input, batch axis left out."""

    name: str = names.IMAGE
    shape: tuple[int, int, int]
    dtype: Literal["float32"] = "float32"
    layout: Literal["NCHW"] = "NCHW"


class Source(Section):
    """The training run a bundle was exported from."""

    run: str
    method: Optional[str] = None
    model: dict[str, Any]
    checkpoint: str = "best"
    epoch: Optional[int] = None


class ValidationRule(Section):
    """How the run carved validation from train (`edgekd.bundle.splits.validation_split`)."""

    name: Optional[str] = None
    val_size: Optional[float] = None
    seed: Optional[int] = None


class ExitInfo(Section):
    """Where exit `index` sits and what it costs for one image (`MultiExitNet.exit_info` measures it).

    `params`/`flops`: trunks up to this exit plus this head (the exit used alone).
    `cumulative_flops`: the early-exit path, which also ran every earlier head.
    """

    index: int
    stage: int
    channels: int
    stride: int
    params: int
    flops: int
    cumulative_flops: int

    def to_dict(self) -> dict[str, int]:
        return self.model_dump()


class ExitSpec(ExitInfo):
    """An exit as the bundle records it: its cost, the feature map its segment hands on, its validation top-1."""

    feature_shape: tuple[int, ...]
    val_top1: Optional[float] = None


class GraphEntry(Section):
    file: str
    inputs: list[str]
    outputs: list[str]


class Parity(Section):
    """An FP32 graph's outputs against PyTorch's on random inputs at several batch sizes."""

    batches: list[int]
    max_abs_logit_diff: float
    max_abs_diff: float
    argmax_equal: bool


class Accuracy(Section):
    """Top-1 (%) of every exit and of the mean-softmax ensemble, on `images` validation images."""

    top1: list[float]
    ensemble_top1: float
    images: int


class ExitAgreement(Section):
    """One exit of a reduced-precision graph set against FP32, on the same validation images."""

    max_abs_logit_diff: float
    argmax_agreement: float  # fraction of images with the same top-1 class


class Policy(Section):
    """The exit policy `edgekd calibrate` chose, and what it measured on validation."""

    name: str
    temperatures: list[float]
    running_ensemble: bool = False  # early exits answer with the geometric ensemble of the exits so far (runtime.trail)
    agreement: bool = False  # an early exit's score is 0 where its top-1 class differs from the previous exit's
    final_ensemble: bool = False  # the final exit answers with the geometric ensemble of every exit (runtime.trail)
    # a learned gate (runtime.gate) scores the early exits: per early exit, its weights over GATE_FEATURES, then the bias
    gate: list[list[float]] = Field(default_factory=list)
    objective: Literal["target_drop", "budget"]
    target_drop: Optional[float] = None
    budget: Optional[float] = None
    margin: float = 0.0
    confidence: Optional[float] = None
    val_images: int
    val_accuracy: float
    val_final_exit_accuracy: float
    val_mean_cost: float
    val_exit_counts: list[int]
    binomial_se: float
    drop_se: float
    auroc: list[Optional[float]] = Field(default_factory=list)  # each early exit's drop-event AUROC where the policy was chosen (None: no drop event there)
    search_images: Optional[int] = None  # with a confidence level: the val_ figures are then the certify half's
    certify_images: Optional[int] = None
    certify_p_value: Optional[float] = None
    certify_test: Optional[DropTest] = None  # which test gave certify_p_value
    points_tested: Optional[int] = None


class GraphSet(Section):
    """Every graph again at another precision (FP16, INT8), in `dir`, under the FP32 graphs' file names."""

    dir: str
    files: list[str]
    method: str
    accuracy: Accuracy  # as onnxruntime's CPU kernels run the graphs on the exporting machine
    fp32_accuracy: Accuracy
    # INT8: the Q/DQ arithmetic in float32 (no kernel fusion), what the graphs themselves compute and TensorRT's
    # INT8 approximates; `accuracy` falls below it where the CPU's integer kernels round differently
    simulated_accuracy: Optional[Accuracy] = None
    agreement: list[ExitAgreement] = Field(default_factory=list)
    calibration_images: Optional[int] = None
    fp32_nodes: dict[str, list[str]] = Field(default_factory=dict)  # graph -> nodes kept in FP32
    # `edgekd calibrate --precision`: the policy and thresholds chosen on these graphs' own scores
    policy: Optional[Policy] = None
    thresholds: Optional[list[float]] = None


class Sample(Section):
    """Images stored in the bundle (uint8, resized and cropped)."""

    file: str
    images: int


class Example(Section):
    file: str
    label: str


class TensorRTEngines(Section):
    """Native TensorRT engines, one per segment, built on the device that runs them."""

    version: str
    device: str
    engines: dict[str, str]
    precision: str
    max_batch: int


class Manifest(Section):
    """Everything a device needs to know about a bundle; `files` maps each file to its sha256."""

    schema_version: Literal[2] = SCHEMA_VERSION
    format: str
    edgekd_version: str
    created: str
    opset: int
    source: Source
    input: InputSpec
    preprocess: PreprocessSpec
    classes: list[str]
    validation: ValidationRule = Field(default_factory=ValidationRule)
    exits: list[ExitSpec]
    ensemble_val_top1: Optional[float] = None
    graphs: dict[str, GraphEntry]
    parity: dict[str, Parity] = Field(default_factory=dict)
    precisions: dict[str, GraphSet] = Field(default_factory=dict)
    tensorrt: Optional[TensorRTEngines] = None
    validation_sample: Optional[Sample] = None
    calibration_sample: Optional[Sample] = None
    examples: list[Example] = Field(default_factory=list)
    policy: Optional[Policy] = None
    thresholds: Optional[list[float]] = None
    files: dict[str, str] = Field(default_factory=dict)

    @property
    def num_exits(self) -> int:
        return len(self.exits)

    def operating_point(self, precision: str) -> tuple[Optional[Policy], Optional[list[float]]]:
        """The calibrated policy and thresholds for the graphs of `precision`: their own where
        `edgekd calibrate --precision` chose them on those graphs' scores, else the FP32 ones."""
        own = self.precisions.get(precision)
        if own is not None and own.thresholds:
            return own.policy, own.thresholds
        return self.policy, self.thresholds

    @property
    def precision_names(self) -> list[str]:
        """The precisions whose ONNX graphs the bundle holds, FP32 first."""
        return [FP32, *self.precisions]

    def graph_path(self, bundle: Path, name: str, precision: str = FP32) -> Path:
        """Where graph `name` of `precision` lies in the bundle folder."""
        folder = bundle if precision == FP32 else bundle / self.precisions[precision].dir
        return folder / self.graphs[name].file

    def segment_input_shape(self, k: int) -> tuple[int, ...]:
        """What segment k reads, without the batch axis."""
        return tuple(self.input.shape) if k == 1 else tuple(self.exits[k - 2].feature_shape)

    def input_shapes(self, graph: str) -> dict[str, tuple[int, ...]]:
        """Each input of graph `graph` by name, without the batch axis: the image, or the feature map a
        segment reads, and for a row-gathering segment `rows` too (no axis of its own: one index a row)."""
        k = int(names.exit_of(graph) or 0)
        if names.is_rows_segment(graph):
            return {names.segment_input(k): self.segment_input_shape(k), names.ROWS: ()}
        if names.is_segment(graph):
            return {names.segment_input(k): self.segment_input_shape(k)}
        return {names.IMAGE: tuple(self.input.shape)}

    def exit_costs(self) -> list[float]:
        """FLOPs of leaving at each exit (earlier heads included), as a fraction of the plain model."""
        full = self.exits[-1].flops
        return [e.cumulative_flops / full for e in self.exits]

    def to_json_dict(self, *, with_files: bool = True) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude=None if with_files else {"files"})


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """A manifest of any earlier schema version, in version 2's form (files and hashes unchanged)."""
    version = raw.get("schema_version")
    if version == 1:
        raw = _from_v1(raw)
    return raw


def _from_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 1 named each exit's graphs inside the exit, kept the INT8 graphs (U8S8) under `int8` with
    the calibration images among their files, and had no other precisions."""
    out = {k: v for k, v in raw.items() if k != "int8"}
    out["schema_version"] = SCHEMA_VERSION
    out["exits"] = [{k: v for k, v in e.items() if k not in ("segment", "prefix")} for e in raw["exits"]]
    int8 = raw.get("int8")
    if int8:
        calibration = [f for f in int8["files"] if not f.endswith(names.GRAPH_SUFFIX)]
        out["precisions"] = {"int8-u8s8": {
            "dir": int8["dir"], "files": [f for f in int8["files"] if f.endswith(names.GRAPH_SUFFIX)],
            "method": int8.get("quantization", "static QDQ, per-channel, U8S8"),
            "accuracy": int8["val_accuracy"]["int8"], "fp32_accuracy": int8["val_accuracy"]["fp32"],
            "calibration_images": int8.get("calibration_images")}}
        if calibration:
            out["calibration_sample"] = {"file": calibration[0], "images": int8.get("calibration_images") or 0}
    return out
