"""Reports: paper tables, significance tables, figures and full reports in Markdown, LaTeX, HTML, CSV, JSON.

The modules are layered, each importing only the ones above it (never this package, never back):

* :mod:`~ablate.report.model`: Table, Section and the cell formatting every format shares;
* :mod:`~ablate.report.tables`: the paper's layout and the significance tables (numbers from ablate.analysis.stats);
* :mod:`~ablate.report.figures`: the figures (PNG + PDF);
* :mod:`~ablate.report.render`: Markdown / LaTeX / HTML / JSON / CSV and :func:`write_report`;
* :mod:`~ablate.report.sections`: the sections per study kind and the Methods paragraph;
* :mod:`~ablate.report.study`: ``ablate report`` for a stored study; :mod:`~ablate.report.reproduce`: the
  paper's Tables 1 and 2.

Import the public names from here (``from ablate.report import write_report, Section, Table``); the
module layout may change. File writing is :mod:`ablate.io`.
"""

from ablate.io import OutputError, check_out_dir, write_atomic
from ablate.report.figures import (
    FigurePaths,
    box_strip,
    cd_diagram,
    forest,
    importance_bars,
    importance_frame,
    mk_heatmap,
    weight_points_scatter,
)
from ablate.report.model import (
    DAGGER,
    DASH,
    Section,
    Table,
    as_table,
    fmt_delta_ci,
    fmt_mean_sd,
    fmt_num,
    fmt_p,
    png_pdf,
)
from ablate.report.render import (
    FORMATS,
    render_html,
    render_json,
    render_latex,
    render_markdown,
    table_csv,
    table_html,
    table_latex,
    table_markdown,
    tex_escape,
    write_report,
)
from ablate.report.reproduce import write_table_report
from ablate.report.sections import ablation_report_sections, transfer_report_sections
from ablate.report.sensitivity import sensitivity_report_sections
from ablate.report.study import StudyReport, importances, write_study_report
from ablate.report.tables import (
    format_comparisons,
    paper_table,
    paper_table_block,
    significance_mask,
    significance_rows,
)

__all__ = [
    "DAGGER",
    "DASH",
    "FORMATS",
    "FigurePaths",
    "OutputError",
    "Section",
    "StudyReport",
    "Table",
    "ablation_report_sections",
    "as_table",
    "box_strip",
    "cd_diagram",
    "check_out_dir",
    "fmt_delta_ci",
    "fmt_mean_sd",
    "fmt_num",
    "fmt_p",
    "forest",
    "format_comparisons",
    "importance_bars",
    "importance_frame",
    "importances",
    "mk_heatmap",
    "paper_table",
    "paper_table_block",
    "png_pdf",
    "render_html",
    "render_json",
    "render_latex",
    "render_markdown",
    "sensitivity_report_sections",
    "significance_mask",
    "significance_rows",
    "table_csv",
    "table_html",
    "table_latex",
    "table_markdown",
    "tex_escape",
    "transfer_report_sections",
    "weight_points_scatter",
    "write_atomic",
    "write_report",
    "write_study_report",
    "write_table_report",
]
