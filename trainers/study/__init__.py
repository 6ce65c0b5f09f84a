"""``toolenv study``: train a list of supervision methods on one model and data split, evaluate
each in distribution and on a format-OOD and a content-OOD variant, and write one comparison
table with plots.

A study file (TOML) is a training configuration (the sections of :mod:`trainers.config`,
optionally on top of a ``base`` file) plus a ``[study]`` table::

    [study]
    name = "paper-qwen2.5-1.5b"
    out_dir = "runs/study-paper"              # one folder per label: LABEL/train, LABEL/eval
    report_dir = ""                           # where the table and plots go (default: out_dir)
    base = "../paper_grpo_qwen2.5_1.5b.toml"  # optional training config, relative to this file
    methods = ["base", "vanilla", "sft_rl", "ops", "hbg", "ets", "ets_difflr", "prs"]
    train_apis = []                           # optional: train only on tasks involving these APIs

    [study.settings.prs]                      # optional, per label: the method's keys ("method"
    reflector = "builtin"                     # names it when the label is not a method name)

    [study.settings.sft_rl_hilr]              # a label of its own for a method with other settings;
    method = "sft_rl"                         # "config" overrides training-config sections for
    config = { optim = { lr = 1e-5 } }        # this label only (here: RL at 10x the paper's lr)

    [study.eval]
    categories = ["base", "miss_func", "miss_param", "long_context"]
    split = "test"
    limit = 0                                 # 0 = every task of the split
    apis = []                                 # optional: only tasks involving these APIs
    format_ood = "python_list_format"         # OOD specs (see `toolenv ood list`); "" = none
    content_ood = "rename_tools+rename_params+shuffle_schema"
    ood_seed = 0
    engine = "transformers"                   # or "vllm"
    max_new_tokens = 2048
    batch_size = 8

    [study.expected]                          # published in-distribution averages (%), shown beside ours
    vanilla = 3.50

The label ``base`` evaluates the starting model without training. Everything resumes: a method
whose phases are done is not trained again (:func:`trainers.supervision.run.run_method`), an
evaluation continues where it stopped, and the report is rebuilt from whatever is finished.
``out_dir`` and ``report_dir`` are relative to the current folder. A report never replaces one
with fewer finished labels, and ``--report-only`` refuses labels without a finished
evaluation (both checked before anything runs; ``--force`` overrides): run from another folder,
the committed tables were once overwritten with an empty one. A label whose run is gone but
whose row in ``report_dir`` was made with the same settings (``settings_sha256``: its training
config and seed, method, evaluation, curriculum and data release) counts as finished: the row
and its curves are carried over, marked ``*``, so a study runs across sittings on machines
that keep only the committed report.

Outputs in ``report_dir``: ``results.md`` (the table), ``results.json``, ``results.csv`` and
``plots/``: ``scores.png`` (in distribution vs the two OOD variants, per method),
``structure.png`` (the four structural states of the training rollouts over RL steps),
``probes.png`` (the control-token probes over RL steps), ``eval_structure.png`` (the
structural states of the evaluation messages, in distribution and under each OOD variant; also
the second table of ``results.md``) and ``reward.png`` (reward and states of the
policy's own rollouts: OPS's substituted expert rollouts are left out).

Modules: :mod:`.config` (the study file), :mod:`.run` (training and evaluation),
:mod:`.report` (tables and files), :mod:`.plots`, :mod:`.cli` (``toolenv study``).
"""

import importlib
from typing import Any

#: the names importable from ``trainers.study`` → the module that defines them. Loaded on first
#: use, so registering ``toolenv study`` (``toolenv --help``) imports none of the evaluation stack.
_EXPORTS = {
    "add_study_command": "cli",
    "BASE_LABEL": "config",
    "EvalSettings": "config",
    "Study": "config",
    "load_study": "config",
    "plot_eval_structure": "plots",
    "plot_study": "plots",
    "check_report_keeps": "report",
    "finished_labels": "report",
    "label_row": "report",
    "policy_step_metrics": "report",
    "reported_labels": "report",
    "rl_weight_change": "report",
    "table_markdown": "report",
    "training_curves": "report",
    "write_report": "report",
    "check_study_sizes": "run",
    "eval_tasks": "run",
    "evaluate_label": "run",
    "run_study": "run",
    "train_label": "run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'trainers.study' has no attribute {name!r}")
    return getattr(importlib.import_module(f"trainers.study.{_EXPORTS[name]}"), name)
