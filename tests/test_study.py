"""``toolenv study``: study files, a whole study on the tiny random Qwen2 (train, evaluate in
distribution and as OOD variants, table and plots, resume), and the shipped recipes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from toolenv.cli import main
from toolenv.data import get_task
from trainers.study import load_study

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


#: the training and run sections of the tiny studies below ({model_dir}: the tiny model's folder)
_TINY_RUN = """
[run]
progress = false
[model]
path = "{model_dir}"
[data]
train_categories = ["base"]
train_limit = 2
[optim]
lr = 1e-3
warmup_steps = 0
[grpo]
steps = 1
prompts_per_step = 1
n = 2
mini_batches = 1
[rollout]
max_new_tokens = 4
max_messages = 4
max_response_tokens = 600
max_cut_share = 1.0  # the plumbing on a tiny model: budgets tiny on purpose (recipe checks allowed)
[sft]
batch_size = 2
max_length = 64
max_truncated_share = 1.0
max_steps = 1
[monitor]
val_every = 0
[checkpoint]
save_every = 0
"""


def _tiny_model(tmp_path: Path) -> Path:
    from tests.tiny_model import smollm2_tokenizer, tiny_qwen2

    model_dir = tmp_path / "tiny"
    tiny_qwen2(seed=1).save_pretrained(model_dir)
    smollm2_tokenizer().save_pretrained(model_dir)
    return model_dir


def _write(tmp_path: Path, study: str, extra: str = "") -> Path:
    path = tmp_path / "study.toml"
    path.write_text(study + extra)
    return path


@pytest.mark.parametrize(
    "study, message",
    [
        ("[run]\nseed = 1\n", "needs a [study] table"),
        ("[study]\nmethods = []\n", "non-empty list of labels"),
        ('[study]\nmethods = ["vanilla", "vanilla"]\n', "lists a label twice"),
        ('[study]\nmethods = ["nope"]\n', "nope: unknown method 'nope'; valid: vanilla"),
        ('[study]\nmethods = ["ops"]\n[study.settings.ops]\nk = 2\n', "ops: unknown key(s) for method ops: k"),
        ('[study]\nmethods = ["ops"]\n[study.settings.prs]\nwindow = 2\n', "[study.settings.prs] names a label"),
        ('[study]\nmethods = ["ops"]\nmodels = 1\n', "unknown key(s) models"),
        ('[study]\nmethods = ["ops"]\n[study.eval]\nformat_ood = "python_list_formatt"\n', "[study.eval]"),
        ('[study]\nmethods = ["ops"]\n[study.eval]\nengine = "tgi"\n', "valid: transformers, vllm"),
        ('[study]\nmethods = ["ops"]\n[grpo]\nsteps = 0\n', "[grpo] steps must be positive"),
        (
            '[study]\nmethods = ["ops"]\n[study.settings.ops]\nconfig = { lr = 1e-4 }\n',
            "config must be a table of training-config sections",
        ),
        (
            '[study]\nmethods = ["ops"]\n[study.settings.ops]\nconfig = { optim = { lr = -1.0 } }\n',
            "[study.settings.ops.config]",
        ),
        ('[study]\nmethods = ["ops"]\n[study.settings.ops]\nconfig = { optim = { lrr = 1.0 } }\n', "lrr"),
    ],
)
def test_bad_study_files_get_one_line_errors(tmp_path: Path, study: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        load_study(_write(tmp_path, study))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_labels_settings_and_base_file(tmp_path: Path) -> None:
    (tmp_path / "train.toml").write_text("[grpo]\nsteps = 7\nn = 4\n[optim]\nlr = 2e-6\n")
    study = load_study(
        _write(
            tmp_path,
            """
[study]
base = "train.toml"
methods = ["base", "vanilla", "diff", "ets_difflr"]
[study.settings.diff]
method = "ets"
sft_lr = 3e-5
[study.expected]
vanilla = 3.5
[grpo]
n = 6
""",
        )
    )
    assert study.labels == ["base", "vanilla", "diff", "ets_difflr"] and study.methods["base"] is None
    assert study.methods["diff"].sft_lr == 3e-5 and study.methods["ets_difflr"].sft_lr == 1e-5
    assert (study.config.grpo.steps, study.config.grpo.n, study.config.optim.lr) == (7, 6, 2e-6)
    assert study.config_for("diff") is study.config and study.label_overrides == {}
    assert study.expected == {"vanilla": 3.5} and study.variants() == {
        "format_ood": "python_list_format",
        "content_ood": "rename_tools+rename_params+shuffle_schema",
    }


def test_a_label_overrides_the_training_config_for_itself_only(tmp_path: Path) -> None:
    study = load_study(
        _write(
            tmp_path,
            """
