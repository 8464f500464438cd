"""MultiExitNet: a backbone cut into stages with a classifier ("exit") after chosen stages.

The stages between two exits form a *trunk*; trunk k plus head k is segment k, the unit the
exporter turns into one graph. A single-exit teacher is a MultiExitNet with one exit, so every
method sees the same output shape.
"""
from __future__ import annotations

import copy
from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from edgekd.models.backbone import Backbone
from edgekd.models.flops import count_flops, count_params
from edgekd.models.feature_partition import partition
from edgekd.models.gradient_equilibrium import fork
from edgekd.models.heads import HEADS, HeadSpec, early_head_kinds
from edgekd.bundle.manifest import ExitInfo
from edgekd.bundle.preprocess import Preprocess


class ExitOutputs(NamedTuple):
    """Per-exit logits, the feature maps the heads read, and every stage's output, shallow -> deep.

    `stages` equals `features` when every stage has an exit; a single-exit teacher still gives all
    its stage outputs there, which is what feature-matching methods (Stagewise KD, MTKD-SSR) read.
    `stem` is the stem's output where the backbone has a separable stem (`MultiExitNet.stem`).
    """

    logits: list[Tensor]
    features: list[Tensor]
    stages: list[Tensor] = []
    stem: Optional[Tensor] = None


