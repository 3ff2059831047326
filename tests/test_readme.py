"""The README's Python examples run as written (docs/results.md's run in test_search_ray.py and
test_results_storage.py, on real results)."""

from doc_examples import python_block


def test_python_api_example_runs_and_says_what_it_claims(capsys):
    names: dict = {}
    exec(python_block("README.md", "## Python API"), names)
    p, r = names["p"], names["r"]
    assert p.depth == 30 and p.kl_mean.shape == (31,) and p.kl_mean[0] == 0.0  # layer 0: the input itself
    assert 1 <= p.per_image_cutoff_mean <= p.cutoff_last_layer == 28
    assert r.stop_reason == "threshold" and r.epochs[-1].test_accuracy >= 0.4  # depth 5 at criticality trains
    c = names["c"]
    assert c.kl_mean.shape == (11,) and 1 <= c.per_image_cutoff_mean <= c.cutoff_last_layer == 9
    out = capsys.readouterr().out.splitlines()
    assert out[-2].startswith("1.76") and out[-1] == "4"  # ≈ 1.761; the search confirms one depth shallower


def test_the_package_docstring_example_runs_and_the_public_names_import():
    """``import infoflow_ray`` exports what a user calls; its docstring's example runs as written (doctest) and
    the Ray- and polars-backed names load on first use, not on import."""
    import doctest
    import subprocess
    import sys

    import infoflow_ray

    assert doctest.testmod(infoflow_ray).failed == 0
    for name in infoflow_ray.__all__:
        assert getattr(infoflow_ray, name) is not None, name
    light = "import sys, infoflow_ray; print('ray' in sys.modules, 'polars' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", light], capture_output=True, text=True).stdout.split() == [
        "False",
        "False",
    ]
