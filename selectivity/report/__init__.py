"""Report stage: a sweep's tidy results table -> the paper's figures and tables.

Reads the table only (never trains or runs a model). Entry points:
    write_report(table, out_dir, title=None, notes=None, margin=0.5) -> Path of index.html
    report_sweep(sweep_dir, out_dir=None, margin=0.5) -> Path of index.html   (`selectivity report SWEEP`)
    load_results(path) -> the tidy table from results.parquet / results.csv
"""
from selectivity.report.build import report_sweep, write_report
from selectivity.report.tables import load_results

__all__ = ["load_results", "report_sweep", "write_report"]
