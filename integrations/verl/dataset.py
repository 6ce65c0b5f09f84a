"""verl dataset rows for BFCL tasks (verl-free): one row per task, read by verl's
``RLHFDataset`` and handed to the agent loop as keyword arguments.

Row columns: ``prompt`` (the env's first messages: the system message with the tools in the
call format, and the first user turn; verl filters and left-pads prompts by it),
``agent_name`` (``"toolenv_bfcl"``: which registered agent loop plays the row), ``data_source``,
``reward_model`` (unused: the agent loop returns the reward), ``extra_info`` (``index``,
``task_id``, ``call_format``, ``data_version``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from integrations.verifiers.episode import task_rows

AGENT_NAME = "toolenv_bfcl"
DATA_SOURCE = "bfcl_v3_multi_turn"


def verl_rows(
    categories: Sequence[str] | str | None = None,
    split: str = "train",
    limit: int | None = None,
    task_ids: Sequence[str] | None = None,
    call_format: str = "hermes",
    data_version: str | None = None,
) -> list[dict[str, Any]]:
    """The rows of the selected tasks (toolenv's selection rules and order)."""
    rows = []
    for index, row in enumerate(task_rows(categories, split, limit, task_ids, call_format, data_version)):
        rows.append(
            {
                "data_source": DATA_SOURCE,
                "agent_name": AGENT_NAME,
                "prompt": [{"role": "system", "content": row.system_prompt}, *row.prompt],
                "reward_model": {"style": "rule", "ground_truth": ""},
                "extra_info": {
                    "index": index,
                    "task_id": row.task_id,
                    "call_format": row.call_format,
                    "data_version": row.data_version,
                },
            }
        )
    return rows


def task_id_of(row: dict[str, Any]) -> str:
    """The task id of a row as the agent loop gets it (``extra_info.task_id``)."""
    extra = row.get("extra_info") or {}
    task_id = extra.get("task_id") if isinstance(extra, dict) else None
    if not task_id:
        raise ValueError("the row has no extra_info.task_id: build the dataset with integrations.verl.dataset")
    return str(task_id)


def write_parquet(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """``rows`` as a Parquet file (verl's ``data.train_files`` / ``data.val_files``)."""
    from datasets import Dataset

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows).to_parquet(str(path))
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m integrations.verl.dataset OUT_DIR [--limit N]``: train.parquet (the paper's
    train split) and test.parquet (its test split), all four categories."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="tasks per split")
    parser.add_argument("--categories", nargs="*", default=None)
    parser.add_argument("--call-format", default="hermes")
    parser.add_argument("--data-version", default=None, help="bfcl-eval release (the paper's: 2025.10.2)")
    args = parser.parse_args(argv)
    for split in ("train", "test"):
        rows = verl_rows(
            args.categories, split, args.limit, call_format=args.call_format, data_version=args.data_version
        )
        print(write_parquet(rows, args.out / f"{split}.parquet"), len(rows))


if __name__ == "__main__":
    main()
