"""Results storage: Parquet tables, one file per finished task per table, written atomically (docs/method.md §7).

A results location is a local path or a URI that ``pyarrow.fs`` understands (``s3://``, ``gs://``, ``file://``):

    {root}/_infoflow.json                           schema version, creation time, package version
    {root}/{table}/{dataset}/{task_id}.parquet      one file per finished task per table
    {root}/failures/{dataset}/{task_id}-{attempt}.parquet
    {root}/search/{dataset}/{search_id}.parquet     an adaptive search's decision log, rewritten every round
    {root}/tune_trials/{dataset}/{experiment}-{trial}.parquet   one trial of a predict-then-tune search
    {root}/_grids/{name}-{hash}.json                the planned grids (what was asked for)

Every file holds all its columns, ``dataset`` included, and the folders are plain names (not hive ``key=value``):
``pandas.read_parquet(folder)``, ``pyarrow.dataset.dataset(folder, partitioning="hive")``, ``polars.scan_parquet``
and DuckDB all read a table's folder with their default calls (a hive folder name would duplicate the column
with another type, which pandas and pyarrow refuse to merge).

A task is finished when its ``runs`` file exists and its Parquet footer reads; ``write_task`` writes ``runs``
last, and its ``outputs`` column records the rows and bytes of every other file of the task, so ``verify``
finds a finished task whose files were later deleted or damaged and ``requeue`` makes it run again.

On a local disk each file is written to a temp file ``{root}/.tmp-*`` and renamed over the final name (a
concurrent writer of the same task is harmless: the last rename wins, with identical content); on an object
store the final key is written directly (a PUT appears whole). Readers skip names starting with '.' or '_' and
warn about, then skip, files whose footer cannot be read — such a ``runs`` file makes its task run again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import TypeVar

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from infoflow_ray.errors import ConfigError, ResultsError

SCHEMA_VERSION = 3  # bump when a column of an existing table changes (with a step in upgrade.py); not for a new table
MANIFEST = "_infoflow.json"
TEMP_PREFIX = ".tmp-"  # local writes go to {root}/.tmp-*, then are renamed into place: never in a table's folder
PROBE_PREFIX = ".write-probe-"
UTC_US = pa.timestamp("us", tz="UTC")
T = TypeVar("T")

# The values of the `measure` column of `curves` and of `cutoffs` (see their schemas below for units).
KEYS = ["dataset", "profile", "sigma_b2", "sigma_w2"]
"""The keys of one point (σw², σb²) of one network profile on one dataset, over seeds (analysis frames' rows)."""
GROUP = ["dataset", "profile", "sigma_b2"]
"""The keys of a whole σw² axis: ``KEYS`` without sigma_w2."""
CURVE_MEASURES = ("kl_mean", "kl_median", "diff_entropy", "clamped_pixels", "decoder_loss")
CUTOFF_MEASURES = ("kl_mean", "kl_median_normalised", "diff_entropy", "kl_per_image")

# The columns that say which task (and which network) a row belongs to; depth is the network's depth L.
_TASK = [
    ("task_id", pa.string()),
    ("dataset", pa.string()),
    ("profile", pa.string()),
    ("sigma_w2", pa.float64()),
    ("sigma_b2", pa.float64()),
    ("depth", pa.int64()),
    ("seed", pa.int64()),
]

TABLES: dict[str, pa.Schema] = {
    "runs": pa.schema(
        [  # one row per finished task
            ("task_id", pa.string()),
            ("kind", pa.string()),  # 'cascade' | 'baseline' | 'predictors'
            ("grid_name", pa.string()),
            *_TASK[1:],  # dataset .. seed
            ("status", pa.string()),  # 'ok' | 'nonfinite' | 'diverged'
            ("config_json", pa.string()),  # the task's full config, the input of task_id()
            ("package_version", pa.string()),
            ("git_commit", pa.string()),
            ("torch_version", pa.string()),
            ("ray_version", pa.string()),
            ("python_version", pa.string()),
            ("hostname", pa.string()),
            ("node_id", pa.string()),
            ("device", pa.string()),  # e.g. 'cuda:0', 'cpu'
            ("started_at", UTC_US),
            ("finished_at", UTC_US),
            ("seconds", pa.float64()),  # wall seconds of the successful attempt
            ("attempts", pa.int64()),  # 1 when the first attempt succeeded
            # JSON {table: {"rows": n, "bytes": b}} of the task's other files, filled in by write_task (for verify)
            ("outputs", pa.string()),
        ]
    ),
    "curves": pa.schema(
        _TASK
        + [  # long format: one row per (layer, measure) of a cascade
            ("layer", pa.int64()),  # 0 = input, L = output
            # 'kl_mean' | 'kl_median' (nats) | 'diff_entropy' (nats per pixel) | 'clamped_pixels' (count) |
            # 'decoder_loss' (mean squared error per pixel, last decoder epoch)
            ("measure", pa.string()),
            ("value", pa.float64()),  # NaN/inf are stored, never dropped
            ("finite", pa.bool_()),
        ]
    ),
    "cutoffs": pa.schema(
        _TASK
        + [
            ("measure", pa.string()),  # 'kl_mean' | 'kl_median_normalised' | 'diff_entropy' | 'kl_per_image'
            ("cutoff_layer", pa.float64()),  # layer index; for kl_per_image the mean over images
            ("cutoff_std", pa.float64()),  # std over images for kl_per_image, NaN otherwise (layers)
            ("saturated", pa.bool_()),
            ("finite", pa.bool_()),
            ("last_layer", pa.int64()),  # the deepest layer the cutoff search looked at
            ("rtol", pa.float64()),
            ("atol", pa.float64()),  # the saturation tolerances used
        ]
    ),
    "reconstructions": pa.schema(
        _TASK
        + [
            ("image_index", pa.int64()),  # index into the test set
            ("layer", pa.int64()),
            ("height", pa.int64()),
            ("width", pa.int64()),  # pixels
            ("pixels", pa.list_(pa.float32())),  # row-major, height * width values
        ]
    ),
    "train_epochs": pa.schema(
        _TASK
        + [
            ("loss_fn", pa.string()),
            ("epoch", pa.int64()),  # epoch counts from 1
            ("train_loss", pa.float64()),
            ("test_loss", pa.float64()),  # nats per example
            ("test_accuracy", pa.float64()),  # fraction in [0, 1]
            ("seconds", pa.float64()),  # wall seconds of this epoch
        ]
    ),
    "train_summary": pa.schema(
        _TASK
        + [
            ("loss_fn", pa.string()),
            ("epochs", pa.int64()),  # epochs run
            ("best_test_accuracy", pa.float64()),
            ("final_test_accuracy", pa.float64()),
            ("accuracy_threshold", pa.float64()),
            ("reached_threshold", pa.bool_()),
            ("stop_reason", pa.string()),  # 'threshold' | 'budget' | 'diverged' | 'mi_plateau'
            ("seconds", pa.float64()),  # wall seconds of the whole training
            ("resumed_from_epoch", pa.int64()),  # the checkpoint's epoch the finishing attempt started from; 0 = start
            # the first epoch (from 1) whose test accuracy reached accuracy_threshold; null when none did (v3)
            ("threshold_epoch", pa.int64()),
        ]
    ),
    "info_plane": pa.schema(
        _TASK
        + [  # one row per (stage, epoch or step, layer) point; see sweep.task_runner.info_plane_rows
            # 'untrained' (a cascade task's network at init) | 'training' (a point of a training run)
            ("stage", pa.string()),
            # epochs of training done (0: before the first, and 'untrained'); null when counted in steps
            ("epoch", pa.int64()),
            (
                "step",
                pa.int64(),
            ),  # SGD steps done (one minibatch each; jobs/info_plane.py); null when counted in epochs
            ("layer", pa.int64()),  # layer T_l, 1-based (the output layer L included where the writer says so)
            # 'binning' | 'kde' | 'ksg' | 'adaptive' | 'bspline' | 'dcor' | 'density' | 'binning_extended'
            ("estimator", pa.string()),
            ("i_xt", pa.float64()),
            ("i_ty", pa.float64()),  # I(X;T_l), I(T_l;Y) in nats; for 'dcor' dCor(X,T_l), dCor(T_l,Y) in [0, 1]
            ("n_samples", pa.int64()),  # N, the samples the estimate used
            ("param", pa.string()),  # the estimator's parameters, 'name=value' joined by ';', e.g. 'n_bins=30'
            ("seconds", pa.float64()),  # wall seconds of estimating all layers of this point
        ]
    ),
    "search": pa.schema(
        [  # one row per decision of an adaptive search; one file per search group (write_search)
            ("search_id", pa.string()),  # the search group: (dataset, profile, σb²) of one grid's search settings
            ("dataset", pa.string()),
            ("profile", pa.string()),
            ("sigma_b2", pa.float64()),
            # 'depth' (ℓ_train of one σw², seed) | 'sigma_w2_interval' | 'edge_check' | 'peak' | 'rung' (ℓ_train of one
            # σw², seed at a smaller budget: asked = budget, value = ℓ_train, NaN when not determined) | 'convergence'
            # (one σw² over seeds: asked = budget = the budget it converged at, NaN/null when not; passed: converged)
            ("search", pa.string()),
            ("target_depth", pa.int64()),  # L of the σw² interval search (null when the search has none)
            ("sigma_w2", pa.float64()),  # the σw² of a depth search or an edge check; NaN for the others
            ("seed", pa.int64()),  # -1 where the decision is over all seeds
            ("step", pa.int64()),  # 1-based order of the decisions of one search
            ("asked", pa.float64()),  # the depth (depth search, edge check) or the σw² (interval) asked for
            ("task_ids", pa.string()),  # the task(s) that answered, comma-joined
            ("reason", pa.string()),  # why this was asked
            ("outcome", pa.string()),  # what came back, in words ('' while pending)
            ("value", pa.float64()),  # best test accuracy (depth, edge) or the cutoff layer (interval); NaN pending
            ("passed", pa.bool_()),  # reached the threshold / ℓ_c ≥ target depth; null while pending
            ("contradiction", pa.string()),  # non-empty when the outcome contradicts an earlier one
            ("bracket_low", pa.float64()),
            ("bracket_high", pa.float64()),  # the answer so far (see `search` docs)
            # the search has reached its answer; for a 'rung' row: its trainings determine ℓ_train at that budget
            ("done", pa.bool_()),
            ("budget", pa.int64()),  # the training budget (epochs) a 'rung' row reads ℓ_train at; null otherwise (v3)
        ]
    ),
    # Cascades of trained baseline networks (grid option `interpret`), written with the training's own rows:
    "trained_curves": pa.schema(
        _TASK
        + [("epoch", pa.int64())]
        + [  # as `curves`; epoch: the training epochs the network had
            ("layer", pa.int64()),
            ("measure", pa.string()),
            ("value", pa.float64()),
            ("finite", pa.bool_()),
        ]
    ),
    "trained_cutoffs": pa.schema(
        _TASK
        + [("epoch", pa.int64())]
        + [  # as `cutoffs`
            ("measure", pa.string()),
            ("cutoff_layer", pa.float64()),
            ("cutoff_std", pa.float64()),
            ("saturated", pa.bool_()),
            ("finite", pa.bool_()),
            ("last_layer", pa.int64()),
            ("rtol", pa.float64()),
            ("atol", pa.float64()),
        ]
    ),
    "retraced": pa.schema(
        _TASK
        + [  # one row per (chosen test image, stored layer): the image (layer 0) and its reconstructions
            ("epoch", pa.int64()),
            ("image_index", pa.int64()),  # index into the test split
            ("label", pa.int64()),  # the true label
            ("predicted", pa.int64()),  # the trained network's label
            ("confidence", pa.float64()),  # its softmax probability (output taken as logits)
            ("rule", pa.string()),  # why it was chosen: 'most_confident_correct' | 'most_confident_mistake'
            ("layer", pa.int64()),
            ("height", pa.int64()),
            ("width", pa.int64()),
            ("pixels", pa.list_(pa.float32())),
        ]
    ),
    "perfect_inputs": pa.schema(
        _TASK
        + [  # one row per (class, stored layer): the perfect input (layer 0) and its reconstructions
            ("epoch", pa.int64()),
            ("label", pa.int64()),  # the class whose output activation was decoded
            ("perfect_output", pa.string()),  # 'extreme' | 'class_mean' (infoflow_ray.interpret)
            ("predicted", pa.int64()),  # the label the network gives the perfect input, fed forward
            ("confidence", pa.float64()),
            ("layer", pa.int64()),
            ("height", pa.int64()),
            ("width", pa.int64()),
            ("pixels", pa.list_(pa.float32())),
        ]
    ),
    "predictors": pa.schema(
        _TASK
        + [  # one row per (predictor task, predictor): infoflow_ray.predictors on the untrained network (depth L)
            ("predictor", pa.string()),  # the registry name, e.g. 'apjn', 'ntk_condition', 'mean_field_6xi'
            ("predictor_kind", pa.string()),  # 'closed_form' | 'network'
            ("score", pa.float64()),  # the predictor's own score (units: docs/predictors.md); ±inf, NaN stored
            ("predicted_depth", pa.float64()),  # layers; NaN where the predictor gives no depth
            ("higher_is_better", pa.bool_()),  # the score's direction: higher = more trainable
            ("settings", pa.string()),  # JSON of the settings it ran with (defaults filled in)
            ("seconds", pa.float64()),  # task-seconds of this predictor on this network (data loading excluded)
            ("device", pa.string()),
        ]
    ),
    "tune_trials": pa.schema(
        [  # one row per trial of a predict-then-tune job (write_tune_trial); one file per trial
            ("experiment_id", pa.string()),  # one Tune experiment: (arm, search seed) of one job's settings
            ("job", pa.string()),  # the job's preset name, e.g. 'cpu'
            ("settings_id", pa.string()),  # hash of the job's settings (TuningSpec.settings_id)
            ("dataset", pa.string()),
            ("profile", pa.string()),
            ("sigma_b2", pa.float64()),
            ("depth", pa.int64()),  # the tuned network's depth L
            ("arm", pa.string()),  # 'predicted' (σw² inside the predicted interval) | 'control' (the whole range)
            ("searcher", pa.string()),  # 'tpe' | 'random' (Optuna samplers through Ray Tune's OptunaSearch)
            ("search_seed", pa.int64()),  # the searcher's seed, also the networks' initialisation seed
            ("space_sigma_w2_low", pa.float64()),
            ("space_sigma_w2_high", pa.float64()),  # the σw² range this arm searched
            ("trial_id", pa.string()),  # Tune's trial id
            ("trial_index", pa.int64()),  # order in which the searcher proposed the trial, from 0 (Tune's tag)
            ("sigma_w2", pa.float64()),
            ("lr", pa.float64()),
            ("batch_size", pa.int64()),
            ("optimizer", pa.string()),  # the trial's hyperparameters
            ("epochs", pa.int64()),  # epochs trained
            ("max_epochs", pa.int64()),  # the budget per trial
            ("best_test_accuracy", pa.float64()),
            ("final_test_accuracy", pa.float64()),
            ("stopped_by", pa.string()),  # 'asha' (early stop) | 'budget' | 'diverged' | 'error'
            ("setup_seconds", pa.float64()),  # loading data and building the network, before the first epoch
            ("seconds", pa.float64()),  # task-seconds of the trial: setup + every epoch
            ("test_accuracy_by_epoch", pa.list_(pa.float64())),
            ("seconds_by_epoch", pa.list_(pa.float64())),
            ("ended_at_by_epoch", pa.list_(UTC_US)),  # when each epoch ended: orders the arm's epochs in time
            ("prediction_seconds", pa.float64()),  # the prediction's task-seconds (cascades or predictor; 0: control)
            ("target_accuracy", pa.float64()),  # the job's target accuracy; NaN: derived at analysis
            ("device", pa.string()),
        ]
    ),
    "failures": pa.schema(
        [  # one file per failed attempt, written by write_failure
            ("task_id", pa.string()),
            ("kind", pa.string()),
            ("dataset", pa.string()),
            ("sigma_w2", pa.float64()),
            ("depth", pa.int64()),
            ("seed", pa.int64()),
            ("attempt", pa.int64()),  # 1-based
            ("error", pa.string()),
            ("failed_at", UTC_US),
        ]
    ),
}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


@dataclass(frozen=True)
class DamagedTask:
    """A finished task whose files are not what was written (``ResultStore.verify``)."""

    task_id: str
    dataset: str
    label: str  # e.g. 'baseline mnist_t10k σw²=1.76 L=6 seed 0'; '?' when its runs file is unreadable
    problems: tuple[str, ...]  # one line each, e.g. 'curves file missing'


class CorruptFileWarning(UserWarning):
    """A results file cannot be read (truncated or corrupt) and is skipped."""


def task_id(config: dict) -> str:
    """First 16 hex chars of the sha256 of the task's full config as canonical JSON (sorted keys, no spaces).

    Floats are written by ``float.__repr__`` (the shortest repr that round-trips), so equal configs give equal
    ids on every platform and any changed value gives a different id. ``1`` and ``1.0`` differ.
    """
    try:
        text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_plain)
    except TypeError as e:
        raise ConfigError(f"task config cannot be hashed: {e}; use str, int, float, bool, list and dict") from None
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def _plain(value: object) -> object:
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    raise TypeError(f"{value!r} of type {type(value).__name__} is not JSON serialisable")


