"""GRPO on BFCL multi-turn with TRL's GRPOTrainer and toolenv's rollout_func.

Each prompt of the batch is played as a whole BFCL episode (every user turn, tool results,
miss_func reveals) by integrations.trl.BFCLRollout; the reward is the BFCL checker's score.

    python examples/trl_grpo.py --tiny --max-steps 1                  # a random 3 M model, seconds a step
    python examples/trl_grpo.py --max-steps 10 --limit 8              # SmolLM2-135M-Instruct (embedded)
    accelerate launch --multi_gpu --num_processes 2 examples/trl_grpo.py --tiny --max-steps 2
    accelerate launch --num_processes 8 examples/trl_grpo.py --model PATH --split train

Under ``accelerate launch`` each process plays its slice of the batch with its own copy of the
policy (DDP; DeepSpeed ZeRO-3 and FSDP gather the weights for generation as TRL does). On a
machine without GPUs, ``--multi_gpu --num_processes 2`` starts two CPU processes (torchrun,
gloo); ``accelerate launch --cpu --num_processes 2`` starts only one (accelerate 1.15's ``--cpu``
launcher is the single-process one).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is marked experimental in TRL 1.16


def tiny_model(tokenizer):
    """A 2-layer random Qwen2 with SmolLM2's vocabulary (built from a config: no download)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16384,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return Qwen2ForCausalLM(config)


def load_policy(args):
    """The policy and its tokenizer: ``--tiny``, ``--model PATH``, or the embedded SmolLM2."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from toolenv.inference.smollm2 import ensure_smollm2

    path = args.model or str(ensure_smollm2(quiet=True))
    tokenizer = AutoTokenizer.from_pretrained(path)
    if args.tiny:
        return tiny_model(tokenizer), tokenizer
    return AutoModelForCausalLM.from_pretrained(path), tokenizer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a random 3 M-parameter Qwen2 (tests, smoke runs)")
    parser.add_argument("--model", help="a transformers model folder (default: the embedded SmolLM2-135M)")
    parser.add_argument("--categories", nargs="*", default=["base"], help="BFCL categories")
    parser.add_argument("--split", default="train", help="all, train or test (the paper's halves)")
    parser.add_argument("--limit", type=int, default=None, help="tasks to sample (round-robin over categories)")
    parser.add_argument("--call-format", default="hermes")
    parser.add_argument("--max-steps", type=int, default=1)
    parser.add_argument("--num-generations", type=int, default=2, help="rollouts per task (the GRPO group)")
    parser.add_argument("--per-device-batch", type=int, default=2, help="rollouts per process per step")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tokens per assistant message")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=1e-6)
    parser.add_argument("--output-dir", default="runs/trl_grpo")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import torch
    from trl import GRPOConfig, GRPOTrainer

    from integrations.trl import BFCLRollout, bfcl_dataset, bfcl_reward

    model, tokenizer = load_policy(args)
    config = GRPOConfig(
        output_dir=args.output_dir,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.per_device_batch,
        num_generations=args.num_generations,
        temperature=args.temperature,
        learning_rate=args.learning_rate,
        bf16=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=bfcl_reward,
        args=config,
        train_dataset=bfcl_dataset(args.categories, args.split, limit=args.limit),
        processing_class=tokenizer,
        rollout_func=BFCLRollout(call_format=args.call_format, max_new_tokens=args.max_new_tokens),
    )
    trainer.train()
    if trainer.accelerator.is_main_process:
        for log in trainer.state.log_history:
            if "loss" in log:
                print(
                    f"step {log['step']}: reward {log['reward']:.3f} loss {log['loss']:.4f} "
                    f"completion tokens (sampled) {log['completions/mean_length']:.0f}"
                )


if __name__ == "__main__":
    main()
