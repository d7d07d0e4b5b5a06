import json

import numpy as np
import pytest
import torch

from pdekit.bench import run_benchmark


def test_bench_dcdm_quick_records_every_method(tmp_path):
    report = run_benchmark("dcdm", quick=True, json_path=tmp_path / "dcdm.json", echo=lambda *_: None)
    methods = {r["method"] for r in report.records}
    expected = {"pdekit-cg", "pdekit-pcg-ichol0", "pdekit-pcg-multigrid", "pdekit-dcdm", "pyamg-rs-pcg"}
    assert expected <= methods
    for r in report.records:
        assert r["converged"], r["method"]
        assert r["relative_residual"] <= 1.01e-6
        assert r["iterations_1e4"] <= r["iterations"]
    by = {(r["system"], r["method"]): r for r in report.records}
    for system in (0, 1):  # the learned directions beat plain CG on both systems
        assert by[system, "pdekit-dcdm"]["iterations"] < by[system, "pdekit-cg"]["iterations"]
    data = json.loads((tmp_path / "dcdm.json").read_text())
    assert data["benchmark"] == "dcdm" and (tmp_path / "dcdm.png").is_file()


def test_bench_dcdm_picks_the_shipped_2d_network_for_2d_problems(tmp_path):
    report = run_benchmark("dcdm", problems=["poisson2d-16"], instances=1, json_path=None,
                           echo=lambda *_: None)
    learned = [r for r in report.records if r["method"] == "pdekit-dcdm"]
    assert learned and all(r["network"] == "dcdm-poisson2d.pt" for r in learned)
    by = {r["method"]: r for r in report.records}
    assert by["pdekit-dcdm"]["converged"]
    assert by["pdekit-dcdm"]["iterations"] < by["pdekit-cg"]["iterations"]


def test_bench_dcdm_names_a_missing_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="checkpoint"):
        run_benchmark("dcdm", problems=["poisson2d-16"], instances=1,
                      checkpoint=tmp_path / "missing.pt", echo=lambda *_: None)


def test_bench_dcdm_depth_is_recorded_and_deeper_orthogonalisation_saves_iterations():
    runs = {depth: run_benchmark("dcdm", problems=["poisson2d-48"], instances=2, depth=depth, json_path=None,
                                 echo=lambda *_: None)
            for depth in (2, 20)}
    for depth, report in runs.items():
        assert {r["depth"] for r in report.records} == {depth}
    learned = {depth: [r["iterations_1e4"] for r in report.records if r["method"] == "pdekit-dcdm"]
               for depth, report in runs.items()}
    # the A-orthogonalisation against 20 directions rather than 2 (no obstacle, 30% solid)
    assert all(deep <= shallow for deep, shallow in zip(learned[20], learned[2], strict=True))
    assert sum(learned[20]) < sum(learned[2])
    with pytest.raises(ValueError, match="`depth`"):
        run_benchmark("dcdm", problems=["poisson2d-16"], instances=1, depth=-1, echo=lambda *_: None)


def test_bench_dcdm_scales_reach_the_learned_preconditioner():
    report = run_benchmark("dcdm", problems=["poisson2d-48"], instances=1, depth=20, scales=(1, 2),
                           json_path=None, echo=lambda *_: None)
    assert {tuple(r["scales"]) for r in report.records} == {(1, 2)}
    plain = run_benchmark("dcdm", problems=["poisson2d-48"], instances=1, depth=20, json_path=None,
                          echo=lambda *_: None)
    learned = [r["residual_history"] for rep in (report, plain) for r in rep.records
               if r["method"] == "pdekit-dcdm"]
    assert learned[0][:2] == learned[1][:2] and learned[0][2] != learned[1][2]  # the 2nd proposal differs


def _record(problem, method, system, iterations_1e4, **extra):
    history = [1.0, 1e-2, 1e-5]
    return {"problem": problem, "method": method, "system": system, "solid_fraction": 0.1 * system,
            "iterations_1e4": iterations_1e4, "iterations": 2, "seconds": 1.0, "setup_seconds": 0.1,
            "residual_history": history, "depth": 2, "scales": [1], **extra}


