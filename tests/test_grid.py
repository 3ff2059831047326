"""Grid expansion, presets, config files and task identity (no Ray)."""

import pytest

from infoflow_ray import predictors
from infoflow_ray.errors import ConfigError
from infoflow_ray.sweep.grid import PRESETS, Task, resolve_grid, value_range
from infoflow_ray.sweep.jobs import EXIT_BAD_INPUT, job

main = job("grid").main


def test_tiny_preset_expands_to_cascades_at_the_deepest_depth_and_one_baseline_per_depth():
    grid = resolve_grid("tiny")
    tasks = grid.tasks()
    cascades = [t for t in tasks if t.kind == "cascade"]
    baselines = [t for t in tasks if t.kind == "baseline"]
    n_sigma, n_seed, n_ds = len(grid.sigma_w2), len(grid.seeds), len(grid.datasets)
    assert len(cascades) == n_sigma * n_seed * n_ds
    assert len(baselines) == n_sigma * n_seed * n_ds * len(grid.depths)
    assert {t.network.depth for t in cascades} == {max(grid.depths)}
    assert tasks[: len(cascades)] == cascades  # cascades are scheduled first
    assert len({t.task_id for t in tasks}) == len(tasks)


def test_task_ids_are_stable_and_change_with_any_parameter():
    grid = resolve_grid("tiny")
    again = resolve_grid("tiny")
    assert [t.task_id for t in grid.tasks()] == [t.task_id for t in again.tasks()]
    more_epochs = resolve_grid("tiny", overrides={"train": {"max_epochs": 3}})
    baseline_ids = {t.task_id for t in grid.tasks() if t.kind == "baseline"}
    assert baseline_ids.isdisjoint(t.task_id for t in more_epochs.tasks() if t.kind == "baseline")
    # the cascade tasks do not depend on the baseline settings, so they are shared
    assert {t.task_id for t in grid.tasks() if t.kind == "cascade"} == {
        t.task_id for t in more_epochs.tasks() if t.kind == "cascade"
    }


def test_tf32_training_renames_tasks_only_when_it_is_on():
    first_cascade = next(t for t in resolve_grid("tiny").tasks() if t.kind == "cascade")
    assert first_cascade.task_id == "27477afc06311b5a"  # the id results stored before the option existed carry
    tf32 = next(
        t for t in resolve_grid("tiny", overrides={"cascade": {"tf32_training": True}}).tasks() if t.kind == "cascade"
    )
    assert tf32.task_id != first_cascade.task_id and tf32.config()["cascade"]["tf32_training"] is True
    assert Task.from_config(tf32.config()) == tf32


def test_task_round_trips_through_its_config():
    for task in resolve_grid("tiny").tasks():
        assert Task.from_config(task.config()) == task


def test_paper_presets_have_the_papers_grid():
    grid = resolve_grid("paper-mnist-wide")
    assert grid.sigma_w2[0] == 0.1 and grid.sigma_w2[-1] == 4.0 and len(grid.sigma_w2) == 40
    assert max(grid.depths) == 200 and grid.train.max_epochs == 200
    # the paper's training (SGD at lr 10⁻³, batch 64) stays in the paper presets, whatever the default uses
    assert (grid.train.optimizer, grid.train.lr, grid.train.batch_size) == ("sgd", 1e-3, 64)
    assert resolve_grid("paper-cifar-shrinking").widths == "shrinking"


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"datasets": ("imagenet",)}, "datasets"),
        ({"sigma_w2": ()}, "sigma_w2"),
        ({"sigma_w2": (0.0,)}, "sigma_w2"),
        ({"depths": (2,)}, "depth"),
        ({"seeds": (-1,)}, "seeds"),
        ({"depths": (5, 5)}, "depths"),
        ({"train": {"max_epochs": 0}}, "train.max_epochs"),
        ({"cascade": {"batch_size": 0}}, "cascade.batch_size"),
        ({"resources": {"cascade_workers": 0}}, "resources.cascade_workers"),
        ({"resources": {"cascade_group": 0}}, "resources.cascade_group"),
        ({"colour": "blue"}, "colour"),
        ({"train": {"epochz": 3}}, "epochz"),
    ],
)
def test_bad_grids_are_refused_in_one_line_naming_the_field(overrides, field):
    with pytest.raises(ConfigError) as err:
        resolve_grid("tiny", overrides=overrides)
    message = str(err.value)
    assert field in message and "\n" not in message