[study]
methods = ["sft_rl", "sft_rl_hilr"]
[study.settings.sft_rl_hilr]
method = "sft_rl"
sft_lr = 1e-4
config = { optim = { lr = 1e-4 }, grpo = { steps = 9 } }
[optim]
lr = 1e-5
betas = [0.8, 0.9]
[grpo]
steps = 4
n = 3
""",
        )
    )
    hot, plain = study.config_for("sft_rl_hilr"), study.config_for("sft_rl")
    assert (plain.optim.lr, plain.grpo.steps) == (1e-5, 4) and plain is study.config
    # the override replaces only the keys it names; the rest of each section is the study's
    assert (hot.optim.lr, hot.grpo.steps, tuple(hot.optim.betas), hot.grpo.n) == (1e-4, 9, (0.8, 0.9), 3)
    assert study.methods["sft_rl_hilr"].name == "sft_rl" and study.methods["sft_rl_hilr"].sft_lr == 1e-4
    assert study.label_overrides == {"sft_rl_hilr": {"optim": {"lr": 1e-4}, "grpo": {"steps": 9}}}


def test_rl_weight_change_adds_the_rl_phases_and_skips_sft(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    from trainers.study import rl_weight_change

    def model(folder: Path, weights: list[float]) -> Path:
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        save_file({"w": torch.tensor(weights[:2]), "b": torch.tensor(weights[2:])}, str(folder / "model.safetensors"))
        return folder

    study = load_study(_write(tmp_path, f'[study]\nout_dir = "{tmp_path / "runs"}"\nmethods = ["ets"]\n'))
    train = tmp_path / "runs" / "ets" / "train"
    assert rl_weight_change(study, "ets") is None  # nothing trained yet
    start = model(tmp_path / "start", [1, 1, 1, 1])  # ||θ|| = 2
    plan = [
        ("00-rl", start, [1.3, 1.4, 1, 1]),  # ||Δ|| = 0.5
        ("01-sft", None, [9, 9, 9, 9]),  # SFT moves are not counted
        ("02-rl", train / "01-sft" / "final", [9, 9, 10.2, 9]),
    ]  # ||Δ|| = 1.2
    for name, begin, end in plan:
        model(train / name / "final", end)
        if begin is not None:
            (train / name / "config.json").write_text(json.dumps({"model": {"path": str(begin)}}))
    assert rl_weight_change(study, "ets") == pytest.approx((0.5**2 + 1.2**2) ** 0.5 / 2)
    (train / "02-rl" / "final" / "model.safetensors").unlink()  # an unfinished phase
    assert rl_weight_change(study, "ets") is None


def test_shipped_study_recipes_load_and_match_the_paper() -> None:
    paper = load_study(RECIPES / "study_paper_qwen2.5-1.5b" / "study.toml")
    grpo, optim = paper.config.grpo, paper.config.optim
    assert (grpo.n, grpo.prompts_per_step, grpo.steps, grpo.kl_coef, optim.lr) == (8, 60, 300, 1e-4, 1e-6)
    assert paper.expected == {"vanilla": 3.50, "ets_difflr": 17.25, "prs": 25.75}
    assert paper.methods["ets_difflr"].phases == (50, 100, 150) and paper.methods["prs"].phases == (50, 100, 150)
    assert (paper.methods["sft_rl"].sft_epochs, paper.methods["sft_rl"].sft_lr) == (3, 1e-5)
    assert (
        paper.methods["ets"].sft_lr == 1e-6 and paper.methods["ops"].replace == 1 and paper.methods["hbg"].hinted == 2
    )
    assert (
        paper.evaluation.categories == ["base", "miss_func", "miss_param", "long_context"]
        and paper.evaluation.split == "test"
    )
    cpu = load_study(RECIPES / "study_smollm2_cpu" / "study.toml")
    assert cpu.config.model.path == "smollm2" and "base" in cpu.labels


def test_committed_rows_keep_their_fingerprints_across_added_keys() -> None:
    """A config key added at its default ([grpo] first_step) leaves a label's fingerprint as
    it was, so the committed vanilla rows are still carried; the ETS rows, made when every RL
    phase replayed the first one's prompts, are not (their settings changed)."""
    from trainers.study.report import settings_fingerprint

    study = load_study(RECIPES / "study_smollm2_curriculum" / "study.toml")
    reports = Path(__file__).resolve().parents[1] / "docs/results/study-smollm2-curriculum/split/rl"

    def matches(folder: str) -> dict[str, bool]:
        rows = json.loads((reports / folder / "results.json").read_text())["rows"]
        return {row["label"]: settings_fingerprint(study, row["label"]) == row["settings_sha256"] for row in rows}

    # the record of the runs before the fix: the vanilla rows match, the ETS rows do not
    assert matches("seed-1-restart") == {
        "vanilla": True,
        "vanilla_hot": True,
        "ets_difflr": False,
        "ets_difflr_hot": False,
    }
    assert all(matches("seed-1").values())  # the current table: every row made with today's settings


