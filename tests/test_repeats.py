"""Repeated runs (`toolenv eval --repeats K`): every episode played K times with seed + r, the
repeat in the episode key (resume, duplicates), mean ± std per category and pass^k / pass@k
checked against values computed here from the trajectories' own rewards, the estimators'
properties, per-conversation seeds down to the engine and the endpoint request, and the
command line (warning, score, export)."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from itertools import combinations
from pathlib import Path
from statistics import fmean
from typing import Any, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluators.repeats import estimate, pass_at_k, pass_hat_k
from evaluators.runner import RunConfig, RunError, episode_tasks, run_eval, run_meta, score_and_report
from evaluators.scoring import unique_episodes
from tests.fakes import ChatServer, ExpertModel, FakeOpenAIServer
from tests.test_ood_eval import VariantOracle
from toolenv.inference import Generation, GenerationConfig
from toolenv.inference.chat import EngineChatModel
from toolenv.inference.endpoint import OpenAIEndpointModel
from toolenv.trajectory import Trajectory, read_jsonl

TOOLENV = [sys.executable, "-m", "toolenv.cli"]
K = 4
SEED = 3  # its sample of tasks passes 1, 2, 3 and 4 of the 4 repeats
CONFIG = RunConfig(model="seeded", categories=("base", "miss_func"), limit=8, batch_size=5, seed=SEED, repeats=K)


def fails(task_id: str, seed: int) -> bool:
    """Whether the seeded oracle fails ``task_id`` under ``seed`` (about 40% of the pairs)."""
    return hashlib.sha256(f"{task_id}/{seed}".encode()).digest()[0] < 102


class SeededOracle(VariantOracle):
    """The oracle of each task, except that an episode whose (task, sampling seed) hashes to a
    failure gets plain replies only: repeats differ under their seeds, each reproducibly. The
    (task, seed) pairs asked for are kept in ``seen``."""

    def __init__(self, tasks: Sequence[Any]) -> None:
        super().__init__(tasks)
        self.name = "seeded"
        self.seen: set[tuple[str, int]] = set()

    def generate_seeded(self, conversations: Sequence[Any], tools: Any = None, seeds: Any = None) -> list[Any]:
        out = []
        for messages, seed in zip(conversations, seeds if seeds is not None else [0] * len(conversations)):
            task, _ = self.by_opening[json.dumps([{"role": m["role"], "content": m["content"]} for m in messages[:2]])]
            self.seen.add((task.id, seed))
            out.append("I cannot help with that." if fails(task.id, seed) else self.next_action(messages))
        return out


def episode_order(trajectory: Trajectory) -> tuple[str, str, int]:
    return str(trajectory.meta.get("ood") or ""), trajectory.task_id, trajectory.meta.get("repeat", -1)


@pytest.fixture(scope="module")
def repeated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Trajectory], dict[str, Any]]:
    """An 8-task × 4-repeat run of the seeded oracle over two categories, scored."""
    out = tmp_path_factory.mktemp("repeats") / "run"
    model = SeededOracle(episode_tasks(CONFIG))
    trajectories = run_eval(model, CONFIG, out, progress=False)
    report = json.loads(score_and_report(out, trajectories, run_meta(out))["json"].read_text())
    # every conversation of repeat r sampled with seed + r
    assert model.seen == {(t.task_id, SEED + t.meta["repeat"]) for t in trajectories}
    return out, trajectories, report


# -- independent reference values --------------------------------------------------------------


def passes_table(trajectories: Sequence[Trajectory]) -> dict[str, dict[str, list[bool]]]:
    """category -> task -> the rewards of its repeats, in repeat order (from the env's reward)."""
    table: dict[str, dict[str, list[bool]]] = {}
    for t in sorted(trajectories, key=lambda t: t.meta["repeat"]):
        table.setdefault(t.category, {}).setdefault(t.task_id, []).append(t.reward == 1.0)
    return table


def by_subsets(trials: list[bool], k: int, all_pass: bool) -> float:
    """pass^k (every one of k trials passes) or pass@k (at least one does) by enumerating every
    k-subset of the trials: the definition, not the closed form."""
    subsets = list(combinations(trials, k))
    return sum((all(s) if all_pass else any(s)) for s in subsets) / len(subsets)


def sample_std(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


# -- the run and its report ----------------------------------------------------------------


def test_every_task_is_played_k_times_with_its_repeat_recorded(repeated) -> None:
    out, trajectories, _ = repeated
    assert len(trajectories) == 8 * K
    assert sorted(t.meta["repeat"] for t in trajectories) == sorted(list(range(K)) * 8)
    assert json.loads((out / "run.json").read_text())["config"]["repeats"] == K
    # the seed decides: the fake fails exactly where its hash says, and repeats really differ
    assert all((t.reward == 1.0) == (not fails(t.task_id, SEED + t.meta["repeat"])) for t in trajectories)
    table = passes_table(trajectories)
    assert {c: len(tasks) for c, tasks in table.items()} == {"base": 4, "miss_func": 4}
    assert len({sum(trials) for tasks in table.values() for trials in tasks.values()}) >= 3


def test_mean_std_and_pass_k_agree_with_values_computed_from_the_rewards(repeated) -> None:
    _, trajectories, report = repeated
    section = report["repeats"]
    assert section["runs"] == K and section["complete"] and section["repeats"] == list(range(K))
    assert "ddof=1" in section["std"]
    table = passes_table(trajectories)
    overall_runs = [0.0] * K
    for category, tasks in table.items():
        row = section["categories"][category]
        per_run = [fmean(trials[r] for trials in tasks.values()) for r in range(K)]
        assert row["per_run"] == pytest.approx(per_run)
        assert row["mean"] == pytest.approx(fmean(per_run))
        assert row["std"] == pytest.approx(sample_std(per_run))
        for k in range(1, K + 1):
            assert row["pass^k"][str(k)] == pytest.approx(fmean(by_subsets(t, k, True) for t in tasks.values()))
            assert row["pass@k"][str(k)] == pytest.approx(fmean(by_subsets(t, k, False) for t in tasks.values()))
        assert row["pass^k"]["1"] == pytest.approx(row["pass@k"]["1"]) == pytest.approx(row["mean"])
        # the headline (pooled over the runs) is the mean of the runs
        assert report["summary"]["categories"][category]["accuracy"] == pytest.approx(row["mean"])
        overall_runs = [a + b / len(table) for a, b in zip(overall_runs, per_run)]
    overall = section["overall"]
    assert overall["mean"] == pytest.approx(fmean(overall_runs)) == pytest.approx(report["summary"]["overall"])
    assert overall["std"] == pytest.approx(sample_std(overall_runs))
    for k in range(1, K + 1):
        expected = fmean(section["categories"][c]["pass^k"][str(k)] for c in table)
        assert overall["pass^k"][str(k)] == pytest.approx(expected)
    rows = {row["task_id"]: row for row in section["tasks"]}
    assert {t: (r["passes"], r["trials"]) for t, r in rows.items()} == {
        task: (sum(trials), K) for tasks in table.values() for task, trials in tasks.items()
    }
    assert sorted(row.get("repeat") for row in report["tasks"]) == sorted(list(range(K)) * 8)


def test_markdown_and_html_show_the_mean_of_k_runs(repeated) -> None:
    out, _, report = repeated
    markdown = (out / "report.md").read_text()
    section = report["repeats"]
    base = section["categories"]["base"]
    assert f"| category | accuracy (mean of {K} runs ± std) |" in markdown
    assert f"| base | {100 * base['mean']:.2f}% ± {100 * base['std']:.2f} |" in markdown
    assert "8 tasks × 4 runs" in markdown and "ddof=1" in markdown
    header = "| category | tasks | mean of 4 runs | ± std (points) | pass^1 | pass^2 | pass^3 | pass^4 | turn credit |"
    assert header in markdown and "| category | pass@1 | pass@2 | pass@3 | pass@4 |" in markdown
    assert "Positional arguments dropped" in markdown
    page = (out / "report.html").read_text()
    assert 'id="repeats"' in page and f"mean of {K} runs" in page
    assert page.count('<details class="task') == 8 and page.count('<details class="repeat') == 8 * K
    passes = {row["task_id"]: row["passes"] for row in section["tasks"]}
    task_id, count = next(iter(passes.items()))
    assert f"<b>{task_id}</b> <span class=" in page and f">{count}/{K} passed</span>" in page


# -- the estimators ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=12), st.integers(1, 6))
def test_estimators_properties(passes: list[int], trials: int) -> None:
    table = [(min(c, trials), trials) for c in passes]
    hat, at = estimate(table, pass_hat_k), estimate(table, pass_at_k)
    assert list(hat) == list(at) == [str(k) for k in range(1, trials + 1)]
    mean = fmean(c / n for c, n in table)
    assert hat["1"] == pytest.approx(at["1"]) == pytest.approx(mean)
    for k in range(1, trials):
        assert hat[str(k + 1)] <= hat[str(k)] + 1e-12 and at[str(k + 1)] >= at[str(k)] - 1e-12
    assert hat[str(trials)] == pytest.approx(fmean(c == n for c, n in table))  # all n trials pass
    assert at[str(trials)] == pytest.approx(fmean(c > 0 for c, n in table))  # any of them does
    for c, n in table:
        for k in range(1, n + 1):
            trials_list = [True] * c + [False] * (n - c)
            assert pass_hat_k(c, n, k) == pytest.approx(by_subsets(trials_list, k, True))
            assert pass_at_k(c, n, k) == pytest.approx(by_subsets(trials_list, k, False))


def test_estimators_refuse_impossible_counts() -> None:
    for c, n, k in ((3, 2, 1), (1, 2, 3), (0, 2, 0), (-1, 2, 1)):
        with pytest.raises(ValueError, match="passes <= trials"):
            pass_hat_k(c, n, k)


# -- resume and duplicates -----------------------------------------------------------------


def test_an_interrupted_repeated_run_resumes_exactly(repeated, tmp_path: Path) -> None:
    _, straight, report = repeated
    out = tmp_path / "run"
    model = SeededOracle(episode_tasks(CONFIG))
    run_eval(model, CONFIG, out, progress=False)
    lines = (out / "trajectories.jsonl").read_text().splitlines()
    (out / "trajectories.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][:80])  # killed mid-write
    again = run_eval(SeededOracle(episode_tasks(CONFIG)), CONFIG, out, progress=False)
    assert len(again) == 8 * K
    as_dicts = lambda ts: [t.to_dict() for t in sorted(ts, key=episode_order)]  # noqa: E731
    assert as_dicts(again) == as_dicts(straight)
    rescored = json.loads(score_and_report(out, again, run_meta(out))["json"].read_text())
    assert rescored["repeats"] == report["repeats"] and rescored["summary"] == report["summary"]


def test_an_unfinished_repeated_run_scores_with_each_tasks_own_trials(repeated, tmp_path: Path) -> None:
    out, trajectories, _ = repeated
    partial = [t for t in trajectories if not (t.meta["repeat"] == K - 1 and t.category == "miss_func")]
    (tmp_path / "scored").mkdir()
    report = json.loads(score_and_report(tmp_path / "scored", partial, run_meta(out))["json"].read_text())
    section = report["repeats"]
    assert section["runs"] == K and not section["complete"]
    miss = section["categories"]["miss_func"]
    assert miss["per_run"][-1] is None and list(miss["pass^k"]) == ["1", "2", "3"]
    assert list(section["overall"]["pass^k"]) == ["1", "2", "3"] and len(section["categories"]["base"]["pass^k"]) == K
    assert "Incomplete run" in (tmp_path / "scored" / "report.md").read_text()


def test_duplicates_are_per_repeat_and_other_repeat_counts_are_another_run(repeated, tmp_path: Path) -> None:
    out, trajectories, _ = repeated
    kept, dropped = unique_episodes([*trajectories, *trajectories[:3]])
    assert dropped == 3 and len(kept) == 8 * K
    with pytest.raises(RunError, match="another configuration"):
        run_eval(SeededOracle(episode_tasks(CONFIG)), RunConfig(**{**vars(CONFIG), "repeats": 2}), out)


def test_a_one_repeat_run_records_no_repeat(tmp_path: Path) -> None:
    config = RunConfig(model="oracle", categories=("base",), limit=2)
    assert "repeats" not in config.to_dict() and RunConfig(model="m", repeats=3).to_dict()["repeats"] == 3
    trajectories = run_eval(ExpertModel(), config, tmp_path / "run", progress=False)
    assert all("repeat" not in t.meta for t in trajectories)
    assert "repeats" not in json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    report = json.loads(
        score_and_report(tmp_path / "run", trajectories, run_meta(tmp_path / "run"))["json"].read_text()
    )
    assert "repeats" not in report and all("repeat" not in row for row in report["tasks"])
    for bad in (0, -1, 1.5):
        with pytest.raises(RunError, match="repeats must be a whole number >= 1"):
            RunConfig(model="m", repeats=bad)  # type: ignore[arg-type]


# -- per-conversation seeds ----------------------------------------------------------------


class RecordingEngine:
    """A token engine that answers nothing and keeps the SamplingParams of every call."""

    class Tokenizer:
        def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
            return ""

    def __init__(self) -> None:
        self.tokenizer = self.Tokenizer()
        self.calls: list[list[Any]] = []

    def generate(self, prompts: Sequence[Sequence[int]], sampling: Any) -> list[Generation]:
        self.calls.append(list(sampling))
        return [Generation([], []) for _ in prompts]

    def sync_weights(self, model: Any) -> None:
        pass


def test_the_engine_chat_model_gives_each_conversation_its_own_seed() -> None:
    engine = RecordingEngine()
    chat = EngineChatModel(engine, "fake", GenerationConfig(temperature=0.8, seed=3))  # type: ignore[arg-type]
    chat.prompt_ids = lambda messages: [1, 2, len(messages)]  # type: ignore[method-assign]
    conversations = [[{"role": "user", "content": "hi"}]] * 3
    assert chat.generate_seeded(conversations, None, [7, 8, 9]) == ["", "", ""]
    assert chat.generate(conversations) == ["", "", ""]
    assert [p.seed for p in engine.calls[0]] == [7, 8, 9] and [p.seed for p in engine.calls[1]] == [3, 3, 3]
    assert {p.temperature for call in engine.calls for p in call} == {0.8}
    with pytest.raises(ValueError, match="2 seeds for 3 conversations"):
        chat.generate_seeded(conversations, None, [1, 2])


def test_the_runner_sends_seed_plus_repeat_per_conversation(tmp_path: Path) -> None:
    engine = RecordingEngine()
    chat = EngineChatModel(engine, "fake", GenerationConfig(temperature=0.8, seed=4))  # type: ignore[arg-type]
    chat.prompt_ids = lambda messages: [1, 2, len(messages)]  # type: ignore[method-assign]
    config = RunConfig(model="fake", categories=("base",), limit=2, batch_size=6, seed=4, repeats=3)
    trajectories = run_eval(chat, config, tmp_path / "run", progress=False)
    assert [p.seed for p in engine.calls[0]] == [4, 4, 5, 5, 6, 6]  # one batch, repeat-major
    assert sorted((t.task_id, t.meta["repeat"]) for t in trajectories) == sorted(
        (t.id, r) for t in episode_tasks(config) for r in range(3)
    )


def test_the_endpoint_sends_each_conversations_seed() -> None:
    with ChatServer(lambda body: "ok") as server:
        chat = OpenAIEndpointModel(server.url, "m", GenerationConfig(seed=3))
        conversations = [[{"role": "user", "content": f"hi {i}"}] for i in range(2)]
        assert chat.generate_seeded(conversations, None, [11, 12]) == ["ok", "ok"]
        assert chat.generate(conversations) == ["ok", "ok"]
    assert [body["seed"] for body in server.requests] == [11, 12, 3, 3]


# -- the command line ----------------------------------------------------------------------


def test_cli_repeats_through_an_endpoint_warns_scores_and_exports(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with FakeOpenAIServer(ExpertModel(fail_every=2)) as server:
        args = ["eval", "--endpoint", server.url, "--model", "oracle", "--categories", "base", "--limit", "3"]
        done = subprocess.run(
            [*TOOLENV, *args, "--repeats", "2", "--seed", "7", "--quiet", "--out", str(out)],
            capture_output=True,
            text=True,
        )
        seeds = sorted({body["seed"] for body in server.requests})
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("greedy decoding: the 2 repeats will be identical") == 1
    assert seeds == [7, 8] and "accuracy (mean of 2 runs ± std)" in done.stdout
    lines = (out / "trajectories.jsonl").read_text().splitlines()
    assert len(lines) == 6 and sorted(json.loads(line)["meta"]["repeat"] for line in lines) == [0, 0, 0, 1, 1, 1]
    report = (out / "report.json").read_text()
    rescored = subprocess.run([*TOOLENV, "score", str(out), "--out", str(tmp_path / "again")], capture_output=True)
    assert rescored.returncode == 0
    assert json.loads((tmp_path / "again" / "report.json").read_text())["repeats"] == json.loads(report)["repeats"]
    exported = subprocess.run(
        [*TOOLENV, "export", str(out), "--out", str(tmp_path / "bfcl")], capture_output=True, text=True
    )
    assert exported.returncode == 0 and "holds 2 repeats; exporting repeat 0 only" in exported.stderr
    records = (tmp_path / "bfcl" / "BFCL_v4_multi_turn_base_result.json").read_text().splitlines()
    assert len(records) == 3 and len({json.loads(r)["id"] for r in records}) == 3
    first = {t.task_id: t.to_dict()["turns"] for t in read_jsonl(out / "trajectories.jsonl") if t.meta["repeat"] == 0}
    assert set(first) == {json.loads(r)["id"] for r in records}
