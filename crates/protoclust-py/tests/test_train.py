"""train(): dict and file configs, overrides, metrics, the step callback, stop and resume, and
errors with the command line's messages."""

from __future__ import annotations

import numpy as np
import pytest

import protoclust as pc
from conftest import read_safetensors, run_cli, tiny_swav


def model_tensors(ck) -> dict[str, np.ndarray]:
    return {k: v for k, v in read_safetensors(ck).items() if k.startswith("model/")}


def test_train_from_a_dict_logs_every_step(cifar_256, tmp_path):
    seen = []
    run = pc.train(tiny_swav(cifar_256, tmp_path / "run"), {"train.epochs": 1},
                   progress=False, callback=seen.append, threads=2)
    assert run.checkpoint.exists() and run.iterations == 8 and not run.stopped
    assert [e["iteration"] for e in seen] == list(range(1, 9))
    assert all(e["total"] == 8 and np.isfinite(e["loss"]) for e in seen)
    steps = [m for m in run.metrics if m["kind"] == "step"]
    assert [m["iteration"] for m in steps] == list(range(1, 9))
    assert [m["loss"] for m in steps] == pytest.approx([e["loss"] for e in seen])
    assert run.model.method == "swav" and run.model.iteration == 8


def test_a_callback_returning_false_stops_and_the_run_resumes_identically(tmp_path):
    cfg = tiny_swav(None, tmp_path / "whole", train={"epochs": 2})
    whole = pc.train(cfg, progress=False, threads=2)
    assert whole.iterations == 4

    part_dir = tmp_path / "part"
    cfg_part = tiny_swav(None, part_dir, train={"epochs": 2})
    stopped = pc.train(cfg_part, progress=False, threads=2,
                       callback=lambda e: e["iteration"] < 3)
    assert stopped.stopped and stopped.iterations == 3
    resumed = pc.train(cfg_part, resume=True, progress=False, threads=2)
    assert resumed.iterations == 4 and not resumed.stopped

    a, b = model_tensors(whole.checkpoint), model_tensors(resumed.checkpoint)
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_a_callback_exception_is_raised_after_last_is_written(tmp_path):
    def boom(e):
        if e["iteration"] == 1:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        pc.train(tiny_swav(None, tmp_path / "r"), progress=False, callback=boom)
    assert (tmp_path / "r" / "checkpoints" / "last.safetensors").exists()
    assert pc.Model.load(tmp_path / "r" / "checkpoints" / "last.safetensors").iteration == 1


def test_a_bad_config_file_raises_config_error_with_the_cli_message(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('method = "swav"\n[swav]\nprototypes = "many"\n')
    proc = run_cli("train", str(bad), cwd=tmp_path)
    assert proc.returncode == 1
    cli_line = proc.stderr.strip().splitlines()[-1]
    assert cli_line.startswith("error: ")
    with pytest.raises(pc.ConfigError) as e:
        pc.train(bad, progress=False)
    assert f"error: {e.value}" == cli_line
    assert "swav.prototypes" in str(e.value) and "\n" not in str(e.value)


def test_dict_and_override_errors_name_the_field(tmp_path):
    with pytest.raises(pc.ConfigError, match=r"config dict: swav\.prototypes"):
        pc.train({"swav": {"prototypes": "many"}}, progress=False)
    with pytest.raises(pc.ConfigError, match="method"):
        pc.train({"method": "simclr"}, progress=False)
    with pytest.raises(pc.ConfigError, match=r'overrides\["train..epochs"\]: empty key segment'):
        pc.train(tiny_swav(None, tmp_path), {"train..epochs": 1}, progress=False)
    assert issubclass(pc.ConfigError, pc.ProtoclustError)


def test_a_config_refused_against_its_data_is_a_config_error(tmp_path):
    cfg = tiny_swav(None, tmp_path / "r")
    cfg["swav"]["freeze_prototypes_iterations"] = 100
    with pytest.raises(pc.ConfigError, match="swav.freeze_prototypes_iterations = 100"):
        pc.train(cfg, progress=False)


def test_missing_data_raises_data_error(tmp_path):
    cfg = tiny_swav(tmp_path / "nope.bin", tmp_path / "r")
    with pytest.raises(pc.DataError, match="nope.bin"):
        pc.train(cfg, progress=False)


def test_progress_bar_runs_with_tqdm(tmp_path, capsys):
    pytest.importorskip("tqdm")
    run = pc.train(tiny_swav(None, tmp_path / "r"), progress=True)
    assert run.iterations == 2
    assert "protoclust" in capsys.readouterr().err


def test_ctrl_c_saves_last_raises_keyboard_interrupt_and_resumes(tmp_path):
    """SIGINT while Rust trains (GIL released): the next step's signal check stops the run."""
    import subprocess
    import sys
    import textwrap

    cfg = tiny_swav(None, tmp_path / "r", train={"epochs": 200})
    code = textwrap.dedent(f"""
        import os, signal, threading, protoclust as pc
        # Python's own Ctrl-C handler, as in a terminal: a child of a background job inherits
        # SIGINT ignored, and Python then installs none.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        first, sent = threading.Event(), threading.Event()
        def cb(e):
            # The first step's callback returns only once the signal is pending, so the run
            # cannot end before it (a fast run on a loaded machine once did).
            if not first.is_set():
                first.set()
                sent.wait(60)
        def kill():
            first.wait()
            os.kill(os.getpid(), signal.SIGINT)
            sent.set()
        threading.Thread(target=kill, daemon=True).start()
        try:
            pc.train({cfg!r}, progress=False, callback=cb, threads=1)
        except KeyboardInterrupt:
            print("interrupted")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert out.stdout.strip() == "interrupted", out.stderr
    last = tmp_path / "r" / "checkpoints" / "last.safetensors"
    done = pc.Model.load(last).iteration
    assert 1 <= done < 400
    seen = []
    resumed = pc.train(cfg, resume=True, progress=False,
                       callback=lambda e: seen.append(e["iteration"]) or len(seen) < 2)
    assert seen == [done + 1, done + 2] and resumed.iterations == done + 2