def test_bench_dcdm_plot_adds_iterations_against_grid_size_for_several_sizes(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pdekit.bench.dcdm import _grid_size, _labeller, _plot_scaling, plot
    from pdekit.bench.record import BenchmarkReport

    records = [_record(f"poisson3d-{n}", "pdekit-cg", k, its)
               for n, counts in ((32, (10, 30, 20)), (64, (40, 50, 60))) for k, its in enumerate(counts)]
    records += [_record("poisson3d-32", "pdekit-dcdm", k, 5 + k, scales=[1, 2]) for k in range(3)]
    records += [_record("poisson3d-32", "pdekit-dcdm", k, 7 + k) for k in range(3)]  # another run's
    report = BenchmarkReport("dcdm", "cpu", records)
    assert plot(report, tmp_path / "scaling.png").stat().st_size > 0
    label = _labeller(records)
    assert {label(r) for r in records} == {"pdekit-cg", "pdekit-dcdm scales 1-2", "pdekit-dcdm scales 1"}
    _, ax = plt.subplots()
    sizes = {p: _grid_size(p) for p in ("poisson3d-32", "poisson3d-64")}
    _plot_scaling(ax, records, ["pdekit-cg"], sizes, {"pdekit-cg": "C0"})
    (bars,) = ax.containers  # one method: one errorbar
    line = bars.lines[0]
    assert list(line.get_xdata()) == [32, 64] and list(line.get_ydata()) == [20, 50]  # medians
    plt.close("all")


def test_bench_dcdm_plot_draws_bars_when_each_problem_holds_one_system(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pdekit.bench.dcdm import _plot_fractions, plot
    from pdekit.bench.record import BenchmarkReport

    methods = ["pdekit-cg", "pdekit-dcdm"]
    color = {"pdekit-cg": "C0", "pdekit-dcdm": "C1"}
    single = [_record("poisson3d-256", "pdekit-cg", 0, 400), _record("poisson3d-256", "pdekit-dcdm", 0, None)]
    assert plot(BenchmarkReport("dcdm", "cpu", single), tmp_path / "one.png").stat().st_size > 0
    _, ax = plt.subplots()
    _plot_fractions(ax, single, ["poisson3d-256"], methods, color)
    heights = [[bar.get_height() for bar in bars] for bars in ax.containers]
    assert heights[0] == [400] and np.isnan(heights[1][0])  # never reached 1e-4: no bar
    assert ax.get_xticklabels()[0].get_text() == "poisson3d-256\n0% solid"
    _, ax = plt.subplots()  # several systems: a line per method against the fraction
    several = [_record("poisson3d-32", method, k, 10 + k) for method in methods for k in range(3)]
    _plot_fractions(ax, several, ["poisson3d-32"], methods, color)
    assert not ax.containers and [list(line.get_xdata()) for line in ax.lines] == [[0, 10, 20]] * 2
    plt.close("all")


def test_bench_dcdm_max_fraction_sets_the_last_systems_solid_fraction():
    report = run_benchmark("dcdm", problems=["poisson2d-32"], instances=2, max_fraction=0.5,
                           json_path=None, echo=lambda *_: None)
    fractions = {r["system"]: r["solid_fraction"] for r in report.records}
    assert fractions[0] == 0 and fractions[1] > 0.4, fractions  # pockets cut off turn solid too
    assert all(r["converged"] for r in report.records)
    with pytest.raises(ValueError, match="`max_fraction`"):
        run_benchmark("dcdm", problems=["poisson2d-16"], instances=1, max_fraction=0.95, echo=lambda *_: None)


def test_bench_dcdm_methods_runs_just_the_named_ones():
    report = run_benchmark("dcdm", problems=["poisson2d-16"], instances=1, json_path=None,
                           methods=("pdekit-cg", "pdekit-fcg-dcdm"), echo=lambda *_: None)
    # exactly those: flexible CG too, though on a CPU it is not run by default
    assert sorted(r["method"] for r in report.records) == ["pdekit-cg", "pdekit-fcg-dcdm"]
    assert all(r["converged"] for r in report.records)
    for methods in (("pdekit-cg", "gmres"), ()):
        with pytest.raises(ValueError, match="`methods`"):
            run_benchmark("dcdm", problems=["poisson2d-16"], instances=1, methods=methods,
                          echo=lambda *_: None)


def test_bench_dcdm_heartbeat_echoes_the_true_residual():
    from pdekit.bench.dcdm import _heartbeat, make_system

    A, b, _ = make_system(16, 2, 0.0, seed=0, device="cpu")
    lines: list[str] = []
    beat = _heartbeat(lines.append, "poisson2d-16 system 0: pdekit-dcdm", A, b, every=0.0)
    beat(torch.zeros_like(b))  # x = 0: the residual is b itself
    beat(torch.zeros_like(b))
    assert len(lines) == 2
    assert lines[0].strip().startswith("poisson2d-16 system 0: pdekit-dcdm: iteration 1,")
    assert lines[0].endswith("residual 1.00e+00") and "iteration 2," in lines[1]
    quiet: list[str] = []
    _heartbeat(quiet.append, "x", A, b)(torch.zeros_like(b))  # once a minute by default
    assert quiet == []
