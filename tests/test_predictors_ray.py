"""Predictor tasks of the grid: planning (no Ray) and rows through real Ray, resumed without duplicates."""

from __future__ import annotations

import io

import polars as pl
import pytest

from infoflow_ray.errors import ConfigError
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.grid import Task, resolve_grid

SMALL = dict(
    datasets=["digits"],
    sigma_w2=[0.5, 1.76],
    depths=[3, 6],
    predictors=["mean_field_6xi", "apjn", "ntk_condition", "kl_per_image"],
)


def test_grid_plans_one_predictor_task_per_network_on_the_cascades_seeds(tmp_path):
    grid = resolve_grid("tiny", overrides={**SMALL, "results": str(tmp_path)})
    tasks = grid.tasks()
    predicted = [t for t in tasks if t.kind == "predictors"]
    assert "predictors" in grid.kinds
    assert sorted((t.network.sigma_w2, t.network.depth) for t in predicted) == [
        (0.5, 3),
        (0.5, 6),
        (1.76, 3),
        (1.76, 6),
    ]
    assert all(t.predictors == ("mean_field_6xi", "apjn", "ntk_condition") for t in predicted)  # cutoffs are read
    cascade = next(t for t in tasks if t.kind == "cascade" and t.network.sigma_w2 == 0.5)
    twin = next(t for t in predicted if t.network.sigma_w2 == 0.5 and t.network.depth == 6)
    assert twin.network == cascade.network and twin.seed == cascade.seed  # the same untrained network
    assert Task.from_config(twin.config()) == twin and twin.task_id not in {t.task_id for t in tasks if t != twin}
    plain = resolve_grid("tiny", overrides={**SMALL, "predictors": [], "results": str(tmp_path)})
    assert "predictors" not in plain.kinds and {t.task_id for t in plain.tasks()} <= {t.task_id for t in tasks}


def test_grid_refuses_bad_predictor_settings_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown predictor 'snip'; choose one of kl_per_image") as e:
        resolve_grid("tiny", overrides={"predictors": ["snip"]})
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="predictors must be .*search.enabled"):
        resolve_grid("default", overrides={"predictors": ["apjn"]})
    with pytest.raises(ConfigError, match="kinds must be a list with 'predictors' only when"):
        resolve_grid("tiny", overrides={"kinds": ["predictors"]})


def test_predictor_rows_land_through_ray_and_resume_without_duplicates(tmp_path, ray_local):
    from infoflow_ray.sweep.driver import run_grid

    grid = resolve_grid("tiny", overrides={**SMALL, "kinds": ["predictors"], "results": str(tmp_path / "r")})
    outcome = run_grid(grid, out=io.StringIO(), progress_interval_seconds=300)
    assert not outcome.failed and outcome.total == {"predictors": 4}
    store = ResultStore.open(grid.results, create=False)
    rows = store.scan("predictors").collect()
    assert rows.height == 12 and rows.select("task_id", "predictor").n_unique() == 12
    assert set(rows["predictor"]) == {"mean_field_6xi", "apjn", "ntk_condition"}
    assert (rows["seconds"] >= 0).all() and rows.filter(pl.col("predictor") == "ntk_condition")[
        "predicted_depth"
    ].is_nan().all()
    mf = rows.filter(pl.col("predictor") == "mean_field_6xi").sort("sigma_w2")
    assert mf["score"][0] < mf["score"][-1]  # ξ_c grows from σw² = 0.5 towards criticality (1.76)
    assert store.scan("runs").filter(pl.col("kind") == "predictors").collect().height == 4
    # a second run skips every task; after losing one task's runs file only that task runs again
    again = run_grid(grid, out=io.StringIO(), progress_interval_seconds=300)
    assert again.skipped == {"predictors": 4}
    lost = rows["task_id"][0]
    (tmp_path / "r" / "runs" / "digits" / f"{lost}.parquet").unlink()
    third = run_grid(grid, out=io.StringIO(), progress_interval_seconds=300)
    assert third.skipped == {"predictors": 3} and not third.failed
    after = store.scan("predictors").collect()
    assert after.height == 12 and after.select("task_id", "predictor").n_unique() == 12
