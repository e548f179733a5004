"""Tests for the ablate.report package: formatting by hand computation, markup validity, atomic writes, figures."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ablate.report as report
from ablate.analysis import stats
from ablate.errors import AblateError
from ablate.io import OutputError
from ablate.report import Section, Table, figures, render

CASES = ["T1M1_T2M2", "T2M1_T1M2"]


def runs(effects: dict[str, float], *, cases=CASES, n: int = 10, sd: float = 0.002, seed: int = 0) -> pd.DataFrame:
    """Tidy runs: 'full' plus variants shifted by `effects` (fractions), shared per-seed noise (paired)."""
    rng = np.random.default_rng(seed)
    rows = []
    for case in cases:
        base = 0.90 + rng.normal(0, 0.01, n)
        for variant, eff in {"full": 0.0, **effects}.items():
            noise = rng.normal(0, sd, n)
            for s in range(n):
                v = float(base[s] + eff + noise[s])
                rows.append(
                    {"case": case, "variant": variant, "seed": s, "val_accuracy": v - 0.001, "test_accuracy": v}
                )
    return pd.DataFrame(rows)


def fixed() -> pd.DataFrame:
    """Two variants, two cases, three seeds with hand-checkable means and SDs."""
    vals = {
        ("A", "T1M1_T2M2"): [0.9700, 0.9703, 0.9706],  # mean 97.03, sd 0.03
        ("B", "T1M1_T2M2"): [0.9600, 0.9610, 0.9620],  # mean 96.10, sd 0.10
        ("A", "T2M1_T1M2"): [0.5000, 0.5000, 0.5000],  # mean 50.00, sd 0.00
        ("B", "T2M1_T1M2"): [0.6000, 0.6200, 0.6400],  # mean 62.00, sd 2.00
    }
    rows = [
        {"case": c, "variant": v, "seed": s, "test_accuracy": x}
        for (v, c), xs in vals.items()
        for s, x in enumerate(xs)
    ]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------- paper table


def test_paper_table_hand_computed_mean_sd():
    t = report.paper_table(fixed(), rows=["A", "B"], cases=CASES).frame
    assert list(t.index) == ["A", "B"] and list(t.columns) == CASES
    assert t.loc["A", "T1M1_T2M2"] == "97.03±0.03"
    assert t.loc["B", "T1M1_T2M2"] == "96.10±0.10"
    assert t.loc["A", "T2M1_T1M2"] == "50.00±0.00"
    assert t.loc["B", "T2M1_T1M2"] == "62.00±2.00"
    num = report.paper_table(fixed(), rows=["B", "A"], cases=CASES, formatted=False).frame
    assert list(num.index) == ["B", "A"]
    assert num.loc["B", "T2M1_T1M2_sd"] == pytest.approx(2.0)  # ddof=1: sqrt(((-2)^2 + 0 + 2^2) / 2)
    assert num.loc["A", "T1M1_T2M2_mean"] == pytest.approx(97.03)
    assert num.loc["A", "T1M1_T2M2_n"] == 3


def test_paper_table_missing_cells_and_bad_input():
    df = fixed()
    result = report.paper_table(df[df["seed"] == 0], rows=["A"], cases=[*CASES, "T1M2_T2M1"])
    t = result.frame
    assert t.loc["A", "T1M1_T2M2"] == "97.00"  # one run: mean alone
    assert t.loc["A", "T1M2_T2M1"] == report.DASH
    assert any("T1M2_T2M1" in w for w in result.warnings)
    assert any("SD undefined" in w for w in result.warnings)
    with pytest.raises(AblateError, match="'C'"):
        report.paper_table(df, rows=["A", "C"], cases=CASES)
    with pytest.raises(AblateError, match="several runs"):
        report.paper_table(pd.concat([df, df.iloc[:1]]), rows=["A"], cases=CASES)
    pct = df.assign(test_accuracy=df["test_accuracy"] * 100)
    with pytest.raises(AblateError, match="percent=False"):
        report.paper_table(pct, rows=["A"], cases=CASES)
    assert report.paper_table(pct, rows=["A"], cases=CASES, percent=False, decimals=2).frame.loc["A", "T1M1_T2M2"] == (
        "97.03±0.03"
    )


def test_latex_bold_best_dagger_and_escaping():
    sig = pd.DataFrame({"T1M1_T2M2": [False, True], "T2M1_T1M2": [False, False]}, index=["A", "B"])
    block = report.paper_table_block(fixed(), rows=["A", "B"], cases=CASES, significant=sig)
    tex = report.table_latex(block)
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in tex
    assert r"\textbf{97.03$\pm$0.03}" in tex  # best of column 1 is A
    assert r"\textbf{62.00$\pm$2.00}" in tex  # best of column 2 is B
    assert r"96.10$\pm$0.10$^{\dagger}$" in tex  # B significant in case 1, not bold
    assert "50.00$\\pm$0.00 " in tex or "50.00$\\pm$0.00 \\\\" in tex
    assert r"T1M1\_T2M2" in tex and "±" not in tex and "T1M1_T2M2" not in tex
    assert tex.count(r"\textbf") == 2 and tex.count(r"\dagger") == 1
    assert report.tex_escape("5% & a_b #1 $x$ ±†") == r"5\% \& a\_b \#1 \$x\$ $\pm^{\dagger}$"
    bins = report.table_latex(pd.DataFrame({"M": ["[1, 3)", "[3, 9]"]}))
    assert "\\\\\n{}[3, 9]" in bins  # a row starting with "[" is not read as \\[dimen]
    md = report.table_markdown(block)
    assert "**97.03±0.03**" in md and "96.10±0.10†" in md


def test_latex_float_env_and_bold_significant_cell():
    sig = pd.DataFrame({"T1M1_T2M2": [True, False], "T2M1_T1M2": [False, False]}, index=["A", "B"])
    block = report.paper_table_block(fixed(), rows=["A", "B"], cases=CASES, significant=sig, title="Main_results")
    tex = report.table_latex(block, float_env=True, label="tab:main")
    lines = tex.splitlines()
    assert lines[:5] == [r"\begin{table}[t]", r"\centering", lines[2], r"\label{tab:main}", r"\begin{tabular}{lrr}"]
    assert lines[2].startswith(r"\caption{Main\_results. Mean $\pm$ sample") and lines[-1] == r"\end{table}"
    assert r"A & \textbf{97.03$\pm$0.03$^{\dagger}$} & 50.00$\pm$0.00 \\" in lines  # bold and significant
    assert lines[-4:-1] == [r"B & 96.10$\pm$0.10 & \textbf{62.00$\pm$2.00} \\", r"\bottomrule", r"\end{tabular}"]


def test_html_tables_marks_escaping_and_stable_ids(tmp_path):
    block = report.paper_table_block(fixed(), rows=["A", "B"], cases=CASES, title="a < b & c")
    raw = pd.DataFrame({"x<y": ["<b>not bold</b>", "z"], "n": [1, 2]})
    secs = [Section("One", tables=[block, raw]), Section("Two", tables=[Table(raw, title="again", slug="paper-table")])]
    page = report.render_html(secs, title="T")
    assert page == report.render_html(secs, title="T")  # no random element ids: reports are reproducible
    head, body = page.split("</head>")
    assert "<style" not in body  # Styler's cell CSS is gathered into the page head
    bold_rule = re.search(r"(#T_paper-table_row\d_col\d(, )?)+ \{\s*font-weight: bold;\s*\}", head)
    assert bold_rule and bold_rule.group(0).count("#T_") == 2  # A in case 1, B in case 2
    ids = re.findall(r'<table id="([^"]+)"', body)
    assert len(ids) == 3 and len(set(ids)) == 3
    assert "<caption>a &lt; b &amp; c</caption>" in body
    assert "&lt;b&gt;not bold&lt;/b&gt;" in body and ">x&lt;y</th>" in body
    assert re.search(r'<td id="T_paper-table_row0_col1" class="data row0 col1 num" >97.03±0.03</td>', body)


def test_markdown_table_parses():
    md = report.table_markdown(report.paper_table_block(fixed(), rows=["A", "B"], cases=CASES))
    lines = md.splitlines()
    assert len(lines) == 4
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    assert cells[0] == ["variant", *CASES]
    assert all(re.fullmatch(r":?-{3,}:?", c) for c in cells[1])
    assert all(len(r) == 3 for r in cells)
    assert cells[2][0] == "A" and cells[3][0] == "B"
    odd = pd.DataFrame({"a|b": ["x|y"]})
    assert report.table_markdown(odd).splitlines()[2] == r"| x\|y |"


# ------------------------------------------------------------------------------------------- significance


def test_significance_rows_and_mask():
    df = runs({"cgi": 0.02, "feat": 0.0}, n=8)
    sig, summ = report.significance_rows(df, method=None, baseline="full", n_resamples=999)
    assert set(summ) == {"cgi", "feat"}
    cgi = sig[sig["variant"] == "cgi"]
    assert list(cgi["case"]) == CASES and (cgi["verdict"] == "better").all()
    assert cgi["delta_pp"].to_numpy() == pytest.approx(cgi["delta"].to_numpy() * 100)
    assert summ["cgi"]["wins"] == 2
    mask = report.significance_mask(sig, rows=["full", "cgi", "feat"], cases=CASES)
    assert mask.loc["cgi"].all() and not mask.loc["full"].any()


# ------------------------------------------------------------------------------------------- documents


def sections_with_figure(tmp_path: Path) -> list[Section]:
    fig = figures.box_strip(fixed(), tmp_path / "figs" / "box", case="T1M1_T2M2")
    block = report.paper_table_block(fixed(), rows=["A", "B"], cases=CASES, title="Main results")
    other = pd.DataFrame({"x": [1, 2], "y": [0.5, float("nan")]})
    return [
        Section("Results", text="Some text with 50% & under_scores.", tables=[block], figures=[fig]),
        Section(
            "Extra",
            tables=[Table(other, title="Second table", warnings=["a table warning"])],
            warnings=["a section warning"],
        ),
    ]


def test_html_self_contained_with_embedded_figure(tmp_path):
    page = report.render_html(sections_with_figure(tmp_path), title="T")
    assert "data:image/png;base64," in page
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:|//)", page, re.I)
    assert "http" not in page.lower()
    assert "<style>" in page and "<link" not in page and "<script" not in page
    assert "a table warning" in page and "a section warning" in page


def test_write_report_all_formats_and_json_round_trip(tmp_path):
    out = tmp_path / "out" / "nested"
    secs = sections_with_figure(tmp_path)
    written = report.write_report(out, "rep", secs, metadata={"study": "s1", "n": 3})
    names = sorted(p.name for p in written)
    assert names == ["rep-second-table.csv", "rep.csv", "rep.html", "rep.json", "rep.md", "rep.tex"]
    assert sorted(os.listdir(out)) == names  # no temp files left
    doc = json.loads((out / "rep.json").read_text())
    assert doc["metadata"] == {"study": "s1", "n": 3}
    main = doc["sections"][0]["tables"][0]
    assert main["rows"][0] == {"variant": "A", "T1M1_T2M2": "97.03±0.03", "T2M1_T1M2": "50.00±0.00"}
    assert main["numeric"][1]["T2M1_T1M2_sd"] == pytest.approx(2.0)
    assert ["A", "T1M1_T2M2"] in main["bold"]
    second = doc["sections"][1]["tables"][0]
    assert second["rows"][1]["y"] is None  # NaN -> null
    assert {w["text"] for w in doc["warnings"]} == {"a table warning", "a section warning"}
    assert json.loads(json.dumps(doc)) == doc
    csv = pd.read_csv(out / "rep.csv", index_col="variant")
    assert csv.loc["B", "T2M1_T1M2_mean"] == pytest.approx(62.0)
    md = (out / "rep.md").read_text()
    assert "![box](../../figs/box.png)" in md
    assert "**Warnings**" in md and "- a table warning" in md
    tex = (out / "rep.tex").read_text()
    assert r"\includegraphics" in tex and "figs/box.pdf" in tex
    assert r"50\% \& under\_scores" in tex and r"\begin{document}" in tex and r"\end{document}" in tex


def test_write_report_unwritable_dir_raises_before_work(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")

    def boom(*a, **k):
        raise AssertionError("rendered although the folder is unusable")

    monkeypatch.setattr(render, "render_markdown", boom)
    with pytest.raises(OutputError, match="not a folder"):
        report.write_report(blocker / "sub", "rep", [Section("s")])
    assert sorted(os.listdir(tmp_path)) == ["file"]
    with pytest.raises(AblateError, match="'pdf'"):
        report.write_report(tmp_path / "o", "rep", [Section("s")], formats=("md", "pdf"))
    with pytest.raises(AblateError, match="plain file name"):
        report.write_report(tmp_path / "o", "a/b", [Section("s")], formats=("json",))


def test_failure_while_rendering_leaves_old_files_only(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "rep.md").write_text("old")
    secs = [Section("s", tables=[report.paper_table_block(fixed(), rows=["A"], cases=CASES)])]

    def boom(*a, **k):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(render, "render_html", boom)  # md, tex, csv, json already rendered by then
    with pytest.raises(RuntimeError, match="renderer crashed"):
        report.write_report(out, "rep", secs)
    assert sorted(os.listdir(out)) == ["rep.md"]
    assert (out / "rep.md").read_text() == "old"


def test_failure_while_writing_removes_temp_files(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "rep.json").write_text("{}")
    secs = [Section("s", tables=[report.paper_table_block(fixed(), rows=["A"], cases=CASES)])]
    real_fsync, calls = os.fsync, []

    def disk_full(fd):
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OutputError, match="No space left"):
        report.write_report(out, "rep", secs)
    assert sorted(os.listdir(out)) == ["rep.json"]
    assert (out / "rep.json").read_text() == "{}"


# ------------------------------------------------------------------------------------------- figures


def _ok(paths):
    png, pdf = paths
    assert png.suffix == ".png" and pdf.suffix == ".pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000
    assert not [f for f in os.listdir(png.parent) if f.endswith(".tmp")]


def test_figures_write_png_and_pdf(tmp_path):
    df = runs({"a": 0.01, "b": -0.005}, n=6)
    _ok(figures.box_strip(df, tmp_path / "box", value="test_accuracy", case="T1M1_T2M2"))
    tab = pd.DataFrame(
        {
            "variant": ["a", "b", "c"],
            "delta": [0.01, -0.005, 0.0],
            "ci_low": [0.005, -0.01, np.nan],
            "ci_high": [0.015, 0.0, np.nan],
            "verdict": ["better", "inconclusive", "descriptives only"],
        }
    )
    _ok(figures.forest(tab, tmp_path / "forest", rope=0.002))
    ranks = pd.Series({"full": 1.4, "a": 2.1, "b": 2.6, "c": 3.9})
    _ok(figures.cd_diagram(ranks, 1.48, tmp_path / "cd.png", title="CD"))
    assert figures._cliques(np.array([1.4, 2.1, 2.6, 3.9]), 1.48) == [
        (0, 2),
        (2, 3),
    ]  # 2.6-1.4 <= CD; 3.9-2.6 <= CD < 3.9-2.1
    _ok(figures.importance_bars({"PED-ANOVA": {"M": 0.5, "K": 0.3}, "fANOVA": {"M": 0.4, "K": 0.6}}, tmp_path / "imp"))
    rng = np.random.default_rng(1)
    sens = pd.DataFrame(
        {"M": np.exp(rng.uniform(0, 6, 60)), "K": rng.integers(1, 4, 60), "val_accuracy": rng.uniform(0.8, 0.9, 60)}
    )
    _ok(figures.mk_heatmap(sens, tmp_path / "mk"))
    pts = {
        g: {k: rng.normal(size=(20, 2)).tolist() for k in ("source_posterior", "target_bootstrap", "generated")}
        for g in ("layer1", "layer2")
    }
    _ok(figures.weight_points_scatter(pts, tmp_path / "wp"))
    with pytest.raises(AblateError, match="shape"):
        figures.weight_points_scatter({"g": {"generated": [1, 2, 3]}}, tmp_path / "bad")


# ------------------------------------------------------------------------------------------- sections


def test_ablation_report_sections_detects_known_effect(tmp_path):
    df = runs({"init=random": 0.02, "generator=gaussian": 0.0})
    secs = report.ablation_report_sections(df, reference="full", fig_dir=tmp_path / "figs", n_resamples=999)
    titles = [s.title for s in secs]
    assert titles == ["Ablation: T1M1_T2M2", "Ablation: T2M1_T1M2", "Methods"]
    for sec in secs[:2]:
        table = report.as_table(sec.tables[0])
        shown = table.data.set_index("variant")
        assert shown.loc["init=random", "verdict"] == "better"
        null_delta = table.numeric.set_index("variant").loc["generator=gaussian", "delta_pp"]
        assert abs(null_delta) < 0.5  # no true effect (its verdict may be a chance false positive)
        assert shown.loc["init=random", "Δ pp [95% CI]"].startswith("+2.")
        assert table.numeric.set_index("variant").loc["init=random", "delta_pp"] == pytest.approx(2.0, abs=0.3)
        assert len(sec.tables) == 2  # ablation + Friedman (3 variants share 10 seeds)
        assert len(sec.figures) == 3  # forest, box+strip, CD
        for fig in sec.figures:
            _ok(fig)
    assert "sign-flip" in secs[-1].text
    paths = report.write_report(tmp_path / "rep", "ablation", secs)
    md = (tmp_path / "rep" / "ablation.md").read_text()
    assert "better" in md and "**Warnings**" in md  # at least the Friedman chi-square caveat
    assert len([p for p in paths if p.suffix == ".csv"]) == 4


def test_transfer_and_sensitivity_sections(tmp_path):
    df = runs({"CGI": 0.02}, n=8).replace({"variant": {"full": "Without Transfer Benchmark"}})
    secs = report.transfer_report_sections(
        df, method="CGI", baseline="Without Transfer Benchmark", cases=CASES, n_resamples=999
    )
    block = secs[0].tables[0]
    assert block.dagger.loc["CGI"].all() and block.bold.loc["CGI"].all()
    assert "2 win(s)" in secs[1].text and "Wilcoxon" in secs[1].text
    assert any("cannot be significant" in w for w in secs[1].warnings)
    assert "\\dagger" in report.render_latex(secs)

    rng = np.random.default_rng(0)
    sens = pd.DataFrame(
        {
            "case": "T1M1_T2M2",
            "generator": rng.choice(["gmm", "gaussian"], 40),
            "M": rng.integers(1, 50, 40),
            "K": rng.integers(1, 4, 40),
            "val_accuracy": rng.uniform(0.8, 0.9, 40),
        }
    )
    imp = {"PED-ANOVA": {"M": 0.6, "K": 0.1, "generator": 0.3}, "fANOVA": {"M": 0.5, "K": 0.2, "generator": 0.3}}
    ss = report.sensitivity_report_sections(sens, imp, fig_dir=tmp_path / "f")
    assert [s.title for s in ss] == ["Parameter importances", "Marginal tests: T1M1_T2M2", "M × K: T1M1_T2M2"]
    assert list(report.as_table(ss[0].tables[0]).data.columns) == [
        "trials",
        "PED-ANOVA",
        "fANOVA",
        "rank (PED-ANOVA)",
        "rank (fANOVA)",
    ]
    marginal = report.as_table(ss[1].tables[0])
    assert stats.TPE_CONFOUNDING_WARNING in marginal.warnings and not ss[1].warnings  # one warnings block
    assert list(marginal.data["comparison"]) in (["gaussian vs gmm"], ["gmm vs gaussian"])  # one row, binary
    report.write_report(tmp_path / "r", "sens", ss, formats=("md", "html"))
    md = (tmp_path / "r" / "sens.md").read_text()
    assert "Trials were sampled adaptively" in md and md.count("**Warnings**") == 1


# ------------------------------------------------------------------------------- issue 13: answer first


def sensitivity_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Sampled trials where transfer=mu is 5 pp better and K exists only for the GMM generator."""
    rng = np.random.default_rng(seed)
    generator = rng.choice(["gmm", "gaussian"], n)
    transfer = rng.choice(["mu_sigma", "mu"], n, p=[0.2, 0.8])
    value = 0.9 + 0.05 * (transfer == "mu") + rng.normal(0, 0.005, n)
    k = np.where(generator == "gmm", rng.integers(1, 11, n), np.nan)
    return pd.DataFrame(
        {
            "case": "T2M1_T1M2",
            "generator": generator,
            "transfer": transfer,
            "M": rng.integers(50, 5000, n),
            "K": k,
            "val_accuracy": value,
        }
    )


