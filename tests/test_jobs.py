"""One job shape and the command lines derived from the Specs (no Ray started here, except in none: the dry runs
run in a subprocess that checks Ray was never initialised)."""

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from infoflow_ray.errors import ConfigError
from infoflow_ray.sweep import flags
from infoflow_ray.sweep.jobs import COMMON, EXIT_BAD_INPUT, JOBS, job, parser

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("grid", "tune", "info-plane")
UNFLAGGED = {"info-plane": {"experiments"}}
"""Spec fields with no flag (a config file sets them): the info-plane job's list of experiments."""


def _spec(name: str, argv: list[str], tmp_path: Path | None = None):
    j = job(name)
    p, aliases = parser(j)
    args = p.parse_args(argv)
    return j.resolve(args.preset, args.config, flags.values_from(args, j.spec, aliases))


@pytest.mark.parametrize("name", NAMES)
def test_every_job_has_the_common_flags_and_plan_run_report(name):
    j = job(name)
    p, _ = parser(j)
    options = {o for a in p._actions for o in a.option_strings}
    assert set(COMMON) <= options
    assert j.default_preset in j.presets and callable(j.plan) and callable(j.run) and callable(j.report)
    assert JOBS[name] is j


@pytest.mark.parametrize("name", NAMES)
def test_every_spec_field_has_a_flag(name):
    """A field added to a Spec (or one of its sections) gets a flag, or this fails: its type needs a parser."""
    j = job(name)
    p, _ = parser(j)
    dests = {a.dest for a in p._actions}
    missing = [path for path, _ in flags.fields(j.spec) if path not in dests]
    assert missing == sorted(UNFLAGGED.get(name, ()))


def test_unknown_job_fails_in_one_line_listing_the_known():
    with pytest.raises(ConfigError, match="unknown job 'nope'; known: grid, info-plane, tune"):
        job("nope")