def _reason(e: Exception) -> str:
    """One line saying why an OS or Arrow call failed ('Permission denied', 'No space left on device')."""
    errno = getattr(e, "errno", None)
    return os.strerror(errno) if errno else " ".join(str(e).split())


def _credentials_hint(location: str) -> str:
    """For an object store: where its credentials come from (the standard variables the cloud SDKs read)."""
    if location.startswith("s3://"):
        return (
            " (credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the node's IAM role; "
            "AWS_ENDPOINT_URL for an S3-compatible server; the bucket must exist)"
        )
    if location.startswith("gs://"):
        return " (credentials: GOOGLE_APPLICATION_CREDENTIALS or the node's service account; the bucket must exist)"
    return ""


def _check_name(what: str, value: object) -> None:
    if not (isinstance(value, str) and _NAME.fullmatch(value)):
        raise ConfigError(f"{what} must be letters, digits and ._+- not starting with . or _, got {value!r}")


def _conform(name: str, rows: pa.Table | list[dict]) -> pa.Table:
    """``rows`` as a table of ``TABLES[name]``'s schema: columns in order, values cast; ConfigError otherwise."""
    if name not in TABLES:
        raise ConfigError(f"unknown results table '{name}'; allowed: {', '.join(TABLES)}")
    schema = TABLES[name]
    if isinstance(rows, pa.Table):
        present = have_all = set(rows.column_names)
    else:
        present = set().union(*(r.keys() for r in rows))
        have_all = set(schema.names).intersection(*(r.keys() for r in rows))
    unknown = sorted(present - set(schema.names))
    missing = [c for c in schema.names if c not in have_all]
    if unknown:
        raise ConfigError(
            f"table '{name}' has unknown column(s) {', '.join(unknown)}; allowed: {', '.join(schema.names)}"
        )
    if missing and (isinstance(rows, pa.Table) or rows):
        raise ConfigError(
            f"table '{name}' lacks column(s) {', '.join(missing)}; every row needs all of {', '.join(schema.names)}"
        )
    try:
        if isinstance(rows, pa.Table):
            return rows.select(schema.names).cast(schema)
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowException, TypeError, ValueError) as e:
        raise ConfigError(f"table '{name}' does not fit its schema: {_reason(e)}") from None


