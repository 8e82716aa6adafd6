"""Render a :class:`ReportData` as one HTML page: lineage, data checks, metrics and plots, gates, deployments, model card.

Every value is escaped; plots are inline data URIs; the page links to nothing outside itself.
"""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from string import Template
from typing import TYPE_CHECKING, Any

from mlflowkit._version import __version__
from mlflowkit.fmt import interval, number

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from mlflowkit.report.collect import ReportData

__all__ = ["figure_tag", "page", "render"]

SECTIONS = (
    ("lineage", "Lineage"),
    ("data", "Data"),
    ("checks", "Data checks"),
    ("metrics", "Metrics"),
    ("training", "Training"),
    ("gates", "Gates"),
    ("deployments", "Deployments"),
    ("model-card", "Model card"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, dict | list):
        return escape(json.dumps(value, default=str))
    return escape(str(value))


def _table(rows: Iterable[dict[str, Any]], columns: list[str] | None = None, table_id: str = "") -> str:
    rows = list(rows)
    if not rows:
        return '<p class="note">nothing to show</p>'
    cols = columns or list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{escape(c)}</th>" for c in cols)
    body = []
    for row in rows:
        cells = []
        for c in cols:
            value = row.get(c)
            cls = ' class="num"' if isinstance(value, int | float) and not isinstance(value, bool) else ""
            if c in {"result", "status"} and isinstance(value, str):
                cells.append(f'<td><span class="badge {escape(value.lower())}">{escape(value)}</span></td>')
            else:
                cells.append(f"<td{cls}>{_cell(value)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    ident = f' id="{escape(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _kv(pairs: Iterable[tuple[str, Any]]) -> str:
    items = "".join(f"<dt>{escape(k)}</dt><dd>{_cell(v)}</dd>" for k, v in pairs)
    return f'<dl class="kv">{items}</dl>'


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge {escape(kind)}">{escape(text)}</span>'


def figure_tag(uri: str, caption: str, plot_id: str) -> str:
    """A plot as a ``<figure>`` with its caption; ``plot_id`` becomes the image's id (``plot-<plot_id>``)."""
    return (
        f'<figure><img class="plot" id="plot-{escape(plot_id)}" alt="{escape(caption)}" src="{uri}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _lineage(data: ReportData) -> str:
    run = data.run
    trigger = run.trigger
    how = "by hand (mlflowkit run / API)"
    if trigger is not None and trigger.deployment:
        how = f"deployment {trigger.deployment}" + (" (schedule)" if trigger.scheduled else " (started by hand or API)")
    elif trigger is not None and trigger.by == "monitor":
        how = f"drift check {trigger.check_id}"
    pairs: list[tuple[str, Any]] = [
        ("run", run.run_id),
        ("spec", f"{run.spec_name} ({run.spec_path})"),
        ("spec sha256", run.spec_hash),
        ("git commit", run.git_commit),
        ("params", json.dumps(run.params, sort_keys=True)),
        ("started / finished", f"{run.started_at} / {run.finished_at or '-'}"),
        ("duration", f"{run.seconds:.2f} s"),
        ("Prefect flow run", run.flow_run_id),
        ("triggered", how),
    ]
    if data.dataset:
        d = data.dataset
        fp = d.get("data_fingerprint") or {}
        pairs.append(("data", f"{d.get('rows')} rows, {len(d.get('columns') or [])} columns, target {d.get('target')}"))
        if isinstance(fp, dict):
            pairs.append(
                (
                    "data fingerprint",
                    f"content {str(fp.get('content_hash', '-'))[:16]}, schema {str(fp.get('schema_hash', '-'))[:16]}",
                )
            )
    version = data.version
    if version is not None:
        lineage = data.registered.lineage if data.registered else {}
        aliases = data.registered.aliases if data.registered else ((version.alias,) if version.alias else ())
        shown = f"{version.label()} ({', '.join(aliases) or 'no alias'})"
        if version.existing:
            shown = f"not registered again: the model equals {shown}"
        pairs.append(("registered", shown))
        if lineage.get("estimator"):
            pairs.append(("estimator", lineage.get("estimator")))
        if lineage.get("params"):
            pairs.append(("estimator params", json.dumps(lineage["params"], sort_keys=True, default=str)))
    else:
        pairs.append(("registered", "no version was registered in this run"))
    steps = [
        {"step": s.name, "kind": s.kind, "status": s.status, "seconds": s.seconds, "error": s.error or ""} for s in run.steps
    ]
    libraries = [{"library": name, "version": version} for name, version in run.libraries.items()]
    shown = (
        _table(libraries, table_id="libraries")
        if libraries
        else '<p class="note">not recorded (a run made before mlflowkit recorded library versions)</p>'
    )
    return _kv(pairs) + "<h3>Steps</h3>" + _table(steps) + "<h3>Libraries the run loaded</h3>" + shown


def _observed(result: dict[str, Any]) -> Any:
    if result.get("error"):
        return f"raised: {result['error']}"
    if result.get("observed") is not None:
        return result["observed"]
    percent = result.get("unexpected_percent")
    return f"{number(percent)}% unexpected" if isinstance(percent, int | float) else None


def _data(data: ReportData) -> str:
    """What the model learnt from: the table's size and target, and the profile of each feature (train split)."""
    out = []
    d = data.dataset
    if d:
        columns = d.get("columns") or []
        out.append(
            _kv(
                [
                    ("source", d.get("source")),
                    ("rows", d.get("rows")),
                    ("columns", f"{len(columns)}: {', '.join(map(str, columns))}"),
                    ("target", d.get("target")),
                ]
            )
        )
    profile = data.profile
    if not profile:
        out.append(
            '<p class="note">no profile in this run '
            "(the recipe has no <code>profile</code> step, or the run stopped before it)</p>"
        )
        return "".join(out) if d else '<p class="note">the run stopped before it loaded its data</p>'
    out.append(f"<h3>Profile of the training split ({_cell(profile.get('rows'))} rows)</h3>")
    rows = [_profile_row(name, summary) for name, summary in (profile.get("features") or {}).items()]
    if isinstance(profile.get("prediction"), dict):
        rows.append(_profile_row(f"model output ({profile['prediction'].get('output')}, held-out rows)", profile["prediction"]))
    out.append(_table(rows, ["feature", "type", "missing", "mean", "std", "min", "max", "most common"], table_id="profile"))
    return "".join(out)


def _profile_row(name: str, s: dict[str, Any]) -> dict[str, Any]:
    missing = s.get("missing")
    row: dict[str, Any] = {
        "feature": name,
        "type": s.get("type"),
        "missing": f"{number(missing * 100)}%" if isinstance(missing, int | float) else None,
    }
    if s.get("type") == "numeric":
        row |= {k: s.get(k) for k in ("mean", "std", "min", "max")}
    else:
        top = sorted((s.get("frequencies") or {}).items(), key=lambda kv: -kv[1])[:3]
        row["most common"] = ", ".join(f"{k} {number(v * 100)}%" for k, v in top if isinstance(v, int | float))
    return row


def _checks(data: ReportData) -> str:
    if data.checks:
        c = data.checks
        head = _badge("PASS" if c.get("passed") else "FAIL", "pass" if c.get("passed") else "fail")
        counts = [_cell(c.get(k, 0)) for k in ("checks", "failed", "warned")]
        summary = f"<p>{head} {counts[0]} checks, {counts[1]} failed, {counts[2]} warned</p>"
        rows = [
            {
                "expectation": str(r.get("expectation", "")).removeprefix("expect_"),
                "column": (r.get("kwargs") or {}).get("column", ""),
                "on": r.get("table"),
                "expected": r.get("expected", "-"),
                "observed": _observed(r),
                "unexpected": r.get("unexpected_count"),
                "result": "pass" if r.get("passed") else ("FAIL" if r.get("severity") == "error" else "warn"),
                "severity": r.get("severity"),
            }
            for r in c.get("results", [])
        ]
        return summary + _table(rows)
    stored = next((r for k, r in data.step_reports.items() if k.endswith("-results") and r.get("rows")), None)
    if stored:  # the checks failed: their report was kept with the run, the validation output was not
        return f"<p>{escape(stored.get('title', ''))}</p>" + _table(stored["rows"])
    return (
        '<p class="note">no data checks ran in this run (no <code>checks:</code> in the spec, or the run stopped before them)</p>'
    )


def _metrics(data: ReportData, plots: Any) -> str:
    m = data.metrics
    if not m:
        return '<p class="note">no evaluation in this run (it stopped before evaluate)</p>'
    values = dict(m.get("metrics") or {})
    fairness = m.get("fairness") or {}
    values.update(fairness.get("metrics") or {})
    champion = m.get("champion") or {}
    ci = m.get("ci") or {}
    rows = []
    for name, value in values.items():
        row: dict[str, Any] = {"metric": name, "value": value}
        if name in ci:
            row["confidence interval"] = interval(*ci[name])
        if champion.get("version") is not None:
            row[f"champion v{champion['version']}"] = (champion.get("metrics") or {}).get(name)
        rows.append(row)
    out = [f"<p>{_cell(m.get('n_test', '?'))} held-out rows.</p>", _table(rows)]
    if champion.get("note"):
        out.append(f'<p class="note">champion: {escape(champion["note"])}</p>')
    figures = []
    if plots is None:
        out.append("<p class=\"note\">plots need matplotlib: <code>pip install 'mlflowkit[report]'</code></p>")
    else:
        figures = _metric_figures(m, plots)
    out.extend(figures)
    if fairness:
        out.append("<h3>Fairness by group</h3>")
        out.append(
            f"<p>positive label {escape(str(fairness.get('positive_label')))}; groups under "
            f"{_cell(fairness.get('min_group_size'))} rows are left out of the disparity metrics.</p>"
        )
        groups = fairness.get("groups") or []
        metric_cols = [k for k in (groups[0] if groups else {}) if k not in {"feature", "group", "rows", "note"}]
        out.append(_table(groups, ["feature", "group", "rows", *metric_cols, "note"]))
    if m.get("slices"):
        out.append("<h3>Metrics by slice</h3>" + _table(m["slices"]))
    return "".join(out)


def _metric_figures(m: dict[str, Any], plots: Any) -> list[str]:
    """The metrics' plots: the champion's curves beside this model's where evaluate scored it on the same rows."""
    theirs = m.get("champion_curves") or {}
    champion = f"champion v{(m.get('champion') or {}).get('version')}"
    figures = []
    cm = m.get("confusion_matrix")
    if cm and cm.get("matrix"):
        panels = [("this model", cm["labels"], cm["matrix"])]
        other = theirs.get("confusion_matrix")
        if other and other.get("matrix"):
            panels.append((champion, other["labels"], other["matrix"]))
        caption = "confusion matrix: this model | " + champion if len(panels) > 1 else "confusion matrix"
        figures.append(figure_tag(plots.confusion_matrices(panels), caption, "confusion-matrix"))
    with_champion = f", {champion} dashed" if theirs else ""
    if m.get("roc_curves"):
        uri = plots.roc_curves(m["roc_curves"], theirs.get("roc_curves"), champion)
        figures.append(figure_tag(uri, "ROC curve" + with_champion, "roc"))
    if m.get("pr_curves"):
        pr = m["pr_curves"]
        base = pr[0].get("base") if len(pr) == 1 else None
        uri = plots.pr_curves(pr, theirs.get("pr_curves"), champion, base=base)
        figures.append(figure_tag(uri, "precision-recall curve" + with_champion, "pr"))
    if (m.get("calibration") or {}).get("points"):
        curves = [("this model", m["calibration"])]
        if (theirs.get("calibration") or {}).get("points"):
            curves.append((champion, theirs["calibration"]))
        figures.append(figure_tag(plots.calibration(curves), "calibration (reliability)", "calibration"))
    res = m.get("residuals")
    if res and res.get("predicted"):
        actual = [p + r for p, r in zip(res["predicted"], res["residual"], strict=True)]
        figures.append(figure_tag(plots.predicted_vs_actual(res["predicted"], actual), "predicted vs actual", "predicted-actual"))
        figures.append(
            figure_tag(plots.residuals(res["predicted"], res["residual"]), f"residuals ({res.get('rows')} rows)", "residuals")
        )
    imp = m.get("importance") or {}
    if imp.get("features"):
        caption = f"permutation importance ({imp.get('rows')} rows, {imp.get('repeats')} shuffles per column)"
        figures.append(figure_tag(plots.importance(imp["features"], str(imp.get("metric"))), caption, "importance"))
    groups = (m.get("fairness") or {}).get("groups") or []
    if groups:
        shown = [k for k in ("selection_rate", "accuracy", "recall", "precision", "false_positive_rate") if k in groups[0]]
        figures.append(figure_tag(plots.fairness_groups(groups, shown), "fairness: metrics per group", "fairness"))
    return figures


def _training(data: ReportData, plots: Any) -> str:
    """A network's loss per epoch (the torch train step's history)."""
    history = next((r.get("rows") for k, r in data.step_reports.items() if k.endswith("-epochs") and r.get("rows")), None)
    if not history:
        return '<p class="note">no per-epoch history in this run (a scikit-learn model, or the training was cached)</p>'
    if plots is None:
        return _table(history)
    last = history[-1]
    losses = f"training loss {_cell(last.get('train_loss'))}, validation loss {_cell(last.get('val_loss'))}"
    summary = f"<p>{len(history)} epochs; last: {losses}.</p>"
    return summary + figure_tag(plots.loss_curve(history), "loss per epoch", "loss")


def _gates(data: ReportData) -> str:
    v = data.verdict
    if v is None:
        return '<p class="note">no gates ran in this run</p>'
    rows = [
        {
            "rule": r.rule,
            "value": r.value,
            "threshold": r.threshold,
            "baseline": f"v{r.baseline}" if r.baseline else "",
            "result": "pass" if r.passed else "FAIL",
            "note": r.note or r.description,
        }
        for r in v.rules
    ]
    verdict = _badge("PASS" if v.passed else "FAIL", "pass" if v.passed else "fail")
    extra = f" (rejected candidate kept as v{v.rejected_version})" if v.rejected_version else ""
    return f"<p>verdict: {verdict}{escape(extra)}</p>" + _table(rows)


def _endpoints(data: ReportData) -> list[dict[str, str]]:
    out = []
    for t in (data.deployment or {}).get("targets", []):
        if t.get("target") == "triton":
            base = str(t.get("url", "")).rstrip("/")
            name, version = t.get("model"), t.get("version")
            out.append({"what": "infer (HTTP, KServe v2)", "endpoint": f"POST {base}/v2/models/{name}/versions/{version}/infer"})
            out.append({"what": "ready", "endpoint": f"GET {base}/v2/models/{name}/versions/{version}/ready"})
            out.append({"what": "metadata", "endpoint": f"GET {base}/v2/models/{name}/versions/{version}"})
            if t.get("grpc_url"):
                out.append(
                    {
                        "what": "infer (gRPC, KServe v2)",
                        "endpoint": f"{t['grpc_url']} ModelInfer model_name={name} model_version={version}",
                    }
                )
    return out


def _deployments(data: ReportData) -> str:
    d = data.deployment
    if not d or not d.get("targets"):
        return (
            '<p class="note">nothing was deployed in this run '
            "(no <code>deploy:</code> targets, or the run stopped before deploy)</p>"
        )
    rows = [
        {
            "target": t.get("target"),
            "url": t.get("url"),
            "model": t.get("model"),
            "version": t.get("version"),
            "previous": t.get("previous"),
            "repository": t.get("model_repository"),
            "backend": t.get("backend"),
            "smoke test": ", ".join(f"{p}: {c.get('rows')} rows" for p, c in (t.get("smoke") or {}).items()) or "skipped",
            "seconds": t.get("seconds"),
        }
        for t in d["targets"]
    ]
    return f"<p>{escape(str(d.get('model')))} v{escape(str(d.get('version')))} deployed to {len(rows)} target(s).</p>" + _table(
        rows
    )


def _purpose(data: ReportData) -> str:
    """The model card's opening: what the model is for and where not to trust it, as the spec says."""
    run = data.run
    if not (run.description or run.intended_use or run.limitations):
        return (
            '<p class="note">the spec says nothing of its purpose: add <code>description:</code> and '
            "<code>model_card: {intended_use: ..., limitations: ...}</code></p>"
        )
    parts = [
        ("description", "What it is for", run.description),
        ("intended-use", "Intended use", run.intended_use),
        ("limitations", "Limitations", run.limitations),
    ]
    shown = "".join(
        f'<dt>{escape(title)}</dt><dd class="prose" id="card-{key}">{escape(text)}</dd>' for key, title, text in parts if text
    )
    missing = [title.lower() for _, title, text in parts[1:] if not text]
    note = f'<p class="note">the spec gives no {" and no ".join(missing)} (<code>model_card:</code>)</p>' if missing else ""
    return f'<dl class="kv card">{shown}</dl>{note}'


def _model_card(data: ReportData) -> str:
    c = data.contract
    if not c:
        return (
            _purpose(data)
            + '<p class="note">no exported model in this run (no <code>export</code> step): no contract to integrate against</p>'
        )
    name = data.version.model if data.version else data.run.model
    version = data.version.version if data.version else None
    lineage = data.registered.lineage if data.registered else {}
    out = [
        _purpose(data),
        _kv(
            [
                ("model", f"{name} v{version}" if version else f"{name} (not registered in this run)"),
                ("format", f"ONNX, opset {(c.get('opset') or {}).get('', '?')}; contract {c.get('format')}"),
                ("layout", c.get("layout")),
                ("predicts", c.get("target")),
                ("labels", ", ".join(map(str, c.get("classes") or [])) or "-"),
                ("label output", c.get("label_output")),
                ("probability output", c.get("probability_output")),
                (
                    "metrics",
                    ", ".join(f"{k}={number(v)}" for k, v in (lineage.get("metrics") or {}).items() if isinstance(v, int | float))
                    or None,
                ),
            ]
        ),
        "<h3>Inputs</h3>",
        _table(
            [
                {
                    "name": t["name"],
                    "dtype": t["dtype"],
                    "datatype (v2)": _wire(t["dtype"]),
                    "shape": str(t["shape"]),
                    "column": t.get("column"),
                }
                for t in c.get("inputs", [])
            ]
        ),
        "<h3>Outputs</h3>",
        _table(
            [
                {"name": t["name"], "dtype": t["dtype"], "datatype (v2)": _wire(t["dtype"]), "shape": str(t["shape"])}
                for t in c.get("outputs", [])
            ]
        ),
    ]
    parity = c.get("parity") or {}
    if parity:
        compared = "probability" if c.get("probability_output") else "prediction"  # a regressor has no probabilities
        out.append(
            f"<p>ONNX parity with the trained model on {_cell(parity.get('rows'))} held-out rows: max |Δ{compared}| "
            f"{_cell(parity.get('max_abs_diff'))}, {_cell(parity.get('disagreeing_rows'))} rows disagree.</p>"
        )
    endpoints = _endpoints(data)
    out.append("<h3>Endpoints</h3>")
    if endpoints:
        out.append(_table(endpoints))
    else:
        out.append(
            f'<p class="note">not deployed by this run; on Triton it serves at <code>POST http://HOST:8000/v2/models/{escape(str(name))}/infer</code></p>'
        )
    if data.example:
        body = json.dumps(data.example, indent=2, default=str)
        url = endpoints[0]["endpoint"].removeprefix("POST ") if endpoints else f"http://HOST:8000/v2/models/{name}/infer"
        out.append(
            '<details id="example-request"><summary>Example request (Triton HTTP / KServe v2 JSON): one held-out row</summary>'
            f"<pre>{escape(body)}</pre>"
            f"<pre>curl -s -X POST {escape(url)} -H 'Content-Type: application/json' -d @request.json</pre></details>"
        )
    return "".join(out)


def _wire(dtype: str) -> str:
    from mlflowkit.report.collect import WIRE_TYPES

    return WIRE_TYPES.get(dtype, dtype.upper())


def render(data: ReportData) -> str:
    """The report as one self-contained HTML page."""
    from mlflowkit.report import plots as plot_module

    plots = plot_module if plot_module.available() else None
    run = data.run
    status = run.status
    title = f"{run.spec_name} · run {run.run_id}"
    sub = f"model {run.model}" + (f" v{data.version.version}" if data.version else "")
    header = (
        f"<header><h1>{escape(title)} {_badge(status, status)}</h1>"
        f'<div class="sub">{escape(sub)} · started {escape(run.started_at)}</div>'
        + (f'<p class="description" id="description">{escape(run.description)}</p>' if run.description else "")
        + "</header>"
    )
    nav = "<nav>" + "".join(f'<a href="#{k}">{escape(t)}</a>' for k, t in SECTIONS) + "</nav>"
    builders: dict[str, Callable[[], str]] = {
        "lineage": lambda: _lineage(data),
        "data": lambda: _data(data),
        "checks": lambda: _checks(data),
        "metrics": lambda: _metrics(data, plots),
        "training": lambda: _training(data, plots),
        "gates": lambda: _gates(data),
        "deployments": lambda: _deployments(data),
        "model-card": lambda: _model_card(data),
    }
    sections = []
    for key, heading in SECTIONS:
        sections.append(f'<section id="{key}"><h2>{escape(heading)}</h2>{builders[key]()}</section>')
    if run.error:
        sections.insert(0, f'<section id="error"><h2>Error</h2><pre>{escape(run.error)}</pre></section>')
    if data.notes:
        sections.append(
            '<section id="notes"><h2>Notes</h2><ul>' + "".join(f"<li>{escape(n)}</li>" for n in data.notes) + "</ul></section>"
        )
    return page(title, header + nav + "<main>" + "".join(sections) + "</main>")


def page(title: str, body: str) -> str:
    """A self-contained page in the report's look (``template.html``): ``body`` is HTML, ``title`` plain text."""
    template = Template(resources.files("mlflowkit.report").joinpath("template.html").read_text(encoding="utf-8"))
    return template.substitute(title=escape(title), body=body, version=escape(__version__))
