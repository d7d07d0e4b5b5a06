import json

from pdekit.cli import main


def test_quick_mesh_movers_benchmark_scores_the_meshes_and_the_graphs(tmp_path):
    path = tmp_path / "mesh-movers.json"
    assert main(["bench", "mesh-movers", "--quick", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["benchmark"] == "mesh-movers"
    assert (tmp_path / "mesh-movers.png").stat().st_size > 0
    records = {(r["problem"], r["method"]): r for r in data["records"]}
    movers = {m: r for (p, m), r in records.items() if p == "burgers2d-48"}
    assert set(movers) == {"pdekit-learned-mover", "pdekit-classical-monge-ampere", "uniform-mesh"}
    assert all(r["meshes"] == 3 and r["tangled_cells"] == 0 for r in movers.values())
    uniform = movers["uniform-mesh"]["error"]
    assert movers["pdekit-classical-monge-ampere"]["error"] < 0.9 * uniform
    # the shipped mover on fresh states: 0.0132 against 0.0132 classical and 0.0173 uniform
    assert movers["pdekit-learned-mover"]["error"] < 0.9 * uniform
    assert movers["pdekit-learned-mover"]["error"] < 1.05 * movers["pdekit-classical-monge-ampere"]["error"]
    for k in (8, 35):
        methods = {m: r for (p, m), r in records.items() if p == f"knn-48x48-k{k}"}
        assert set(methods) == {"pdekit-knn", "pdekit-knn-brute", "scipy-ckdtree"}
        for name in ("pdekit-knn", "pdekit-knn-brute"):  # the same graphs as SciPy's tree
            assert methods[name]["agreement"] > 0.999 and methods[name]["neighbours"] == k
