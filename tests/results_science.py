"""The science of a results folder, for comparing two runs: every table a grid writes, sorted by its key,
without the columns that say when, where and in which attempt a task ran (imported by the tests)."""

import polars as pl

from infoflow_ray.store import ResultStore

# Columns that say when, where and in which attempt a task ran, not what it computed: left out of comparisons.
# git_commit: a commit in this checkout between two runs would change it; resumed_from_epoch: a resumed run
# continues its trainings from their checkpoints by design.
NOT_SCIENCE = (
    "seconds",
    "started_at",
    "finished_at",
    "node_id",
    "hostname",
    "attempts",
    "resumed_from_epoch",
    "git_commit",
)
KEYS = {
    "cutoffs": ["task_id", "measure"],
    "curves": ["task_id", "measure", "layer"],
    "reconstructions": ["task_id", "image_index", "layer"],
    "train_epochs": ["task_id", "epoch"],
    "train_summary": ["task_id"],
    "runs": ["task_id"],
}


def science(store: ResultStore | str, task_ids: list[str] | None = None) -> dict[str, pl.DataFrame]:
    """table → its rows (of ``task_ids`` only, when given), sorted by KEYS, without the NOT_SCIENCE columns."""
    if not isinstance(store, ResultStore):
        store = ResultStore.open(str(store), create=False)
    frames = {}
    for table, key in KEYS.items():
        frame = store.scan(table)
        if task_ids is not None:
            frame = frame.filter(pl.col("task_id").is_in(task_ids))
        frame = frame.collect()
        frames[table] = frame.drop([c for c in NOT_SCIENCE if c in frame.columns]).sort(key)
    return frames
