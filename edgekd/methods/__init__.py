"""Distillation methods (one file each) and how a recipe's `method:` section becomes one."""
from __future__ import annotations

from pydantic import BaseModel, ValidationError

from edgekd.config import MethodConfig
from edgekd.errors import EdgekdError
from edgekd.methods import ce, demkd, dkd, exit_heads, kd, mskd, mtkd_ssr, oto, self_kd, skd  # noqa: F401  (register methods)
from edgekd.methods.base import Method
from edgekd.methods.registry import METHODS
from edgekd.models import MultiExitNet
from edgekd.registry import closest


def build_params(method_config: MethodConfig) -> BaseModel:
    """Validate the `method:` keys against the method's parameter model, naming bad fields."""
    cls = METHODS.get(method_config.name)
    params = method_config.params
    known = list(cls.Params.model_fields)
    for key in params:
        if key not in known:
            hint = closest(key, known)
            suggestion = f"; did you mean 'method.{hint}'?" if hint else ""
            raise EdgekdError(f"unknown key 'method.{key}' for method '{method_config.name}'{suggestion} Valid: {', '.join(known) or 'none'}")
    try:
        return cls.Params.model_validate(params)
    except ValidationError as err:
        problems = "; ".join(f"method.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise EdgekdError(f"method '{method_config.name}': {problems}") from None


def build_method(method_config: MethodConfig, student: MultiExitNet, teachers: list[MultiExitNet]) -> Method:
    """The configured method, after checking it got as many teachers as it needs."""
    cls = METHODS.get(method_config.name)
    n, lo, hi = len(teachers), cls.min_teachers, cls.max_teachers
    if n < lo or (hi is not None and n > hi):
        wanted = f"exactly {lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
        raise EdgekdError(f"method '{method_config.name}' needs {wanted} teacher(s) in 'teachers:', the recipe has {n}")
    params = build_params(method_config)
    teacher_features, student_features = cls.features_read(params)
    lacking = [f"teacher {i + 1}" for i, t in enumerate(teachers) if teacher_features and not t.stage_features]
    lacking += ["the student"] if student_features and not student.stage_features else []
    if lacking:
        raise EdgekdError(f"method '{method_config.name}' reads stage features, but {' and '.join(lacking)} cannot be cut into "
                          f"stages (a ViT or another model whose forward is more than its layers in sequence). Use a logit "
                          f"method (kd, dkd, mskd, demkd with gamma: 0) or a CNN")
    return cls(params, student, teachers)


__all__ = ["METHODS", "Method", "build_method", "build_params"]
