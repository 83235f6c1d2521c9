"""An HTML report an auditor can open: results table, keyword-overlap heatmap, highlighted explanations."""

import base64
import html
import io


__all__ = ["plot_attributions", "plot_keyword_overlap", "html_report"]


def plot_keyword_overlap(overlap, classes, ax=None, title="Keyword overlap between classes"):
    """Heatmap of :func:`sklearn_cap.metrics.keyword_overlap`; returns the matplotlib Axes.

    Parameters
    ----------
    overlap : ndarray of shape (n_classes, n_classes)
        Overlap matrix with values in [0, 1], from
        :func:`~sklearn_cap.metrics.keyword_overlap`.
    classes : list
        Row/column order of ``overlap``; the tick labels.
    ax : matplotlib Axes, default=None
        Drawn on a new figure (sized to the number of classes) when None.
    title : str, default="Keyword overlap between classes"
        Title of the plot.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes with the heatmap and its colour bar.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if ax is None:
        size = max(4.0, 0.45 * len(classes) + 2)
        _, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(overlap, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(classes)), [str(c) for c in classes], rotation=90, fontsize=8)
    ax.set_yticks(range(len(classes)), [str(c) for c in classes], fontsize=8)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Jaccard overlap of top keywords")
    ax.set_title(title, fontsize=10)
    ax.figure.tight_layout()
    return ax


def plot_attributions(attributions, index=0, ax=None, title=None):
    """Words of one text coloured by their scores, one row per source of scores.

    Parameters
    ----------
    attributions : WordAttributions or dict of str -> WordAttributions
        One set of scores (an explanation or a prior), or several over the
        same texts (``{"CAP": ..., "IG": ...}``), drawn as rows to compare.
    index : int, default=0
        Which text.
    ax : matplotlib Axes, default=None
        Drawn on a new figure when None.
    title : str, default=None

    Returns
    -------
    ax : matplotlib Axes
        Each row is min-max normalised on its own (the scale differs by
        source); the number in a cell is the raw score.

    Examples
    --------
    >>> from sklearn_cap import WordAttributions
    >>> wa = WordAttributions(["where is my card"], [[0.1, 0.0, 0.2, 0.9]])
    >>> ax = plot_attributions({"prior": wa})
    >>> [t.get_text() for t in ax.get_xticklabels()]
    ['where', 'is', 'my', 'card']
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    rows = attributions if isinstance(attributions, dict) else {"": attributions}
    words = None
    grid = []
    for name, wa in rows.items():
        if words is None:
            words = list(wa.words[index])
        elif list(wa.words[index]) != words:
            raise ValueError(f"Row {name!r} holds another text than the first row: {wa.words[index]} vs {words}.")
        grid.append(np.asarray(wa)[index, : len(words)].astype(float))
    grid = np.array(grid)
    low, high = np.nanmin(grid, axis=1, keepdims=True), np.nanmax(grid, axis=1, keepdims=True)
    shown = (grid - low) / np.where(high > low, high - low, 1.0)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(words) + 1.5), 0.55 * len(rows) + 1.0))
    ax.imshow(np.ma.masked_invalid(shown), cmap="Oranges", vmin=0, vmax=1, aspect="auto")
    for (r, c), v in np.ndenumerate(grid):
        ax.text(c, r, "-" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", fontsize=7,
                color="white" if np.isfinite(shown[r, c]) and shown[r, c] > 0.6 else "black")
    ax.set_xticks(range(len(words)), words, fontsize=9)
    ax.set_yticks(range(len(rows)), list(rows), fontsize=9)
    ax.tick_params(length=0)
    if title:
        ax.set_title(title, fontsize=10)
    ax.figure.tight_layout()
    return ax


def _png(ax):
    buf = io.BytesIO()
    ax.figure.savefig(buf, format="png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(ax.figure)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _table(header, rows):
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_report(path, *, title, summary_header, summary_rows, notes=(), heatmaps=(), explanations=(), priors=None):
    """Write a self-contained HTML report.

    Parameters
    ----------
    path : str or path-like
    title : str
    summary_header, summary_rows : table of results
    notes : list of str
        Paragraphs (plain text) under the table: settings, commands, caveats.
    heatmaps : list of (caption, overlap, classes)
    explanations : list of (caption, WordAttributions, gold labels)
        Rendered side by side, text by text.
    priors : (caption, WordAttributions, labels), optional
    """
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child{text-align:left}.cols{display:flex;gap:2em}.cols>div{flex:1}"
        "p{line-height:1.6}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _table(summary_header, summary_rows),
    ]
    parts += [f"<p>{html.escape(n)}</p>" for n in notes]
    for caption, overlap, classes in heatmaps:
        img = _png(plot_keyword_overlap(overlap, classes, title=caption))
        parts.append(f"<h2>{html.escape(caption)}</h2><img src='data:image/png;base64,{img}'>")
    if explanations:
        parts.append("<h2>Explanations of test texts (green: supports the explained class; red: against it)</h2>")
        parts.append("<div class='cols'>")
        for caption, wa, gold in explanations:
            rows = [f"<h3>{html.escape(caption)}</h3>"]
            for i in range(len(wa)):
                pred = wa.targets[i] if wa.targets is not None else ""
                mark = "" if gold is None else (" ✓" if pred == gold[i] else f" ✗ (gold: {html.escape(str(gold[i]))})")
                rows.append(f"<div><i>{html.escape(str(pred))}{mark}</i>{wa.to_html(i, labels=[''] * len(wa))}</div>")
            parts.append("<div>" + "".join(rows) + "</div>")
        parts.append("</div>")
    if priors is not None:
        caption, wa, labels = priors
        parts.append(f"<h2>{html.escape(caption)}</h2>")
        parts.append(wa.to_html(labels=list(labels)))
    parts.append("</body></html>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))
    return str(path)