def test_config_files_toml_and_yaml(tmp_path):
    toml = tmp_path / "grid.toml"
    toml.write_text("sigma_w2 = {start = 1.0, stop = 2.0, step = 0.5}\ndepths = [3, 4]\n[train]\nmax_epochs = 3\n")
    grid = resolve_grid("tiny", toml)
    assert grid.sigma_w2 == (1.0, 1.5, 2.0) and grid.depths == (3, 4) and grid.train.max_epochs == 3
    yaml = tmp_path / "grid.yaml"
    yaml.write_text("seeds: [0, 1]\ncascade:\n  epochs: 2\n")
    grid = resolve_grid("tiny", yaml)
    assert grid.seeds == (0, 1) and grid.cascade.epochs == 2


@pytest.mark.parametrize(
    "text, suffix", [("sigma_w2 = [1.0,\n", ".toml"), ("a: [1, 2\n", ".yaml"), ("- 1\n- 2\n", ".yaml")]
)
def test_malformed_config_files_are_refused(tmp_path, text, suffix):
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        resolve_grid("tiny", path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_config_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_grid("tiny", tmp_path / "nope.toml")


def test_value_range_is_inclusive_and_clean():
    assert value_range(0.1, 0.5, 0.1) == (0.1, 0.2, 0.3, 0.4, 0.5)


@pytest.mark.parametrize(
    "argv",
    [["--datasets", "imagenet"], ["--sigma-w2", "0,1"], ["--depths", "2,5"], ["--preset", "tiny", "--sigma-w2", ""]],
)
def test_cli_exits_2_on_bad_grid_and_writes_nothing(tmp_path, capsys, argv):
    results = tmp_path / "results"
    code = main(["--preset", "tiny", "--results", str(results), *argv])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not results.exists()


def test_dry_run_lists_every_task_and_writes_nothing(tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["--preset", "tiny", "--results", str(results), "--dry-run"]) == 0
    out = capsys.readouterr().out
    grid = resolve_grid("tiny")
    for task in grid.tasks():
        assert task.task_id in out
    assert "resources" in out and not results.exists()


# What each preset expands into (README "What a grid is"): σw² values, depths, dataset, width profile, epochs,
# and the task counts of the full grid (cascades: σw² × seeds × datasets; baselines: × depths as well).
PRESET_CONTENT = {
    "tiny": dict(
        sigma_w2=(0.5, 1.76, 3.0),
        depths=(3, 6),
        dataset="mnist_t10k",
        widths="wide",
        max_epochs=2,
        cascades=3,
        baselines=6,
        search=False,
    ),
    "default": dict(
        sigma_w2=(0.5, 1.0, 1.5, 1.76, 2.5, 4.0, 6.0, 8.0),
        depths=tuple(range(4, 49, 4)),
        dataset="mnist_t10k",
        widths="constant-256",
        max_epochs=32,
        cascades=8,
        baselines=96,
        search=True,
    ),
    "default-full-grid": dict(
        sigma_w2=(0.5, 1.0, 1.5, 1.76, 2.5, 4.0, 6.0, 8.0),
        depths=tuple(range(4, 49, 4)),
        dataset="mnist_t10k",
        widths="constant-256",
        max_epochs=32,
        cascades=8,
        baselines=96,
        search=False,
    ),
    "paper-fig5": dict(
        sigma_w2=(0.5, 1.76, 4.0),
        depths=(11,),
        cascade_depth=13,  # the cutoff of a wide network looks at L - 2 layers: 11 for the depth-11 trainings
        dataset="mnist_t10k",
        widths="wide",
        max_epochs=20,
        cascades=3,
        baselines=3,
        search=False,
    ),
    "architectures": dict(
        sigma_w2=(0.5, 1.0, 1.76, 3.0),
        depths=(6, 12, 18),
        dataset="mnist_t10k",
        widths="wide",
        max_epochs=8,
        cascades=12,
        baselines=36,
        search=False,
        architecture=("mlp", "cnn", "resnet"),
    ),
    "predictors-laptop": dict(
        sigma_w2=(0.5, 1.0, 1.5, 1.76, 2.5, 4.0),
        depths=(4, 8, 16, 24),
        dataset="mnist_t10k",
        datasets=("mnist_t10k", "digits"),
        widths="wide",
        max_epochs=5,
        cascades=12,
        baselines=48,
        search=False,
    ),
    **{
        f"predictors-{regime}": dict(
            sigma_w2=(0.5, 1.0, 1.5, 1.76, 2.5, 4.0, 6.0, 8.0),
            depths=(8, 16, 24, 32, 48, 64),
            dataset="digits",
            seeds=(0, 1),
            widths=widths,
            max_epochs=epochs,
            cascades=16,
            baselines=96,
            search=False,
        )
        for regime, widths, epochs in (
            ("chaotic", "wide", 10),
            ("narrow", "constant-32", 20),
            ("shrinking", "shrinking", 10),
        )
    },
    "predictors-conv": dict(
        sigma_w2=(0.5, 1.0, 1.76, 3.0, 6.0),
        depths=(8, 16, 32),
        dataset="digits",
        widths="wide",
        max_epochs=10,
        cascades=10,
        baselines=30,
        search=False,
        architecture=("cnn", "resnet"),
    ),
    "predictors-paper": dict(
        sigma_w2=tuple(round(0.1 * i, 1) for i in range(1, 41)),
        depths=tuple(range(10, 201, 10)),
        dataset="mnist",
        datasets=("mnist", "digits"),
        seeds=(0, 1, 2),
        widths="wide",
        max_epochs=200,
        cascades=240,
        baselines=4800,
        search=False,
    ),
    "paper-mnist-wide": dict(
        sigma_w2=tuple(round(0.1 * i, 1) for i in range(1, 41)),
        depths=tuple(range(10, 201, 10)),
        dataset="mnist",
        widths="wide",
        max_epochs=200,
        cascades=40,
        baselines=800,
        search=False,
    ),
    "paper-cifar-shrinking": dict(
        sigma_w2=tuple(round(0.1 * i, 1) for i in range(1, 41)),
        depths=tuple(range(10, 201, 10)),
        dataset="cifar10_gray",
        widths="shrinking",
        max_epochs=200,
        cascades=40,
        baselines=800,
        search=False,
    ),
}


def test_every_preset_is_valid():
    """Every preset expands into exactly the grid it documents: each (σw², depth) baseline once, each σw²'s
    cascade once on the deepest network, in its own results folder."""
    assert set(PRESETS) == set(PRESET_CONTENT)
    for name, want in PRESET_CONTENT.items():
        grid = resolve_grid(name)
        assert grid.results.endswith(name)  # each preset writes to its own folder, never into another's
        assert (grid.sigma_w2, grid.depths, grid.datasets, grid.seeds, grid.sigma_b2) == (
            want["sigma_w2"],
            want["depths"],
            want.get("datasets", (want["dataset"],)),
            want.get("seeds", (0,)),
            (0.05,),
        ), name
        assert (grid.widths, grid.train.max_epochs, grid.search.enabled) == (
            want["widths"],
            want["max_epochs"],
            want["search"],
        ), name
        tasks = grid.tasks()
        cascades = [(t.network.sigma_w2, t.network.depth) for t in tasks if t.kind == "cascade"]
        baselines = [(t.network.sigma_w2, t.network.depth) for t in tasks if t.kind == "baseline"]
        assert (len(cascades), len(baselines)) == (want["cascades"], want["baselines"]), name
        deepest = want.get("cascade_depth", max(want["depths"]))
        architectures = want.get("architecture", ("mlp",))
        assert grid.architecture == architectures, name
        # every (σw², depth) once per architecture, dataset and seed
        copies = len(architectures) * len(want.get("datasets", (0,))) * len(want.get("seeds", (0,)))
        assert sorted(cascades) == [(s, deepest) for s in want["sigma_w2"] for _ in range(copies)], name
        assert sorted(baselines) == [(s, d) for s in want["sigma_w2"] for d in want["depths"] for _ in range(copies)], (
            name
        )
        datasets = want.get("datasets", (want["dataset"],))
        assert all(t.dataset in datasets and t.network.widths == want["widths"] for t in tasks), name


def test_the_default_full_grid_runs_the_defaults_own_tasks_with_every_predictor():
    """The leaderboard against the converged truth is drawn from the default's trainings: the same task ids (so
    a search and the full grid compare like for like), every network of the grid scored by every predictor."""
    default, full = resolve_grid("default"), resolve_grid("default-full-grid")
    ids = {kind: {t.task_id for t in default.tasks() if t.kind == kind} for kind in ("cascade", "baseline")}
    assert ids == {kind: {t.task_id for t in full.tasks() if t.kind == kind} for kind in ("cascade", "baseline")}
    assert not full.search.enabled and full.predictors == tuple(predictors.names())
    assert sum(t.kind == "predictors" for t in full.tasks()) == len(ids["baseline"]) == 96