SWITCHES = {
    "labels": {"transfer": "transfer", "generator": "generator", "K": "K", "M": "M"},
    "defaults": {"transfer": "mu_sigma", "generator": "gmm"},
    "conditions": {"K": "generator=gmm"},
}


def test_sensitivity_binary_parameter_is_one_row_vs_its_default_and_conditional_n_is_shown(tmp_path):
    df = sensitivity_frame()
    imp = {"PED-ANOVA": {"transfer": 0.9, "K": 0.05, "M": 0.05}, "fANOVA": {"transfer": 0.8, "M": 0.2}}
    ss = report.sensitivity_report_sections(
        df, imp, params=["generator", "transfer"], fig_dir=tmp_path / "f", **SWITCHES
    )
    marginal = report.as_table(ss[1].tables[0])
    rows = marginal.data.set_index("parameter")
    assert rows.loc["transfer", "comparison"] == "mu vs mu_sigma"  # non-default level vs the default
    n_mu, n_ms = int((df["transfer"] == "mu").sum()), int((df["transfer"] == "mu_sigma").sum())
    assert rows.loc["transfer", "n trials"] == f"{n_mu} vs {n_ms}"
    means = df.groupby("transfer")["val_accuracy"].mean()
    delta = means["mu"] - means["mu_sigma"]
    assert rows.loc["transfer", "Δ pp"] == f"{delta * 100:+.2f}"
    assert "vs" not in marginal.data.columns and "level" not in marginal.data.columns  # no constant column
    trials = report.as_table(ss[0].tables[0]).data["trials"]
    n_k = int(df["K"].notna().sum())
    assert trials["K"] == f"{n_k} of {len(df)} (only when generator=gmm)" and trials["M"] == str(len(df))
    heat = ss[2]
    assert f"{n_k} of {len(df)} trials" in heat.text and "generator=gmm" in heat.text
    assert f"{n_k} of {len(df)} trials" in heat.figures[0].caption


