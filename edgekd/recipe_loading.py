"""Recipes as the pipeline takes them: the schema of `edgekd.config`, plus the check that every
name a recipe uses is registered (dataset, models, heads, the method and its parameters, the
export formats), so a typo fails before any work with the closest valid name.
"""
from __future__ import annotations

from edgekd.config import RecipeConfig, read_yaml, recipe_path, resolve
from edgekd.data import DATASETS
from edgekd.data.batch_augment import PADDING
from edgekd.data.transforms import resolve_preset
from edgekd.engine.teacher_cache import cache_refusal
from edgekd.errors import EdgekdError
from edgekd.export.formats import check_request
from edgekd.methods import METHODS, build_params
from edgekd.models import MODELS, create_model
from edgekd.models.heads import head_kinds
from edgekd.models.sources import check_library_name, library_of


def check_names(config: RecipeConfig) -> None:
    """Registry names (dataset, models, heads, method and its parameters), and a teacher cache the method
    cannot use, fail here, before any work."""
    DATASETS.get(config.data.name)
    for model in [config.student] + [t.model for t in config.teachers]:
        if library_of(model.name) is None:
            MODELS.get(model.name)
        else:
            check_library_name(model.name)
        if isinstance(model.head, str):
            head_kinds(model.head)
        else:  # a list must also match the early exits, which only the built model knows; create_model checks both
            create_model(model.name, num_classes=2, exits=model.exits, head=model.head,
                         image_size=config.data.image_size, width=model.width)
    build_params(config.method)
    if config.teachers and config.train.teacher_cache_views:
        batched = resolve_preset(config.data.augment, config.data.image_size) in PADDING
        refusal = cache_refusal(METHODS.get(config.method.name), batched, config.train.progressive_resize is not None)
        if refusal:
            raise EdgekdError(refusal)
    if config.export is not None:
        check_request(config.export.format, config.export.options())


def resolve_recipe(raw: dict, *, profile: str | None = None, overrides: list[str] = (), source: str = "recipe") -> RecipeConfig:
    """`edgekd.config.resolve`, then `check_names`."""
    config = resolve(raw, profile=profile, overrides=overrides, source=source)
    check_names(config)
    return config


def load_recipe(name: str, *, profile: str | None = None, overrides: list[str] = ()) -> RecipeConfig:
    """Load recipes/NAME.yaml (or a path), apply `profile` and `key=value` overrides, validate."""
    path = recipe_path(name)
    raw = read_yaml(path)
    raw.setdefault("name", path.stem)
    return resolve_recipe(raw, profile=profile, overrides=list(overrides), source=path.stem)