def test_a_whole_study_on_the_tiny_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    model_dir = _tiny_model(tmp_path)
    path = _write(
        tmp_path,
        f"""
[study]
name = "tiny"
out_dir = "{tmp_path / "runs"}"
report_dir = "{tmp_path / "report"}"
methods = ["base", "vanilla", "ets"]
train_apis = ["TradingBot"]
[study.settings.ets]
phases = [1, 1]
window = 1
[study.eval]
categories = ["base"]
limit = 2
apis = ["TradingBot"]
format_ood = "python_list_format"
content_ood = "rename_tools"
max_new_tokens = 4
batch_size = 4
[study.expected]
vanilla = 3.5
"""
        + _TINY_RUN.format(model_dir=model_dir),
    )
    assert main(["study", str(path)]) == 0
    out = capsys.readouterr().out
    report = tmp_path / "report"
    table = (report / "results.md").read_text()
    assert table in out
    accuracy_table, structure_table = table.split("\n\nStructural state")
    lines = [line for line in accuracy_table.splitlines() if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in lines[1:]] == ["base", "vanilla", "ets"]
    assert "format OOD (python_list_format)" in lines[0] and "paper ID avg" in lines[0]
    results = json.loads((report / "results.json").read_text())
    rows = {row["label"]: row for row in results["rows"]}
    # the report names the data it was made on, as each label's evaluation recorded it
    for label in ("base", "vanilla", "ets"):
        run = json.loads((tmp_path / "runs" / label / "eval" / "run.json").read_text())
        assert results["data_version"] == run["config"]["data_version"]
    assert f"Data: `{results['data_version']}`" in table
    for label in ("base", "vanilla", "ets"):
        assert (
            rows[label]["id"] is not None
            and rows[label]["format_ood"] is not None
            and rows[label]["content_ood"] is not None
        )
        trajectories = (tmp_path / "runs" / label / "eval" / "trajectories.jsonl").read_text().splitlines()
        specs = sorted(json.loads(line)["meta"].get("ood", "") for line in trajectories)
        assert specs == ["", "", "python_list_format", "python_list_format", "rename_tools", "rename_tools"]
        assert all("TradingBot" in get_task(json.loads(line)["task_id"]).involved_classes for line in trajectories)
    assert rows["vanilla"]["expected_id"] == 3.5
    assert [c["rl_step"] for c in results["curves"]["ets"]] == [1, 2]  # two RL phases of one step
    # non-flat groups: recomputed from each RL phase's own metrics (ets: the mean over its two phases)
    for label in ("vanilla", "ets"):
        flat = [
            r["reward/flat_groups"]
            for phase in sorted((tmp_path / "runs" / label / "train").glob("*-rl"))
            for r in map(json.loads, (phase / "metrics.jsonl").read_text().splitlines())
            if "reward/flat_groups" in r
        ]
        assert len(flat) == {"vanilla": 1, "ets": 2}[label]
        assert rows[label]["nonflat_groups"] == pytest.approx(100 * (1 - sum(flat) / len(flat)))
    assert "nonflat_groups" not in rows["base"] and "non-flat groups (RL steps)" in lines[0]
    assert all(c["policy/reward"] == 0.0 and "policy_state/healthy_call" in c for c in results["curves"]["ets"])
    for name in ("scores", "structure", "probes", "reward", "eval_structure"):
        assert (report / "plots" / f"{name}.png").stat().st_size > 1000
    # the second table: per label, the structural shares of ID and each variant, from the label's report
    structure_lines = [line for line in structure_table.splitlines() if line.startswith("| ")][1:]
    assert [line.split("|")[1].strip() for line in structure_lines] == ["base", "vanilla", "ets"]
    for line in structure_lines:
        label = line.split("|")[1].strip()
        label_report = json.loads((tmp_path / "runs" / label / "eval" / "report.json").read_text())
        variants = {v["spec"]: v for v in label_report["ood"]["variants"]}
        expected = [
            label_report["summary"]["structure"],
            variants["python_list_format"]["structure"],
            variants["rename_tools"]["structure"],
        ]
        cells = [cell.strip() for cell in line.split("|")[2:5]]
        for cell, shares in zip(cells, expected):
            numbers = [float(x) for x in cell.split(" / ")]
            assert numbers == [
                round(shares[s], 2) for s in ("healthy_call", "healthy_response", "text_pollution", "full_collapse")
            ]
            assert abs(sum(numbers) - 1.0) < 0.03
    # the last column: how far RL moved the weights, here recomputed for vanilla from its one phase
    from safetensors.torch import load_file

    before = load_file(str(model_dir / "model.safetensors"))
    after = load_file(str(tmp_path / "runs" / "vanilla" / "train" / "00-rl" / "final" / "model.safetensors"))
    moved = sum(float(((after[k].double() - before[k].double()) ** 2).sum()) for k in before) ** 0.5
    size = sum(float((before[k].double() ** 2).sum()) for k in before) ** 0.5
    # (0 here: every group is flat and the tiny model's KL term has nothing to pull on)
    assert rows["vanilla"]["rl_weight_change"] == pytest.approx(moved / size)
    assert rows["ets"]["rl_weight_change"] is not None and "rl_weight_change" not in rows["base"]
    assert [line.rsplit("|", 2)[1].strip() for line in structure_lines] == [
        "—",
        f"{moved / size:.1e}",
        f"{rows['ets']['rl_weight_change']:.1e}",
    ]
    # a second run trains and plays nothing new
    before = {p: p.stat().st_mtime for p in (tmp_path / "runs").rglob("trajectories.jsonl")}
    assert main(["study", str(path), "--only", "ets"]) == 0
    assert before == {p: p.stat().st_mtime for p in (tmp_path / "runs").rglob("trajectories.jsonl")}
    assert main(["study", str(path), "--only", "nope"]) == 2
    assert "unknown label(s) nope" in capsys.readouterr().err
    # a later sitting without vanilla's run (a fresh machine): its row and curves are carried over
    # from the report, marked, and nothing trains it again
    shutil.rmtree(tmp_path / "runs" / "vanilla")
    assert main(["study", str(path), "--only", "ets"]) == 0
    again = json.loads((report / "results.json").read_text())
    assert {row["label"]: row for row in again["rows"]}["vanilla"] == {**rows["vanilla"], "carried": True}
    assert again["curves"]["vanilla"] == results["curves"]["vanilla"]
    assert "| vanilla\\* |" in (report / "results.md").read_text()
    assert not (tmp_path / "runs" / "vanilla").exists()
    # with other settings the row is not carried: refused, and the report is kept as it was
    path.write_text(path.read_text().replace("lr = 1e-3", "lr = 2e-3"))
    capsys.readouterr()
    assert main(["study", str(path), "--only", "ets"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert json.loads((report / "results.json").read_text()) == again


def _tiny_rl_study(tmp_path: Path, engine: str, train_apis: str = '["TradingBot"]') -> Path:
    model_dir = _tiny_model(tmp_path)
    return _write(
        tmp_path,
        f"""
[study]
out_dir = "{tmp_path / "runs"}"
report_dir = "{tmp_path / "report"}"
methods = ["base", "vanilla"]
train_apis = {train_apis}
[study.eval]
engine = "{engine}"
"""
        + _TINY_RUN.format(model_dir=model_dir),
    )


def test_a_label_evaluated_on_vllm_trains_in_a_process_of_its_own(tmp_path: Path) -> None:
    """vLLM refuses to start beside a trainer's heap, so such a label trains in a spawned process;
    training there leaves the same finished run that this process then only reads back."""
    pytest.importorskip("torch")
    from trainers.study.run import train_label, train_label_in_fresh_process, trains_in_fresh_process

    vllm = load_study(_tiny_rl_study(tmp_path, "vllm"))
    plain = load_study(_tiny_rl_study(tmp_path, "transformers"))
    assert trains_in_fresh_process(vllm, "vanilla") and not trains_in_fresh_process(plain, "vanilla")
    assert not trains_in_fresh_process(vllm, "base")  # nothing to train
    train_label_in_fresh_process(vllm, "vanilla")
    said: list[str] = []
    final = train_label(vllm, "vanilla", said.append)
    assert said == ["vanilla: phase 00-rl done"]  # the child finished it; nothing ran again here
    assert final == tmp_path / "runs" / "vanilla" / "train" / "00-rl" / "final"
    assert (final / "model.safetensors").exists()


def test_a_bad_recipe_in_the_training_process_is_a_one_line_error_here(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from trainers.study.run import train_label_in_fresh_process

    study = load_study(_tiny_rl_study(tmp_path, "vllm", train_apis='["NoSuchAPI"]'))
    with pytest.raises(ValueError, match="^no task involves NoSuchAPI$"):
        train_label_in_fresh_process(study, "vanilla")