def test_heatmap_integer_ticks_and_one_bin_notation(tmp_path):
    df = sensitivity_frame(200)
    binned, how = figures._axis_bins(df["K"].dropna(), 4, 4)
    assert how == "binned" and all("." not in str(c) for c in binned.cat.categories)  # "1–3", never "1.0"
    levels, how = figures._axis_bins(pd.Series([10.0, 9.0, 9.0, np.nan]).dropna(), 8, 4)
    assert how == "levels" and [str(v) for v in levels] == ["10", "9", "9"]
    m_bins, _ = figures._axis_bins(df["M"], 3, 3)
    assert all(re.fullmatch(r"[\d,]+–[\d,]+", str(c)) for c in m_bins.cat.categories), m_bins.cat.categories


def test_comparison_table_verdict_early_and_constant_columns_in_caption():
    df = runs({"init=random": 0.02, "generator=gaussian": 0.0}, cases=CASES[:1])
    secs = report.ablation_report_sections(df, reference="full", n_resamples=999)
    t = report.as_table(secs[0].tables[0])
    assert list(t.data.columns[:4]) == ["variant", "verdict", "Δ pp [95% CI]", "p (Holm)"]
    assert "n" not in t.data.columns and "n: 10 in every row" in t.caption  # constant → caption
    assert "full mean ± SD" not in t.data.columns
    assert t.role == "ablation" and "the ablation family" in t.caption


