"""Running a study: train each label's method (resumably), evaluate it in distribution and on
the OOD variants (resumably, through the evaluation runner), then write the report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from envs._official import select_version, selected_version
from evaluators.runner import RunConfig, run_eval, score_and_report
from toolenv.data import data_version
from toolenv.inference import GenerationConfig
from toolenv.registration import make_variant
from toolenv.selection import select_tasks
from trainers.config import apply_data_version, check_cpu_sizes
from trainers.study.config import Study
from trainers.study.curriculum import curriculum_tasks, train_part_tasks
from trainers.study.report import carried_rows, check_report_keeps, finished_labels, write_report


def _filter_apis(tasks: Sequence[Any], apis: Sequence[str]) -> list[Any]:
    if not apis:
        return list(tasks)
    wanted = set(apis)
    kept = [task for task in tasks if wanted & set(task.involved_classes)]
    if not kept:
        raise ValueError(f"no task involves {', '.join(sorted(wanted))}")
    return kept


def train_label(study: Study, label: str, log: Callable[[str], None]) -> Path:
    """Train one label's method (resumably); returns its final model folder."""
    from trainers.supervision.run import run_method
    from trainers.train import model_path, train_tasks

    method = study.methods[label]
    if method is None:
        return model_path(study.config.model.path)
    config = study.config_for(label)
    tasks = _filter_apis(train_tasks(config), study.train_apis) if study.train_apis else None
    if study.curriculum is not None:  # the method trains on the cut tasks (of its part) only
        cut = curriculum_tasks(
            tasks if tasks is not None else train_tasks(config), study.curriculum, study.curriculum.seed
        )
        tasks = train_part_tasks(cut, study.curriculum)
        if not tasks:
            raise ValueError(f"{label}: the curriculum leaves no training task ({study.curriculum.describe()})")
    return run_method(config, method, study.out_dir / label / "train", tasks=tasks, log=log)


def eval_tasks(study: Study) -> list[Any]:
    """The in-distribution evaluation tasks, then each OOD variant of them. With ``apis``, the
    tasks involving them are selected first and ``limit`` then applies to those (round-robin
    over the categories from a seeded shuffle of entry indices, as ``toolenv eval`` does)."""
    settings = study.evaluation
    pool = select_tasks(
        settings.categories,
        settings.split,
        apis=settings.apis or None,
        limit=settings.limit or None,
        seed=study.config.run.seed,
    )
    if study.curriculum is not None:  # cut before the variants, so they are variants of the cuts
        pool = curriculum_tasks(pool, study.curriculum, study.curriculum.seed)
        if not pool:
            raise ValueError(f"the curriculum leaves no evaluation task ({study.curriculum.describe()})")
    return pool + [make_variant(task, spec, settings.ood_seed) for spec in study.variants().values() for task in pool]


