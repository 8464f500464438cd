"""`edgekd export`: a finished run -> a deploy bundle, written whole or not at all.

The format table (`formats`) says which plug-ins run, in order. The bundle is built in a hidden
folder beside its destination and moved into place only when every format has written its files
(every graph passed `onnx.checker` and its parity check), so a failed or interrupted export leaves
nothing half-written (and an existing bundle untouched unless `overwrite`). A format that
`extends_bundles` (TensorRT engines) may instead add to an exported bundle in place.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

import onnx

from edgekd.bundle import Manifest, is_bundle, read_manifest, write_manifest
from edgekd.bundle.names import GRAPH_SUFFIX
from edgekd.errors import EdgekdError
from edgekd.export.formats import FORMATS, chain_of, check_request, format_names
from edgekd.export.job import ExportJob, TrainedRun


def default_out(run_dir: Path) -> Path:
    return Path("export") / run_dir.resolve().name


def export(source: str | Path, fmt: str | Sequence[str], *, log: Callable[[str], None] = print, **options: Any) -> Path:
    """Export the run (or, for a format that extends bundles, the bundle) at `source` as `fmt` (one format, or
    several comma-separated or listed, all in one bundle); returns the bundle folder."""
    source = Path(source)
    opts = check_request(fmt, options)
    requested = format_names(fmt)
    opts["format"] = ",".join(requested)
    if is_bundle(source):
        if len(requested) > 1 or not FORMATS[requested[0]].extends_bundles:
            takes = [f.name for f in FORMATS.values() if f.extends_bundles]
            raise EdgekdError(f"{source} is already an exported bundle; export the run folder it came from (runs/<name>) "
                              f"as {opts['format']}, or add to this bundle with --format {' / '.join(takes)}")
        return _extend(source, requested[0], opts, log)
    checkpoint, results = source / "checkpoints" / "best.pt", source / "results.json"
    if not checkpoint.is_file() or not results.is_file():
        raise EdgekdError(f"{source} is not a finished edgekd run (it needs checkpoints/best.pt and results.json); "
                          f"train it with `python -m edgekd.recipe NAME` first")
    out = Path(opts.get("out") or default_out(source))
    if out.exists() and any(out.iterdir()) and not opts.get("overwrite"):
        raise EdgekdError(f"{out} already holds a bundle; pass --overwrite to replace it, or --out for another folder")
    from edgekd.engine.model_io import load_model

    net, state = load_model(checkpoint)
    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        job = ExportJob(staging, opts, log, run=TrainedRun(net, state, json.loads(results.read_text())))
        files: list[str] = []
        for step in chain_of(requested):
            files += step.add()(job)
        assert job.manifest is not None
        job.manifest.files = {name: "" for name in files}
        _embed_manifest(staging, job.manifest)
        write_manifest(staging, job.manifest)
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"bundle written: {out} ({len(job.manifest.files)} files)")
    return out


def _extend(bundle: Path, fmt: str, opts: dict[str, Any], log: Callable[[str], None]) -> Path:
    job = ExportJob(bundle, opts, log, manifest=read_manifest(bundle))
    added = FORMATS[fmt].add()(job)
    job.manifest.files = {**job.manifest.files, **{name: "" for name in added}}
    write_manifest(bundle, job.manifest)
    return bundle


def _embed_manifest(folder: Path, manifest: Manifest) -> None:
    """Copy the manifest (without the file hashes, which cannot include themselves) into each graph's metadata."""
    text = json.dumps(manifest.to_json_dict(with_files=False))
    for name in (n for n in manifest.files if n.endswith(GRAPH_SUFFIX)):
        model = onnx.load(str(folder / name))
        del model.metadata_props[:]
        entry = model.metadata_props.add()
        entry.key, entry.value = "edgekd_manifest", text
        onnx.save(model, str(folder / name))


def _move_into_place(staging: Path, out: Path) -> None:
    """Swap the finished bundle in; an old bundle is removed only after the new one is in place."""
    old = out.parent / f".{out.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)