def test_sign_flip_counts_whole_examples_from_the_runs_n():
    """The ablation table passes the runs' N (n_test) to the exact test: an N the values are not whole counts
    of is refused, which only happens when the column reaches stats (the integer path)."""
    df = runs({"init=random": 0.02}, cases=CASES[:1])
    df["test_accuracy"] = (df["test_accuracy"] * 1000).round() / 1000  # counts out of 1000
    df["n_test"] = 1000
    report.ablation_report_sections(df, reference="full", n_resamples=99)  # whole counts: fine
    df["n_test"] = 997
    with pytest.raises(AblateError, match="n_examples=997"):
        report.ablation_report_sections(df, reference="full", n_resamples=99)


def test_summary_is_generated_from_the_tables_and_one_methods_section(tmp_path):
    from ablate.report.sections import combined_methods_section
    from ablate.report.summary import Scope, label_families, seeds_to_decide, summary_section

    df = runs({"init=random": 0.02, "scope=shared": 0.0, "no transfer": -0.01}, cases=CASES[:1])
    secs = report.ablation_report_sections(df, reference="full", n_resamples=999, with_methods=False)
    secs += report.transfer_report_sections(
        df, method="full", baseline="no transfer", cases=CASES[:1], n_resamples=999, with_methods=False
    )
    label_families(secs, reference="full", baseline="no transfer")
    secs.append(combined_methods_section(secs, alpha=0.05, rope=None))
    scope = Scope(
        kind="ablation",
        study="s",
        cases=tuple(CASES[:1]),
        fidelity="smoke",
        seeds=10,
        complete=40,
        pruned=0,
        failed=1,
        other=0,
        metric="test_accuracy",
        alpha=0.05,
        reference="full",
        baseline="no transfer",
        next_command="ablate ablation --case T1M1_T2M2 --design ofat --fidelity smoke",
    )
    summ = summary_section(scope, secs)
    assert "40 complete, 0 pruned, 1 failed" in summ.text and "10 seed(s)" in summ.text
    assert "Found: the strongest effect is init=random vs full" in summ.text and "verdict better" in summ.text
    effects = report.as_table(summ.tables[0]).data
    assert "full vs no transfer" not in list(effects["effect"])  # one comparison, one verdict (ablation family)
    row = report.as_table(secs[0].tables[0]).numeric.set_index("variant").loc["no transfer"]
    assert f"full − no transfer = {-row['delta'] * 100:+.2f} pp" in summ.text and "ablation family" in summ.text
    assert "Next: `ablate ablation --case T1M1_T2M2" in summ.text
    assert summ.warnings and "1 trial(s) failed" in summ.warnings[0]
    transfer_text = next(s.text for s in secs if s.title == "full vs no transfer")
    assert "Two families" in transfer_text and "Holm over 3 variants" in transfer_text
    md = report.render_markdown([summ, *secs])
    assert md.count("## Methods") == 1 and md.index("## Summary") < md.index("## Ablation")
    # the seeds rule, by hand: m=11, α=0.05 → α/m = 0.004545; 2/2^9 = 0.0039 < that (n_min = 9);
    # z(1 − 0.002273) + z(0.8) = 2.838 + 0.842 = 3.680; (3.680 / 0.96)² = 14.7 → 15
    assert seeds_to_decide(0.96, 11, 0.05) == 15 and seeds_to_decide(1.52, 11, 0.05) == 9
    assert seeds_to_decide(math.nan, 11, 0.05) is None
    assert seeds_to_decide(10.0, 11, 0.05) == 9  # a huge effect still needs p = 2/2^n below α/m
    assert seeds_to_decide(10.0, 1, 0.0625) == 6  # 2/2^5 = 0.0625 is not below α = 0.0625


