"""One shape for every job, and the one command line they share.

A job is a frozen Spec with PRESETS, and three functions:

- ``plan(spec, out)``: what ``--dry-run`` prints (never starts Ray);
- ``run(spec, *, address, out) -> Outcome``: does the work, resumably; the Outcome carries the job's answers
  (the grid's search groups, the tuning job's prediction, …), so a job that builds on another takes them from its
  Outcome instead of reading the store again;
- ``report(spec, outcome, out, err) -> exit code``: what the user reads at the end.

``JOBS`` maps a name to its ``Job``; ``register`` adds one (the predictor comparison plugs in the same way).
``main(name, argv)`` is every entry script's ``main``: the flags are derived from the Spec's fields
(``infoflow_ray.sweep.flags``), and every job has ``--preset``, ``--config FILE`` (TOML or YAML), ``--dry-run``,
``--results`` and ``--address``. Settings are layered preset → config file → flags, later ones winning; the Spec
validates the result in one place, and a bad value fails in one line naming it and what is allowed.

Exit codes: 0 everything stored; 1 some tasks failed for good (recorded in the ``failures`` table, or the
prediction of predict-then-tune); 2 bad input (flags, config, dataset, results location), nothing written;
130 interrupted by Ctrl-C (SIGINT), 143 stopped by SIGTERM (``kill``, ``ray job stop``, a cluster scheduler):
both the same clean stop, run the same command again to resume.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from infoflow_ray.errors import ConfigError, InfoflowError
from infoflow_ray.sweep.flags import Alias, add_spec_flags, sections, values_from

EXIT_OK, EXIT_FAILED_TASKS, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


@dataclass(frozen=True)
class Job:
    """A job: its Spec class and presets, how a Spec is built from merged values, and plan / run / report.

    ``build(preset, values)``: the validated Spec (the Spec's own ``__post_init__`` is the one validation place).
    ``aliases``: flags users already know (README, docs) for fields whose derived flag reads differently.
    ``actions``: extra switches that replace the run, flag name → (help, function(spec, out) -> exit code), e.g.
    the grid's ``--verify``. ``interrupted``: the line printed when Ctrl-C or SIGTERM (``kill``, ``ray job stop``)
    ends the run."""

    name: str
    script: str
    description: str
    spec: type
    presets: Mapping[str, Mapping[str, Any]]
    default_preset: str
    build: Callable[[str, dict[str, Any]], Any]
    plan: Callable[[Any, TextIO], None]
    run: Callable[..., Any]
    report: Callable[[Any, Any, TextIO, TextIO], int]
    aliases: tuple[Alias, ...] = ()
    actions: Mapping[str, tuple[str, Callable[[Any, TextIO], int]]] = field(default_factory=dict)
    interrupted: str = "interrupted: finished work is stored; run the same command again to resume"

    def resolve(
        self, preset: str | None = None, config_file: str | Path | None = None, overrides: dict | None = None
    ) -> Any:
        """The Spec of ``preset``, then ``config_file``, then ``overrides`` (e.g. the flags) — later ones win."""
        from infoflow_ray.sweep.grid import layered_values

        preset = preset or self.default_preset
        return self.build(preset, layered_values(self.presets, preset, config_file, overrides, sections(self.spec)))

    def main(self, argv: list[str] | None = None) -> int:
        """Run the job from the command line ``argv``; the exit code. SIGTERM stops it as Ctrl-C does (the run
        ends cleanly and resumably) with exit code 143 instead of 130."""
        _terminated.clear()
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None  # kept by ray.init: connect
        try:
            code = self._main(argv)
        finally:
            if main_thread and signal.getsignal(signal.SIGTERM) is _terminate:  # a caller's own handler again
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        return EXIT_TERMINATED if code == EXIT_INTERRUPTED and _terminated.is_set() else code

    def _main(self, argv: list[str] | None) -> int:
        p, aliases = parser(self)
        args = p.parse_args(argv)
        values = values_from(args, self.spec, aliases)
        if "results" not in values and os.environ.get("INFOFLOW_RESULTS"):
            values["results"] = os.environ["INFOFLOW_RESULTS"]
        try:
            spec = self.resolve(args.preset, args.config, values)
            for action, (_, function) in self.actions.items():
                if getattr(args, action):
                    return function(spec, sys.stdout)
            if args.dry_run:
                self.plan(spec, sys.stdout)
                return EXIT_OK
            outcome = self.run(spec, address=args.address)
            return self.report(spec, outcome, sys.stdout, sys.stderr)
        except InfoflowError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            print(self.interrupted, file=sys.stderr)
            return EXIT_INTERRUPTED


class _OneLineParser(argparse.ArgumentParser):
    """Bad flags fail like bad settings: one line on stderr, exit code 2 (``--help`` shows the usage)."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {message}\n")


