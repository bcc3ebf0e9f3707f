"""bisenet.engine.logs: lines to the console and log.txt on the main process, metrics.jsonl for
tools, read back by read_metrics (the curves drawn from it: test_plots.py)."""
import json
import re

import pytest

from bisenet.engine.logs import RunLog, read_metrics
from bisenet.outputs import OutputError


def test_lines_reach_the_console_at_once_and_the_files_once_opened_only_on_the_main_process(tmp_path, capsys):
    log = RunLog(tmp_path / "main")
    log.info("resumed from checkpoint_000004.pth at iteration 4")
    log.record(iteration=1, loss=2.5)
    assert "resumed from checkpoint_000004.pth at iteration 4\n" in capsys.readouterr().out
    assert not (tmp_path / "main").exists()  # a launch refused now leaves nothing behind
    log.open_files()
    log.warning("2 bad sample(s) were skipped")
    log.record(iteration=2, loss=2.0)
    log.close()
    assert "warning: 2 bad sample(s)" in capsys.readouterr().out
    text = (tmp_path / "main" / "log.txt").read_text().splitlines()
    assert text[0].endswith("] resumed from checkpoint_000004.pth at iteration 4") and text[0].startswith("[20")
    assert text[1].endswith("] warning: 2 bad sample(s) were skipped") and len(text) == 2
    records = [json.loads(line) for line in (tmp_path / "main" / "metrics.jsonl").read_text().splitlines()]
    assert records == [{"iteration": 1, "loss": 2.5}, {"iteration": 2, "loss": 2.0}]

    never_opened = RunLog(tmp_path / "refused")
    never_opened.info("refused")
    never_opened.close()
    assert not (tmp_path / "refused").exists()

    other = RunLog(tmp_path / "other", enabled=False)
    other.info("not shown")
    other.record(iteration=1)
    other.open_files()
    other.close()
    assert capsys.readouterr().out == "refused\n" and not (tmp_path / "other").exists()


def test_two_runs_in_one_process_do_not_mix(tmp_path):
    first, second = RunLog(tmp_path / "a"), RunLog(tmp_path / "b")
    first.open_files()
    second.open_files()
    first.info("one")
    second.info("two")
    first.close()
    second.close()
    assert "two" not in (tmp_path / "a" / "log.txt").read_text()
    assert "one" not in (tmp_path / "b" / "log.txt").read_text()


def test_read_metrics_keeps_the_latest_record_of_an_iteration_and_skips_notes(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [{"iteration": 1, "loss": 3.0}, {"iteration": 2, "loss": 2.0}, {"iteration": 2, "loss": 1.5},
               {"iteration": 3, "skipped_step": "a gradient", "loss_scale": 32768.0}, {"iteration": 2, "miou": 0.5}]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "\n")
    train, evals = read_metrics(str(path))
    assert train == [{"iteration": 1, "loss": 3.0}, {"iteration": 2, "loss": 1.5}]
    assert evals == [{"iteration": 2, "miou": 0.5}]


def test_damaged_lines_of_a_killed_run_are_skipped_and_named(tmp_path):
    path = tmp_path / "metrics.jsonl"
    # Killed mid-write at iteration 2, then resumed: its record runs into the resumed one.
    path.write_text('{"iteration": 1, "loss": 3.0}\n{"iteration": 2, "lo{"iteration": 2, "loss": 2.5}\n'
                    '{"iteration": 3, "loss": 2.0}\n{"iteration": 4, "lo')
    with pytest.warns(UserWarning, match=r"skipped 2 damaged line\(s\) \(2, 4\)"):
        train, _ = read_metrics(str(path))
    assert [r["iteration"] for r in train] == [1, 3]


def test_log_files_that_cannot_be_opened_are_named(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").mkdir()  # a folder where the file goes
    log = RunLog(tmp_path / "run", console=False)
    with pytest.raises(OutputError, match=re.escape(f"cannot write {tmp_path / 'run' / 'metrics.jsonl'}")):
        log.open_files()
    log.close()