class Segment(nn.Module):
    """Trunk k + head k: previous feature map (or image) -> (feature_k, logits_k)."""

    def __init__(self, trunk: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.trunk, self.head = trunk, head

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feature = self.trunk(x)
        return feature, self.head(feature)


class InputConversion(nn.Module):
    """x normalized with (mean_a, std_a) -> the same pixels normalized with (mean_b, std_b)."""

    def __init__(self, given: Preprocess, wanted: Preprocess) -> None:
        super().__init__()
        std_a, mean_a = torch.tensor(given.std).view(1, 3, 1, 1), torch.tensor(given.mean).view(1, 3, 1, 1)
        std_b, mean_b = torch.tensor(wanted.std).view(1, 3, 1, 1), torch.tensor(wanted.mean).view(1, 3, 1, 1)
        self.register_buffer("scale", std_a / std_b, persistent=False)
        self.register_buffer("shift", (mean_a - mean_b) / std_b, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


class MultiExitNet(nn.Module):
    """Backbone stages with an exit after each stage listed in `exits` (1-based; the last stage
    is always an exit and uses the backbone's own classifier)."""

    def __init__(
        self, backbone: Backbone, *, exits: list[int], head: HeadSpec, num_classes: int, image_size: int,
        preprocess: Optional[Preprocess] = None, stage_features: bool = True,
    ) -> None:
        super().__init__()
        # How the weights want their images (None: the dataset's statistics, for edgekd's own backbones);
        # without stage features the model is one stage whose output is already its logits.
        self.preprocess, self.stage_features = preprocess, stage_features
        self.source_keys: dict[str, str] = {}
        self.fresh_classifier = 0  # the loaded weights' class count where their classifier was replaced
        self.input_conversion: Optional[InputConversion] = None
        # Rescale the shared trunks' gradients while training (edgekd.models.gradient_equilibrium).
        self.gradient_equilibrium = False
        # The share of each early fork's channels that only the deeper exits train (edgekd.models.feature_partition).
        self.feature_partition: Optional[float] = None
        num_stages = len(backbone.stages)
        if not exits or sorted(set(exits)) != list(exits) or exits[0] < 1 or exits[-1] != num_stages:
            raise ValueError(
                f"exits must be increasing stage numbers in 1..{num_stages} ending with {num_stages}, got {exits}"
            )
        self.exit_stages = list(exits)
        self.stem_first = backbone.stem_first
        self.num_classes, self.image_size = num_classes, image_size
        starts = [0] + self.exit_stages[:-1]
        self.trunks = nn.ModuleList(nn.Sequential(*backbone.stages[a:b]) for a, b in zip(starts, self.exit_stages))
        shapes = self._feature_shapes()
        final_ch, final_size = shapes[-1][0], shapes[-1][1]
        kinds = early_head_kinds(head, len(shapes) - 1)
        heads = [
            HEADS.get(kind)(ch, max(1, size // final_size), final_ch, num_classes)
            for kind, (ch, size) in zip(kinds, shapes[:-1])
        ]
        self.heads = nn.ModuleList([*heads, backbone.classifier])
        self._feature_channels_and_sizes = shapes
        self._exit_info: list[ExitInfo] | None = None

    @property
    def num_exits(self) -> int:
        return len(self.heads)

    @torch.no_grad()
    def _feature_shapes(self) -> list[tuple[int, int]]:
        was_training = self.training
        self.eval()
        x = torch.zeros(1, 3, self.image_size, self.image_size)
        shapes = []
        for trunk in self.trunks:
            x = trunk(x)
            shapes.append((x.shape[1], x.shape[-1] if x.ndim == 4 else 1))
        self.train(was_training)
        return shapes

    def forward(self, x: Tensor) -> ExitOutputs:
        if self.input_conversion is not None:
            x = self.input_conversion(x)
        logits, features, stages, stem = [], [], [], None
        balance = self.gradient_equilibrium and torch.is_grad_enabled() and self.num_exits > 1
        split = self.feature_partition is not None and torch.is_grad_enabled()
        for k, (trunk, head) in enumerate(zip(self.trunks, self.heads)):
            for stage in trunk:
                if stem is None and self.stem_first:
                    stem = stage[0](x)
                    x = stage[1](stem)
                else:
                    x = stage(x)
                stages.append(x)
            features.append(x)
            head_input = x
            if balance:
                head_input, x = fork(x, k, self.num_exits)
            if split and k < self.num_exits - 1:
                head_input, x = partition(head_input, x, self.feature_partition)
            logits.append(head(head_input))
        return ExitOutputs(logits, features, stages, stem)

    @property
    def stem(self) -> Optional[nn.Module]:
        """The stem (inside the first stage) where the backbone has a separable one, else None."""
        return self.stage_modules[0][0] if self.stem_first else None

    @property
    def stage_modules(self) -> list[nn.Module]:
        """The backbone's stages in order, whatever the exit layout."""
        return [stage for trunk in self.trunks for stage in trunk]

    def load_backbone(self, other: "MultiExitNet") -> None:
        """Copy the stages and final classifier of `other` (same backbone, any exits) into this net,
        e.g. to give a pretrained single-exit network early-exit heads."""
        mine, theirs = self.stage_modules, other.stage_modules
        if len(mine) != len(theirs):
            raise ValueError(f"cannot load a {len(theirs)}-stage backbone into a {len(mine)}-stage one")
        for target, source in zip(mine, theirs):
            target.load_state_dict(source.state_dict())
        self.heads[-1].load_state_dict(other.heads[-1].state_dict())

    def map_source_keys(self, module: nn.Module) -> None:
        """Remember which of this net's parameters are which of `module`'s (the library model it was cut
        from, sharing every tensor), so that `source_state_dict` can give weights back in its names."""
        names = {id(tensor): name for name, tensor in module.state_dict(keep_vars=True).items()}
        self.source_keys = {key: names[id(tensor)] for key, tensor in self.state_dict(keep_vars=True).items()
                            if id(tensor) in names}

    def source_state_dict(self) -> dict[str, Tensor]:
        """The weights of a library model in the library's own parameter names (exit heads left out):
        what `timm.create_model(...).load_state_dict` or torchvision's models read."""
        if not self.source_keys:
            raise ValueError("this model was not built from a timm or torchvision model")
        state = self.state_dict()
        return {source: state[key].detach().clone().contiguous() for key, source in self.source_keys.items()}

    def convert_inputs(self, given: Preprocess) -> None:
        """Take images normalized as `given` says and renormalize them as this model's weights expect
        (a teacher trained on other statistics than the student). A no-op when they agree."""
        wanted = self.preprocess
        if wanted is None or (tuple(wanted.mean), tuple(wanted.std)) == (tuple(given.mean), tuple(given.std)):
            self.input_conversion = None
        else:
            self.input_conversion = InputConversion(given, wanted)

    def segments(self) -> list[Segment]:
        """Trunk k + head k for each exit, sharing weights with this net (for export)."""
        return [Segment(trunk, head) for trunk, head in zip(self.trunks, self.heads)]

    @property
    def exit_info(self) -> list[ExitInfo]:
        """Channels, stride, params and FLOPs per exit (computed once, on a copy, at batch 1)."""
        if self._exit_info is None:
            self._exit_info = self._measure_exits()
        return self._exit_info

    @torch.no_grad()
    def _measure_exits(self) -> list[ExitInfo]:
        net = copy.deepcopy(self).cpu().float().eval()
        x = torch.zeros(1, 3, self.image_size, self.image_size)
        info, trunk_flops, head_flops_sum, trunk_params = [], 0, 0, 0
        for k, (trunk, head) in enumerate(zip(net.trunks, net.heads)):
            trunk_flops += count_flops(trunk, x)
            trunk_params += count_params(trunk)
            x = trunk(x)
            head_flops = count_flops(head, x)
            head_flops_sum += head_flops
            channels, size = self._feature_channels_and_sizes[k]
            info.append(
                ExitInfo(
                    index=k + 1,
                    stage=self.exit_stages[k],
                    channels=channels,
                    stride=self.image_size // size,
                    params=trunk_params + count_params(head),
                    flops=trunk_flops + head_flops,
                    cumulative_flops=trunk_flops + head_flops_sum,
                )
            )
        return info