COMMON = ("--preset", "--config", "--results", "--dry-run", "--address")


def parser(job: Job) -> tuple[argparse.ArgumentParser, dict[str, Alias]]:
    """The job's command line: the common flags, the job's actions, then one flag per Spec field and the aliases."""
    p = _OneLineParser(
        prog=job.script,
        description=job.description,
        allow_abbrev=False,
        usage="%(prog)s [--preset NAME] [--config FILE] [--dry-run] [--results DIR|URI] [--address ADDR] [SETTINGS]",
    )
    p.add_argument(
        "--preset",
        default=job.default_preset,
        choices=list(job.presets),
        help="starting settings (default: %(default)s)",
    )
    p.add_argument("--config", help="TOML or YAML file of settings, shaped like the flags (override the preset)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else start a local Ray)")
    p.add_argument("--dry-run", action="store_true", help="print what would run, start nothing")
    for action, (text, _) in job.actions.items():
        p.add_argument(f"--{action}", action="store_true", help=text)
    aliases = add_spec_flags(p, job.spec, job.aliases)
    results = next(a for a in p._actions if a.dest == "results")
    results.help = "results location: a directory or a URI such as s3://bucket/path (default: $INFOFLOW_RESULTS, "
    results.help += "else the preset's)"
    return p, aliases


_terminated = threading.Event()  # set by SIGTERM: the interrupted run exits 143, not 130


def _terminate(signum, frame):
    """SIGTERM (``kill``, ``ray job stop``, a scheduler's stop) ends the driver the way Ctrl-C does: a
    KeyboardInterrupt in the main thread, which stops the cascade pool and Tune, keeps every checkpoint and Tune's
    state, and exits through ``Job.main``'s interrupted path."""
    _terminated.set()
    raise KeyboardInterrupt


JOBS: dict[str, Job] = {}


def register(job: Job) -> Job:
    """Add ``job`` to ``JOBS`` under its name."""
    if job.name in JOBS and JOBS[job.name] is not job:
        raise ValueError(f"a job named '{job.name}' is registered already")
    JOBS[job.name] = job
    return job


MODULES = {
    "grid": "infoflow_ray.sweep.driver",
    "tune": "infoflow_ray.sweep.tuning",
    "info-plane": "infoflow_ray.sweep.ib_job",
}
"""Where each built-in job registers itself (imported on first use: a job's Ray code loads only when it runs)."""


def job(name: str) -> Job:
    """The registered job ``name``; ConfigError (one line, listing the known ones) for an unknown name."""
    for module in [MODULES[name]] if name in MODULES else MODULES.values():
        importlib.import_module(module)
    if name not in JOBS:
        raise ConfigError(f"unknown job '{name}'; known: {', '.join(sorted({*JOBS, *MODULES}))}")
    return JOBS[name]


def main(name: str, argv: list[str] | None = None) -> int:
    """The entry scripts' ``main``: ``sys.exit(main('grid'))`` in ``jobs/full_grid.py``."""
    return job(name).main(argv)


def grid_main() -> int:
    """The ``infoflow-grid`` command (``jobs/full_grid.py`` installed)."""
    return main("grid")


def tune_main() -> int:
    """The ``infoflow-tune`` command (``jobs/predict_then_tune.py`` installed)."""
    return main("tune")


def info_plane_main() -> int:
    """The ``infoflow-info-plane`` command (``jobs/info_plane.py`` installed)."""
    return main("info-plane")