def _with_column(rows: pa.Table | list[dict], name: str, value: object) -> pa.Table | list[dict]:
    """``rows`` with column ``name`` set to ``value`` in every row (added, or replaced)."""
    if isinstance(rows, pa.Table):
        if name in rows.column_names:
            rows = rows.drop_columns([name])
        return rows.append_column(name, pa.array([value] * rows.num_rows, type=pa.string()))
    return [{**row, name: value} for row in rows]


def _package_version() -> str:
    try:
        return metadata.version("infoflow-ray")
    except metadata.PackageNotFoundError:
        return "unknown"


class ResultStore:
    """A results location: write a finished task's tables, list finished tasks, scan a table with polars."""

    def __init__(self, location: str, filesystem: pafs.FileSystem, root: str):
        self._location, self._filesystem, self._root = location, filesystem, root.rstrip("/")
        self._local = isinstance(filesystem, pafs.LocalFileSystem)
        self._threads = 8 if self._local else 64  # concurrent reads of many small files (see _read_each)

    location = property(lambda self: self._location, doc="The location as the user gave it.")
    filesystem = property(lambda self: self._filesystem, doc="The pyarrow filesystem holding the results.")
    root = property(lambda self: self._root, doc="The results folder's path on that filesystem.")

    @classmethod
    def open(cls, location: str, create: bool = True) -> ResultStore:
        """Open ``location``; with ``create`` make it if missing and check that it is writable (fail fast).

        ``create=False`` opens an existing results folder for reading only: no writability probe.
        """
        try:
            if "://" in location:
                filesystem, root = pafs.FileSystem.from_uri(location)
            else:
                filesystem, root = pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(location))
            kind = filesystem.get_file_info(root).type
        except (OSError, pa.ArrowException) as e:
            raise ResultsError(
                f"cannot open results location '{location}': {_reason(e)}{_credentials_hint(location)}"
            ) from None
        if kind == pafs.FileType.File:
            raise ResultsError(f"results location '{location}' is a file; give a directory or a URI")
        if kind == pafs.FileType.NotFound:
            if not create:
                raise ResultsError(f"results location '{location}' does not exist; give an existing results folder")
            try:
                filesystem.create_dir(root, recursive=True)
            except OSError as e:
                raise ResultsError(
                    f"cannot create results location '{location}': {_reason(e)}; "
                    f"give a writable directory or URI{_credentials_hint(location)}"
                ) from None
        store = cls(location, filesystem, root)
        manifest = store._read_manifest()
        if manifest is None and not create:
            raise ResultsError(f"results location '{location}' has no {MANIFEST}; it is not an infoflow results folder")
        if manifest is not None and manifest.get("schema_version") in range(1, SCHEMA_VERSION):
            version = manifest["schema_version"]
            layout = " (hive folders dataset=…)" if version == 1 else ""
            raise ResultsError(
                f"results location '{location}' has schema version {version}{layout}; this infoflow-ray "
                f"writes version {SCHEMA_VERSION}: convert it in place with `python -m infoflow_ray.upgrade {location}`"
            )
        if manifest is not None and manifest.get("schema_version") != SCHEMA_VERSION:
            raise ResultsError(
                f"results location '{location}' has schema version {manifest.get('schema_version')!r}"
                f" but this infoflow-ray writes version {SCHEMA_VERSION}; use a new results location"
            )
        if create:
            store._probe_writable()
            if manifest is None:
                store._put(
                    f"{store.root}/{MANIFEST}",
                    json.dumps(
                        {
                            "schema_version": SCHEMA_VERSION,
                            "created": datetime.now(UTC).isoformat(),
                            "package_version": _package_version(),
                        },
                        indent=2,
                    ).encode(),
                )
        return store

    def write_task(self, task_id: str, dataset: str, tables: dict[str, pa.Table | list[dict]]) -> None:
        """Store a finished task: every table but ``runs`` first, then its one-row ``runs`` table.

        All tables are validated before anything is written. Writing a task again replaces its files.
        """
        _check_name("task_id", task_id)
        _check_name("dataset", dataset)
        if "failures" in tables:
            raise ConfigError("write_task does not take the 'failures' table; use write_failure")
        if "runs" in tables:
            tables = {**tables, "runs": _with_column(tables["runs"], "outputs", None)}
        conformed = {name: _conform(name, rows) for name, rows in tables.items()}
        if "runs" not in conformed or conformed["runs"].num_rows != 1:
            rows = conformed["runs"].num_rows if "runs" in conformed else 0
            raise ConfigError(f"write_task needs a 'runs' table of exactly 1 row for task '{task_id}', got {rows}")
        for name, table in conformed.items():
            for column, expected in (("task_id", task_id), ("dataset", dataset)):
                if set(table.column(column).to_pylist()) - {expected}:
                    raise ConfigError(
                        f"table '{name}' has rows whose {column} is not '{expected}'; "
                        f"write one task of one dataset per call"
                    )
        outputs = {
            name: {"rows": table.num_rows, "bytes": self._write_table(name, dataset, task_id, table)}
            for name, table in sorted(conformed.items())
            if name != "runs"
        }
        runs = _with_column(conformed["runs"], "outputs", json.dumps(outputs, sort_keys=True))
        self._write_table("runs", dataset, task_id, _conform("runs", runs))

    def write_failure(self, task_id: str, attempt: int, row: dict) -> None:
        """Record one failed attempt: ``row`` holds the other ``failures`` columns (``failed_at`` defaults to now)."""
        _check_name("task_id", task_id)
        row = {"failed_at": datetime.now(UTC), **row, "task_id": task_id, "attempt": attempt}
        table = _conform("failures", [row])
        _check_name("dataset", row["dataset"])
        self._write_table("failures", row["dataset"], f"{task_id}-{attempt}", table)

    def write_search(self, search_id: str, dataset: str, rows: list[dict]) -> None:
        """Replace the decision log of one search group (``search`` table): the search replays its decisions
        from the stored results every round, so the whole log is rewritten, atomically, each time."""
        _check_name("search_id", search_id)
        _check_name("dataset", dataset)
        self._write_table("search", dataset, search_id, _conform("search", rows))

    def write_tune_trial(self, experiment_id: str, trial_id: str, dataset: str, row: dict) -> None:
        """Store one ended trial of a predict-then-tune experiment (``tune_trials`` table); writing it again
        replaces it with the same row, so a resumed experiment never duplicates a trial."""
        _check_name("experiment_id", experiment_id)
        _check_name("trial_id", trial_id)
        _check_name("dataset", dataset)
        self._write_table("tune_trials", dataset, f"{experiment_id}-{trial_id}", _conform("tune_trials", [row]))

    def finished_task_ids(self, kind: str | None = None) -> set[str]:
        """Ids of the tasks with a readable ``runs`` file, optionally only those of ``kind`` ('cascade', 'baseline')."""

        def kind_of(path: str) -> str:
            with self.filesystem.open_input_file(path) as f:
                return pq.ParquetFile(f).read(columns=["kind"]).column(0)[0].as_py()

        read = self._read_each(self._files("runs"), kind_of if kind is not None else self._footer)
        return {
            path.rsplit("/", 1)[1].removesuffix(".parquet")
            for path, value in read.items()
            if kind is None or value == kind
        }

    def verify(self) -> list[DamagedTask]:
        """Check every finished task's files against what ``write_task`` recorded in its ``runs`` row: present,
        of the size written, footer readable, the row count written. Returns the tasks with a problem (an
        unreadable ``runs`` file included: such a task already counts as not finished). Reads footers only."""

        def check(runs_path: str) -> DamagedTask | None:
            dataset, stem = runs_path.rsplit("/", 2)[-2:]
            task = stem.removesuffix(".parquet")
            try:
                with self.filesystem.open_input_file(runs_path) as f:
                    row = pq.read_table(f, columns=["kind", "sigma_w2", "depth", "seed", "outputs"]).to_pylist()[0]
                outputs = json.loads(row["outputs"])
            except (OSError, pa.ArrowException, ValueError, TypeError, IndexError) as e:
                return DamagedTask(task, dataset, "?", (f"runs file unreadable ({_reason(e)})",))
            problems = tuple(
                p
                for table, written in outputs.items()
                if (p := self._check_file(table, self.path(table, dataset, task), written))
            )
            if not problems:
                return None
            label = f"{row['kind']} {dataset} σw²={row['sigma_w2']:g} L={row['depth']} seed {row['seed']}"
            return DamagedTask(task, dataset, label, problems)

        with ThreadPoolExecutor(self._threads) as pool:
            return [d for d in pool.map(check, self._files("runs")) if d is not None]

    def requeue(self, damaged: list[DamagedTask]) -> None:
        """Make these tasks unfinished (delete their ``runs`` file), so the next run of their grid computes them
        again and rewrites every file of theirs. No other file is touched."""
        for task in damaged:
            self._delete_quietly(self.path("runs", task.dataset, task.task_id))

    def _check_file(self, table: str, path: str, written: dict) -> str:
        """'' when the file at ``path`` is what was written, else what is wrong with it, in words."""
        info = self.filesystem.get_file_info(path)
        if info.type != pafs.FileType.File:
            return f"{table} file missing"
        if info.size != written["bytes"]:
            return f"{table} file has {info.size} bytes, {written['bytes']} were written"
        try:
            with self.filesystem.open_input_file(path) as f:
                rows = pq.read_metadata(f).num_rows
        except (OSError, pa.ArrowException) as e:
            return f"{table} file unreadable ({_reason(e)})"
        return "" if rows == written["rows"] else f"{table} file has {rows} rows, {written['rows']} were written"

    @contextlib.contextmanager
    def exclusive(self):
        """Hold this results location for one driver while the block runs (local folders).

        A second driver on the same folder is refused with a ResultsError instead of racing the first one's
        Tune state. The lock is an OS file lock, released even when the holder is killed (a killed holder leaves
        its empty ``_driver.lock`` file, which the next driver takes over). Object stores have
        no such lock: there the per-task atomic, idempotent writes keep results whole, but run one driver.
        """
        if not self._local:
            yield
            return
        from filelock import FileLock, Timeout

        lock = FileLock(f"{self.root}/_driver.lock", timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise ResultsError(
                f"another driver is running on results location '{self.location}'; wait for it "
                "to finish, or give another --results"
            ) from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.remove(lock.lock_file)  # while still held, so the run leaves no lock file behind
            lock.release()

    def write_grid(self, name: str, grid: dict, tasks: list[dict], growing: bool = False) -> str:
        """Record a planned grid in ``_grids/{name}-{hash}.json`` (its settings and every task's id, kind and
        keys), so readers can tell what is missing from what was never asked for. Returns the file's path.

        ``growing``: the task list of these settings grows as it runs (an adaptive search records what it has
        asked for so far, every round): the file is named by the settings alone and replaced each time."""
        body = {"name": name, "grid": grid, "tasks": tasks}
        digest = task_id({"grid": grid} if growing else {"grid": grid, "tasks": [t["task_id"] for t in tasks]})
        path = f"{self.root}/_grids/{name}-{digest}.json"
        self.filesystem.create_dir(f"{self.root}/_grids", recursive=True)
        self._put(path, json.dumps(body, indent=1, default=str).encode())
        return path

    def planned_grids(self) -> list[dict]:
        """Every grid recorded by ``write_grid`` (newest file last)."""
        selector = pafs.FileSelector(f"{self.root}/_grids", allow_not_found=True)
        infos = sorted(
            (i for i in self.filesystem.get_file_info(selector) if i.path.endswith(".json")),
            key=lambda i: i.mtime_ns or 0,
        )
        out = []
        for info in infos:
            with self.filesystem.open_input_stream(info.path) as f:
                out.append(json.loads(f.read()))
        return out

    def is_finished(self, task_id: str, dataset: str) -> bool:
        """Whether one task has a readable ``runs`` file (cheaper than listing every finished task)."""
        path = self.path("runs", dataset, task_id)
        if self.filesystem.get_file_info(path).type != pafs.FileType.File:
            return False
        return self._footer_reads(path)

    def scan(self, table: str) -> pl.LazyFrame:
        """All readable files of ``table`` as one lazy frame (empty, with the table's schema, when none)."""
        if table not in TABLES:
            raise ConfigError(f"unknown results table '{table}'; allowed: {', '.join(TABLES)}")
        schema = TABLES[table]
        paths = list(self._read_each(self._files(table), self._footer))
        polars_schema = pl.from_arrow(schema.empty_table()).schema
        if not paths:
            return pl.LazyFrame(schema=polars_schema)
        if self._local:  # the files hold `dataset` already: no hive column on top
            return pl.scan_parquet(paths, schema=polars_schema, hive_partitioning=False, glob=False)
        return pl.scan_pyarrow_dataset(ds.dataset(paths, schema=schema, format="parquet", filesystem=self.filesystem))

    def remove_stale_temp_files(self, older_than_seconds: float = 3600) -> int:
        """Delete temp files of crashed writers (``{root}/.tmp-*``) older than ``older_than_seconds``; return how
        many."""
        infos = self.filesystem.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        cutoff_ns = time.time_ns() - int(older_than_seconds * 1e9)
        stale = [
            i.path
            for i in infos
            if i.type == pafs.FileType.File and i.base_name.startswith(TEMP_PREFIX) and i.mtime_ns < cutoff_ns
        ]
        for path in stale:
            self._delete_quietly(path)
        return len(stale)

    def path(self, table: str, dataset: str, stem: str) -> str:
        """Where the file of one task (``stem``: its id) of ``table`` and ``dataset`` lives."""
        return f"{self.root}/{table}/{dataset}/{stem}.parquet"

    def _write_table(self, table: str, dataset: str, stem: str, data: pa.Table) -> int:
        """Write one file atomically; return its size in bytes."""
        sink = pa.BufferOutputStream()
        pq.write_table(data, sink)
        buffer = sink.getvalue()
        self._put(self.path(table, dataset, stem), buffer)
        return buffer.size

    def _put(self, path: str, data: bytes | pa.Buffer) -> None:
        """Write ``data`` at ``path`` so that no reader sees it partially written."""
        directory, name = path.rsplit("/", 1)
        # Not in the table's folder: polars and DuckDB read every file there, hidden ones included.
        target = f"{self.root}/{TEMP_PREFIX}{uuid.uuid4().hex}-{name}.partial" if self._local else path
        try:
            self.filesystem.create_dir(directory, recursive=True)
            with self.filesystem.open_output_stream(target) as f:
                f.write(data)
            if target != path:
                self.filesystem.move(target, path)  # rename(2): atomic, replaces an existing file
        except OSError as e:
            if target != path:
                self._delete_quietly(target)
            raise ResultsError(f"cannot write results file '{path}': {_reason(e)}") from None

    def _probe_writable(self) -> None:
        probe = f"{self.root}/{PROBE_PREFIX}{uuid.uuid4().hex}"
        try:
            with self.filesystem.open_output_stream(probe) as f:
                f.write(b"probe")
            self.filesystem.delete_file(probe)
        except OSError as e:
            self._delete_quietly(probe)
            raise ResultsError(
                f"results location '{self.location}' is not writable: {_reason(e)}; "
                f"give a writable directory or URI{_credentials_hint(self.location)}"
            ) from None

    def _read_manifest(self) -> dict | None:
        path = f"{self.root}/{MANIFEST}"
        try:
            with self.filesystem.open_input_stream(path) as f:
                manifest = json.loads(f.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise ResultsError(f"cannot read '{path}': {_reason(e)}; use a new results location") from None
        if not isinstance(manifest, dict):
            raise ResultsError(f"'{path}' is not a JSON object; use a new results location")
        return manifest

    def _files(self, table: str) -> list[str]:
        """Paths of the visible Parquet files of ``table`` (no part of the name below it starts with '.' or '_')."""
        base = f"{self.root}/{table}"
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        paths = []
        for info in self.filesystem.get_file_info(selector):
            relative = info.path.removeprefix(base + "/")
            if (
                info.type == pafs.FileType.File
                and relative.endswith(".parquet")
                and not any(part.startswith((".", "_")) for part in relative.split("/"))
            ):
                paths.append(info.path)
        return sorted(paths)

    def _footer_reads(self, path: str) -> bool:
        """Whether one file's footer reads (warns when not); one file needs no thread pool."""
        try:
            self._footer(path)
            return True
        except (OSError, pa.ArrowException) as e:
            self._warn_unreadable(path, e)
            return False

    def _footer(self, path: str) -> pq.FileMetaData:
        with self.filesystem.open_input_file(path) as f:
            return pq.read_metadata(f)

    def _read_each(self, paths: list[str], read: Callable[[str], T]) -> dict[str, T]:
        """``read(path)`` for every path, several at once (an object store answers each request in tens of ms);
        the paths whose read fails are warned about (from this thread) and left out. Keeps the paths' order."""

        def attempt(path: str) -> tuple[T | None, Exception | None]:
            try:
                return read(path), None
            except (OSError, pa.ArrowException) as e:
                return None, e

        with ThreadPoolExecutor(self._threads) as pool:
            results = list(pool.map(attempt, paths))
        out = {}
        for path, (value, error) in zip(paths, results):
            if error is not None:
                self._warn_unreadable(path, error)
            else:
                out[path] = value
        return out

    def _warn_unreadable(self, path: str, e: Exception) -> None:
        warnings.warn(
            f"skipping unreadable results file '{path}' ({_reason(e)}); a task whose runs file is "
            "unreadable runs again",
            CorruptFileWarning,
            stacklevel=4,
        )

    def _delete_quietly(self, path: str) -> None:
        try:
            self.filesystem.delete_file(path)
        except OSError:
            pass
