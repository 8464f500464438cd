"""`edgekd report`: seeds grouped into mean ± std, both checkpoints tabled, plots written, bad input named."""
import json
import statistics

from conftest import run_cli

EXITS = [{"index": 1, "stage": 1, "channels": 8, "stride": 1, "params": 30000, "flops": 20_000_000, "cumulative_flops": 20_000_000},
         {"index": 2, "stage": 2, "channels": 16, "stride": 2, "params": 70000, "flops": 40_000_000, "cumulative_flops": 41_000_000}]


def _run(folder, name, method, best, last):
    def split(acc):  # exits 1 and 2, the mean-softmax ensemble, and the mean-logit one where the run has it
        logit = {"ensemble_logit_top1": acc[3]} if len(acc) > 3 else {}
        return {"top1": acc[:2], "top5": [99.0, 99.0], "ensemble_top1": acc[2], "ensemble_top5": 99.0, "images": 100, **logit}
    folder.mkdir(parents=True)
    results = {"name": name, "method": method, "exits": EXITS,
               "best": {"epoch": 3, "val": split(best), "test": split(best)}, "last": {"epoch": 4, "val": split(last), "test": split(last)}}
    (folder / "results.json").write_text(json.dumps(results))


def test_report_groups_seeds_and_writes_plots(tmp_path):
    runs = tmp_path / "runs"
    _run(runs / "kd_r18", "kd_r18", "kd", [50.0, 60.0, 62.0, 61.0], [49.0, 59.0, 61.0, 60.0])
    _run(runs / "kd_r18-seed1", "kd_r18-seed1", "kd", [54.0, 64.0, 66.0, 63.0], [53.0, 63.0, 65.0, 62.0])
    _run(runs / "ce_r18", "ce_r18", "ce", [40.0, 50.0, 52.0], [39.0, 49.0, 51.0])  # recorded before the mean-logit ensemble
    _run(runs / "teachers" / "resnet34-x", "teacher", "ce", [70.0, 80.0, 81.0], [69.0, 79.0, 80.0])  # not a run: its own table
    result = run_cli("report", str(runs), "--out", str(tmp_path / "rep"))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "rep" / "report.md").read_text()
    kd_row = next(line for line in text.splitlines() if line.startswith("|") and "kd_r18" in line and "0,1" in line)
    std = statistics.stdev([50.0, 54.0])
    assert f"52.00 ± {std:.2f}" in kd_row and "64.00 ± 2.83" in kd_row
    assert kd_row.rstrip(" |").endswith("62.00 ± 1.41")  # the mean-logit ensemble: mean of 61 and 63
    last_section = text.split("## Last epoch")[1]
    assert "51.00 ± 2.83" in last_section  # kd exit 1, last epoch: mean of 49 and 53
    ce_row = next(line for line in last_section.splitlines() if "ce_r18" in line)
    assert [c.strip() for c in ce_row.split("|")[1:-1]] == ["ce_r18", "ce", "0", "39.00", "49.00", "51.00", "-"]  # one seed: no ±
    assert "0.07M" in text and "41.0" in text  # params and early-exit-path FLOPs of exit 2
    teachers = text.split("## Teachers")[1].split("## Plots")[0]
    assert "teacher" not in text.split("## Teachers")[0].replace("teachers", "")  # no teacher row among the students
    teacher_row = next(line for line in teachers.splitlines() if "resnet34-x" in line)
    assert [c.strip() for c in teacher_row.split("|")[1:-1]] == ["resnet34-x", "ce", "2", "70.00 / 80.00", "80.00"]  # best weights
    for png in ("accuracy_per_exit.png", "accuracy_vs_flops.png"):
        assert (tmp_path / "rep" / png).read_bytes()[:4] == b"\x89PNG"


def test_report_names_bad_input(tmp_path):
    missing = run_cli("report", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = run_cli("report", str(tmp_path / "empty"))
    assert empty.returncode == 2 and "no finished run" in empty.stderr
