"""bench/gpu_check.sh and bench/gpu_check.py (issue #15 item 6) at toy sizes on the CPU, so that
the prepared GPU check cannot rot: the wrapper runs the script through every phase (HF engine
rollouts, SFT and GRPO variants, the shared-prefix equality check) with every stubbable package
replaced by a sealed stand-in, as on the bare GPU machine; and the tokenizer files it carries are
the small ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_runs_every_phase_on_cpu_with_the_bare_machines_imports(tmp_path: Path) -> None:
    env = {**os.environ, "GPU_CHECK_DEVICE": "cpu", "PYTHON": sys.executable, "OUT": str(tmp_path)}
    env.setdefault("TOOLENV_TORCH_THREADS", "1")
    done = subprocess.run(
        ["bash", "bench/gpu_check.sh", "--tokenizer", "none", "--hide", "all"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert summary["ok"] and not summary["skipped"]
    phases = [record["phase"] for record in summary["records"]]
    assert phases.count("generate") == 2 and phases.count("sft") == 4
    assert phases.count("grpo") == 8 and phases.count("equality") == 2
    assert not [record for record in summary["records"] if "error" in record]
    assert all(record["ok"] for record in summary["records"] if record["phase"] == "equality")
    # the project's import of gymnasium (toolenv/__init__.py) is served by a stand-in, unused
    assert "gymnasium" in summary["stubbed"]
    for record in summary["records"]:
        if record["phase"] in ("sft", "grpo"):
            assert record["plan_update_bytes"] > 0 and record["tokens_per_s"] > 0


@pytest.mark.slow
def test_prepared_tokenizer_assets_are_small_and_load(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(ROOT / "bench"))
    if not (gpu_check.SMOLLM2_FOLDER / "tokenizer_config.json").is_file():
        pytest.skip("SmolLM2 is not on this machine")
    total = gpu_check.prepare_assets(gpu_check.SMOLLM2_FOLDER, tmp_path / "assets")
    assert total < 8 * 2**20  # far inside the 64 MiB a GPU run may carry
    assert not (tmp_path / "assets" / "model.safetensors").exists()
    tokenizer, markers = gpu_check.load_markers(str(tmp_path / "assets"), 0)
    assert markers.vocab == len(tokenizer) and markers.eom in markers.specials
    assert markers.prompt_tail[-1] != markers.eom and markers.low > max(markers.specials)