def evaluate_label(study: Study, label: str, model_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Evaluate one model (resumably) into ``OUT/LABEL/eval``; returns its report dict."""
    from toolenv.inference import load_model

    settings = study.evaluation
    out = study.out_dir / label / "eval"
    rollout = study.config.rollout  # the same context budget as in training
    generation = GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        temperature=0.0,
        max_prompt_tokens=rollout.max_prompt_tokens + rollout.max_response_tokens,
    )
    config = RunConfig(
        model=str(model_dir),
        call_format=study.config.data.call_format,
        categories=tuple(settings.categories),
        split=settings.split,
        limit=settings.limit or None,
        max_steps_per_turn=study.config.rollout.max_steps_per_turn,
        batch_size=settings.batch_size,
        seed=study.config.run.seed,
        generation=generation.to_dict(),
        data_version=data_version(),
        ood=tuple(study.variants().values()),
        ood_seed=settings.ood_seed,
    )
    # the runner plays (or resumes) the study's own task list; the model loads only if needed
    trajectories = run_eval(
        lambda: load_model(str(model_dir), engine=settings.engine, generation=generation),
        config,
        out,
        command=f"toolenv study {study.source} ({label}; apis={settings.apis})",
        progress=progress,
        tasks=eval_tasks(study),
    )
    meta = {
        "model": {"name": label, "path": str(model_dir)},
        "call_format": config.call_format,
        "seed": config.seed,
        "ood": list(config.ood),
        "ood_seed": config.ood_seed,
        "command": f"toolenv study {study.source}",
        "data_version": config.data_version,
        "config": config.to_dict(),
    }
    score_and_report(out, trajectories, meta)
    return json.loads((out / "report.json").read_text())


def _say(text: str) -> None:
    print(f"[study] {text}", file=sys.stderr, flush=True)


def run_study(
    study: Study,
    only: Sequence[str] | None = None,
    report_only: bool = False,
    log: Callable[[str], None] | None = None,
    force: bool = False,
) -> Path:
    """Train and evaluate every label (or those in ``only``), then write the report. With
    ``report_only`` the report is rebuilt from the finished runs, and refused when a selected
    label has none; a report with fewer finished labels than the one in ``report_dir`` is
    refused before anything runs. A label whose run is gone but whose row in ``report_dir`` has
    the same settings is carried over and counts as finished (:func:`.report.carried_rows`).
    ``force`` lifts both refusals."""
    apply_data_version(study.config)  # the study's release (its base config's), for every phase
    say = log or _say
    unknown = sorted(set(only or ()) - set(study.labels))
    if unknown:
        raise ValueError(f"unknown label(s) {', '.join(unknown)}; this study has: {', '.join(study.labels)}")
    selected = [label for label in study.labels if not only or label in only]
    finished = finished_labels(study)
    if report_only and not force:
        carried = carried_rows(study, finished)  # a run gone, its row kept in report_dir
        missing = [label for label in selected if label not in finished and label not in carried]
        if missing:
            # the usual cause: a relative out_dir read from another folder than the one the runs were made in
            where = "" if study.out_dir.is_absolute() else f"; out_dir is relative to the current folder {Path.cwd()}"
            raise ValueError(
                f"--report-only: no finished evaluation for {', '.join(missing)} in {study.out_dir} "
                f"(LABEL/eval/report.json{where}); run `toolenv study "
                f"{study.source}` to produce them, or pass --force to write a table without them"
            )
    if not force:
        # checked before training too: finding out after hours of training would be too late
        check_report_keeps(study, finished if report_only else sorted(set(finished) | set(selected)))
    if not report_only:
        check_study_sizes(study, selected)
        for label in selected:
            say(f"{label}: training")
            if trains_in_fresh_process(study, label):
                train_label_in_fresh_process(study, label)
            final = train_label(study, label, say)  # after a fresh process: finds its phases done
            say(f"{label}: evaluating {final}")
            evaluate_label(study, label, final)
    return write_report(study, force=force)


def trains_in_fresh_process(study: Study, label: str) -> bool:
    """Whether ``label`` trains in a process of its own before it is evaluated here: when the
    evaluation runs on vLLM. vLLM sizes its KV cache from the memory free when it starts, and a
    trainer's freed tensors stay in this process's heap (8.4 GB after a SmolLM2 GRPO run on
    CPU), so an evaluation in the training process is refused by vLLM's memory check."""
    return study.methods[label] is not None and study.evaluation.engine == "vllm"


def train_label_in_fresh_process(study: Study, label: str) -> None:
    """Run :func:`train_label` in a spawned process and wait for it; its memory goes back to the
    system when it exits. A ``ValueError`` there (a bad recipe) is raised here, as one line."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # not fork: no copy of this process's torch state
    errors = context.SimpleQueue()
    release = selected_version()  # the process's release, which a --data-version flag may have set
    child = context.Process(target=_train_label_child, args=(study, label, release, errors), name=f"train-{label}")
    child.start()
    child.join()
    if not errors.empty():
        raise ValueError(errors.get())
    if child.exitcode != 0:
        raise RuntimeError(f"{label}: training stopped in its process with exit code {child.exitcode} (see above)")


def _train_label_child(study: Study, label: str, release: str, errors: Any) -> None:
    try:
        select_version(release)
        train_label(study, label, _say)
    except ValueError as exc:
        errors.put(str(exc))


def check_study_sizes(study: Study, labels: Sequence[str]) -> None:
    """On a CPU, refuse labels whose training relies on the paper's GPU-sized defaults
    (:func:`trainers.config.check_cpu_sizes`); the method decides its phases' epochs (and, for
    interleaved methods, steps), so those keys do not count."""
    from trainers.train import resolve_device

    for label in labels:
        method = study.methods[label]
        config = study.config_for(label)
        if method is None or resolve_device(config.model.device).type != "cpu":
            continue
        modes = sorted({"grpo" if phase.kind == "rl" else "sft" for phase in method.plan(config.grpo.steps)})
        try:
            check_cpu_sizes(config, modes, method.decided_keys())
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