def test_markdown_links_figures_to_their_served_address_and_captions_them(tmp_path):
    png = figures.importance_bars({"a": 0.5, "b": 0.2}, tmp_path / "imp", caption="Importance of a and b.")
    sec = Section("S", figures=[png])
    md = report.render_markdown([sec], base_dir=tmp_path, figure_links={png.png: "/artifacts/1/abc"})
    assert "![Importance of a and b.](/artifacts/1/abc)" in md and "_Importance of a and b._" in md
    assert "(imp.png)" in report.render_markdown([sec], base_dir=tmp_path)  # the file report keeps its link


def test_an_inconclusive_row_says_how_many_seeds_its_delta_would_need() -> None:
    import numpy as np
    import pandas as pd

    from ablate.analysis import power, stats
    from ablate.report.tables import format_comparisons

    rng = np.random.default_rng(3)
    rows = []
    for seed in range(8):
        base = 0.9 + rng.normal(0, 0.01)
        rows += [
            {"variant": "ref", "seed": seed, "test_accuracy": base},
            {"variant": "small", "seed": seed, "test_accuracy": base + 0.002 + rng.normal(0, 0.004)},
            {"variant": "big", "seed": seed, "test_accuracy": base + 0.05},
        ]
    tab = stats.ablation_table(pd.DataFrame(rows), reference="ref")
    shown = format_comparisons(tab).data.set_index("variant")["verdict"]
    small = tab.frame.set_index("variant").loc["small"]
    assert small["verdict"] == "inconclusive"
    n = power.t_seeds(float(small["delta"]), float(small["delta_sd"]), m=2)
    assert shown["small"] == f"inconclusive (≈ {n} seeds for this Δ, t approx.)"
    assert shown["big"] == "better"