def test_grid_flags_users_know_set_the_same_settings_as_before():
    spec = _spec(
        "grid",
        [
            "--preset",
            "tiny",
            "--sigma-w2",
            "0.5:4:0.5",
            "--depths",
            "5,10,20",
            "--seeds",
            "0,1,2",
            "--max-epochs",
            "20",
            "--only",
            "cascade",
            "--info-plane",
            "--threshold",
            "0.5",
            "--max-train-samples",
            "1000",
            "--widths",
            "shrinking",
        ],
    )
    assert spec.sigma_w2 == (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
    assert spec.depths == (5, 10, 20) and spec.seeds == (0, 1, 2) and spec.kinds == ("cascade",)
    assert spec.train.max_epochs == 20 and spec.train.accuracy_threshold == 0.5
    assert spec.info_plane.enabled and spec.info_plane.estimator == "binning"
    assert spec.data.max_train_samples == 1000 and spec.widths == "shrinking"
    searched = _spec("grid", ["--preset", "tiny", "--search", "--target-depth", "4", "--edge-trainings"])
    assert searched.search.enabled and searched.search.target_depth == 4 and searched.search.edge_trainings
    assert not _spec("grid", ["--no-search"]).search.enabled  # the default preset searches
    kde = _spec("grid", ["--preset", "tiny", "--info-plane", "kde", "--info-plane.noise-var", "0.5"])
    assert kde.info_plane.estimator == "kde" and kde.info_plane.noise_var == 0.5 and kde.info_plane.enabled


def test_tune_and_info_plane_flags_users_know():
    spec = _spec("tune", ["--depth", "40", "--budget", "32", "--lr", "1e-4,1", "--optimizers", "sgd,adam"])
    assert spec.depth == 40 and spec.trials == 32 and spec.space.lr == (1e-4, 1.0)
    assert spec.space.optimizer == ("sgd", "adam")
    assert _spec("tune", ["--sigma-w2", "0.5,3", "--batch-sizes", "32,64"]).space.batch_size == (32, 64)
    ib = _spec("info-plane", ["--preset", "seed004", "--dataset", "mnist", "--steps", "100", "--density-epochs", "3"])
    (experiment,) = ib.experiments
    assert experiment.data == "mnist" and experiment.steps == 100 and experiment.density["epochs"] == 3
    assert max(experiment.snapshot_steps) <= 100  # snapshots beyond the steps are dropped
    only = _spec("info-plane", ["--only", "seed002-warmup", "--estimators", "binning,binning_extended"])
    assert [e.name for e in only.experiments] == ["seed002-warmup"] and only.experiments[0].copies == 2


LAYERS = {
    # job: (preset, config file text, flags, (path, preset's value, config's value, flag's value), other path)
    "grid": ("tiny", "depths = [3, 9]\n[train]\nmax_epochs = 7\nlr = 0.05\n", ["--train.max-epochs", "9"]),
    "tune": ("tiny", "trials = 5\n[space]\nlr = [0.01, 0.1]\n[resources]\ncpus_per_trial = 2\n", ["--trials", "6"]),
    "info-plane": ("tiny", "chunk = 3\nsteps = 30\n", ["--steps", "20"]),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_flags_override_the_config_file_which_overrides_the_preset(name, suffix, tmp_path):
    preset, toml, argv = LAYERS[name]
    config = tmp_path / f"settings{suffix}"
    if suffix == ".toml":
        config.write_text(toml)
    else:
        import tomllib

        import yaml

        config.write_text(yaml.safe_dump(tomllib.loads(toml)))
    base = _spec(name, ["--preset", preset])
    filed = _spec(name, ["--preset", preset, "--config", str(config)])
    flagged = _spec(name, ["--preset", preset, "--config", str(config), *argv])
    if name == "grid":
        assert (base.depths, base.train.max_epochs, base.train.lr) == ((3, 6), 2, 1e-3)
        assert (filed.depths, filed.train.max_epochs, filed.train.lr) == ((3, 9), 7, 0.05)
        assert (flagged.depths, flagged.train.max_epochs, flagged.train.lr) == ((3, 9), 9, 0.05)
        assert flagged.data.max_train_samples == base.data.max_train_samples == 3000  # the preset's section stays
    elif name == "tune":
        assert (base.trials, base.space.lr, base.resources.cpus_per_trial) == (3, (1e-2, 0.5), 1.0)
        assert (filed.trials, filed.space.lr, filed.resources.cpus_per_trial) == (5, (0.01, 0.1), 2)
        assert (flagged.trials, flagged.space.lr) == (6, (0.01, 0.1)) and flagged.space.sigma_w2 == (0.1, 4.0)
    else:
        assert base.chunk == 25 and [e.steps for e in base.experiments] == [40, 20]
        assert filed.chunk == 3 and [e.steps for e in filed.experiments] == [30, 30]
        assert flagged.chunk == 3 and [e.steps for e in flagged.experiments] == [20, 20]


def test_a_config_file_can_give_the_info_plane_job_its_own_experiments(tmp_path):
    config = tmp_path / "ib.toml"
    config.write_text('[[experiments]]\nname = "mine"\nsteps = 50\nrecord = 10\nestimators = ["binning", "kde"]\n')
    spec = _spec("info-plane", ["--config", str(config)])
    assert [(e.name, e.steps, e.estimators) for e in spec.experiments] == [("mine", 50, ("binning", "kde"))]
    config.write_text('[[experiments]]\nname = "mine"\nstep = 50\n')
    with pytest.raises(ConfigError, match="unknown key 'step' in an experiment"):
        _spec("info-plane", ["--config", str(config)])


@pytest.mark.parametrize(
    "name, argv, needle",
    [
        ("grid", ["--depths", "a,b"], "argument --depths: 'a,b' is not a list like 1,2,3"),
        ("grid", ["--train.loss", "mse"], "argument --train.loss: invalid choice: 'mse'"),
        ("grid", ["--dept", "3"], "unrecognized arguments: --dept"),  # no abbreviations
        ("tune", ["--lr", "0.1"], "argument --lr: '0.1' is not a range like 0.25,4"),
        ("info-plane", ["--copies", "two"], "argument --copies: 'two' is not an int"),
        ("info-plane", ["--preset", "seed005"], "invalid choice: 'seed005'"),
    ],
)
def test_bad_flags_fail_in_one_line_naming_the_value(name, argv, needle, capsys):
    with pytest.raises(SystemExit) as exit_:
        job(name).main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == EXIT_BAD_INPUT
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1


DRY_RUNS = {
    "grid": (["--preset", "tiny"], "grid 'tiny'"),
    "tune": (["--preset", "tiny"], "predict-then-tune 'tiny'"),
    "info-plane": (["--preset", "tiny"], "info-plane job 'tiny'"),
}


@pytest.mark.parametrize("name", NAMES)
def test_dry_run_prints_the_plan_without_starting_ray(name, tmp_path):
    argv, needle = DRY_RUNS[name]
    results = tmp_path / "never"
    code = (
        "import sys, ray\n"
        "from infoflow_ray.sweep.jobs import main\n"
        f"rc = main({name!r}, {[*argv, '--results', str(results), '--dry-run']!r})\n"
        "print('ray started' if ray.is_initialized() else 'ray not started')\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, env=_env()
    )
    assert done.returncode == 0, done.stderr
    assert needle in done.stdout and str(results) in done.stdout
    assert done.stdout.rstrip().endswith("ray not started") and not results.exists()


def _env() -> dict:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_flag_parsers_follow_the_field_types():
    assert flags.parser_for(bool)[0] is None  # --x / --no-x
    assert flags.parser_for(tuple[float, ...])[0]("0.1:0.3:0.1") == (0.1, 0.2, 0.3)
    assert flags.parser_for(tuple[int, ...])[0]("4:12:4") == (4, 8, 12)
    assert flags.parser_for(tuple[str, ...])[0]("mnist, cifar10_gray") == ("mnist", "cifar10_gray")
    assert flags.parser_for(tuple[float, float])[0]("1e-3,1") == (1e-3, 1.0)
    assert flags.parser_for(int | None)[0]("none") is None and flags.parser_for(int | None)[0]("3") == 3
    assert flags.parser_for(typing.Literal["a", "b"])[1]["choices"] == ("a", "b")
    assert flags.parser_for(str | tuple[int, ...])[0]("wide") == "wide"
    assert flags.parser_for(dict)[0] is None


def test_an_alias_that_collides_with_a_derived_flag_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Spec:
        name: str
        depth: int = 3

    import argparse

    with pytest.raises(ValueError, match="alias --depth"):
        flags.add_spec_flags(argparse.ArgumentParser(), Spec, (flags.Alias(("--depth",), "depth"),))


COMMAND = r"python jobs/(full_grid|predict_then_tune|info_plane)\.py([^`|#\n]*)"
SCRIPTS = {"full_grid.py": "grid", "predict_then_tune.py": "tune", "info_plane.py": "info-plane"}


def test_every_job_command_in_the_readme_and_docs_parses():
    """The flags users read in the README, docs/ and the entry scripts' docstrings keep working (each command's
    flags, parsed; nothing runs)."""
    import re
    import shlex

    commands = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "jobs").glob("*.py"))]:
        for line in page.read_text().splitlines():
            for script, rest in re.findall(COMMAND, line):
                rest = rest.split("  ")[0].rstrip(" \\")
                if "[" in rest or "…" in rest or "(" in rest or "--help" in rest:
                    continue
                commands.append((page.name, SCRIPTS[f"{script}.py"], shlex.split(rest)))
    assert len(commands) >= 10 and {name for _, name, _ in commands} == set(NAMES)
    for _page, name, argv in commands:
        p, _ = parser(job(name))
        p.parse_args(argv)  # a flag that is gone exits with 'error: unrecognized arguments' (SystemExit)
