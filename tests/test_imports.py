"""The core imports without torch (training dependencies live in an extra)."""

from __future__ import annotations

import subprocess
import sys


def test_core_packages_import_without_torch() -> None:
    code = (
        "import sys\n"
        "for blocked in ('torch', 'transformers', 'vllm'):\n"
        "    sys.modules[blocked] = None  # any import of it now raises ImportError\n"
        "import envs, toolenv, evaluators, ood_variants\n"
        "import envs.file_system, toolenv.env, toolenv.checker, toolenv.structure, toolenv.cli\n"
        "import toolenv.inference, toolenv.inference.chat, toolenv.inference.hf_engine, toolenv.inference.vllm_engine\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