def test_a_large_consistent_delta_on_too_few_seeds_names_the_exact_tests_floor() -> None:
    """−67 pp on every one of 7 seeds is inconclusive after Holm over 7 variants (2/2⁷ > 0.05/7): the note
    must say that the floor, not the effect, is why, instead of nothing (or an n below the floor)."""
    import numpy as np
    import pandas as pd

    from ablate.analysis import power, stats
    from ablate.report.tables import format_comparisons

    rng = np.random.default_rng(0)
    rows = []
    for seed in range(7):
        base = 0.94 + rng.normal(0, 0.005)
        rows.append({"variant": "ref", "seed": seed, "test_accuracy": base})
        for v in range(7):
            rows.append({"variant": f"v{v}", "seed": seed, "test_accuracy": base - 0.67 + rng.normal(0, 0.005)})
    tab = stats.ablation_table(pd.DataFrame(rows), reference="ref")
    shown = format_comparisons(tab).data.set_index("variant")["verdict"]
    assert power.exact_floor(m=7) == 9 and (tab.frame["verdict"] == "inconclusive").all()
    assert shown["v0"] == "inconclusive (≥ 9 seeds: with fewer the exact test cannot reach α after Holm over 7)"


@pytest.mark.parametrize(
    ("seeds", "named", "not_named"),
    [(6, "percentile bootstrap 95% CI", "BCa"), (12, "BCa 95% CI", "percentile")],
)
def test_gain_curve_captions_name_the_ci_its_rows_used(seeds: int, named: str, not_named: str, tmp_path: Path) -> None:
    """The rows' CIs are percentile bootstrap below stats.MIN_N_BCA seeds and BCa from there; the section text
    and the figure caption say which (they said "BCa 95% CI" for 6 seeds)."""
    from ablate.report.curves import gain_curve_section

    rng = np.random.default_rng(3)
    rows = [
        {
            "case": "T1M1_T2M2",
            "variant": v,
            "seed": s,
            "epoch": k,
            "test_accuracy": 0.9 + 0.01 * k + rng.normal(0, 0.01),
        }
        for v in ("cgi", "bnn")
        for s in range(seeds)
        for k in (1, 2, 3)
    ]
    section = gain_curve_section(pd.DataFrame(rows), method="cgi", baseline="bnn", fig_dir=tmp_path)
    assert section is not None
    assert set(section.tables[0].numeric["ci_method"]) == {"BCa" if seeds >= stats.MIN_N_BCA else "percentile"}
    (figure,) = section.figures
    for caption in (section.text, figure.caption):
        assert named in caption and not_named not in caption, caption
