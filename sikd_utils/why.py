"""What the ablations say: the tables and sentences of notebook 07 ("Why does SIKD work?").

Everything here is computed from the files ``python -m sikd_utils ablate`` writes
(``book/results/ablations/``, read by :func:`load_results`) with the paired statistics of
:mod:`sikd_utils.stats`; the notebook only displays it. Each variant is compared, paired by seed, with
its baseline and (for the variants that change one thing of SIKD's recipe) with SIKD, on three summary
test sets, and each comparison gets one outcome by :data:`CONCLUSION_RULE`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from . import ablations as ab
from . import stats
from .distill import DEFAULT_TEMPERATURE
from .reproduce import load_results

__all__ = ["load_results", "complete_tasks", "colour_limit", "COLOUR_QUANTILE", "method_provenance", "COMMAND", "PENDING", "pending", "fingerprint_figure", "SUMMARIES", "CONCLUSION_RULE", "registry_table", "summary_scores",
           "comparisons", "comparison_table", "fingerprints", "overall_outcome", "conclusions", "teacher_table",
           "provenance_table", "ingredients", "ingredient_figure", "from_evidence", "EVIDENCE_QUESTIONS", "Interim", "interim", "INTERIM", "interim_note",
           "training_from_evidence", "teacher_and_student", "FOLLOW_NOTE", "follow_sentence", "LAMBDA_OF",
           "LAMBDA_RULE", "lambda_curve", "lambda_slopes", "lambda_sentences", "lambda_figure",
           "LR_PROBE", "read_lr_probe", "lr_probe_figure", "teacher_rate_sentences", "projection_sentences", "LEFT_BACKGROUND",
           "read_histories", "escape_epochs", "escape_sentences", "probe_agreement", "history_figure", "headline"]

COMMAND = "python -m sikd_utils ablate --preset gpu --tasks fundus abdomen --workers 10 --max-minutes 9"
PENDING = (f"**Pending.** The ablation runs have not committed results yet. On a GPU, run `{COMMAND}` again "
           "until it prints DONE, then commit `book/results/ablations/`; nothing is shown here until then rather "
           "than numbers from another scale.")


def _command(out_dir: str) -> str:
    """:data:`COMMAND`, naming ``out_dir`` where it is not the default."""
    return COMMAND if out_dir == "runs" else f"{COMMAND} --out-dir {out_dir}"


def pending(out_dir: str = "runs", tasks=None) -> str:
    """The pending note (``PENDING``), for some ``tasks`` only when given, its command naming ``out_dir``."""
    text = PENDING.replace(COMMAND, _command(out_dir))
    if tasks:
        text = text.replace("have not committed results yet", f"have not committed results for {', '.join(tasks)} yet")
        text = text.replace("nothing is shown here until then", "nothing is shown for them until then")
    return text


def complete_tasks(prov: dict, tasks) -> list[str]:
    """The ``tasks`` whose gathered results (``<task>.csv``) hold every method of the full ablation on every
    seed of its preset. ``ablate --variants`` or ``--seeds`` gathers a task as soon as the chosen part finishes,
    which may be only part of the ablation: such a task is read as interim, from its part files; so is one
    gathered under a preset this package does not define (its seeds cannot be checked)."""
    entries = prov.get("tasks", {}) if prov else {}

    def gathered_in_full(entry: dict) -> bool:
        try:
            return not any(ab.not_gathered(entry))
        except ValueError:  # an undefined preset
            return False

    return [t for t in tasks if t in entries and gathered_in_full(entries[t])]


#: the note above the methods of unfinished tasks (see :func:`interim`)
INTERIM = ("**Interim.** The run of {tasks} is not finished. The methods it has already tested on every seed are "
           "shown below, marked *interim*: each of them is final (the rest of the run trains other networks and cannot "
           "change its networks, test sets or baseline), and the questions whose variants are still missing say "
           "*pending*. Section 8 says where each came from. To finish, run `{command}` on a GPU again until it prints "
           "DONE, then commit `book/results/ablations/`.")


def interim_note(tasks, out_dir: str = "runs") -> str:
    """:data:`INTERIM` for ``tasks``, its command naming ``out_dir`` (as :func:`pending` does)."""
    return INTERIM.format(tasks=", ".join(tasks), command=_command(out_dir))


class Interim(NamedTuple):
    """What the committed part files of unfinished tasks hold (see :func:`interim`)."""

    scores: pd.DataFrame
    training: pd.DataFrame
    notes: dict  # task -> remark for its sentences, e.g. "(interim: 10 of 15 methods)"
    provenance: pd.DataFrame  # one row per (task, method) measured here; imported ones name their source


def interim(tasks, parts_dir, preset: str = "gpu", seeds=None) -> Interim:
    """The methods of unfinished ``tasks`` already tested on every seed, from the part files in ``parts_dir``
    (``python -m sikd_utils ablate`` writes them there; committed, they carry a run across GPU sessions).
    ``seeds``: the run's seeds where not the preset's."""
    from .ablate import AblationSettings, finished_methods

    settings = AblationSettings(preset=preset, parts_dir=str(parts_dir), seeds=tuple(seeds) if seeds else None)
    scores, training, notes, made = [], [], {}, []
    for task in tasks:
        task_scores, task_training, methods = finished_methods(settings, task)
        if not methods:
            continue
        scores.append(task_scores)
        training.append(task_training)
        notes[task] = f"(interim: {len(methods)} of {len(settings.methods())} methods finished)"
        made += _made_rows(settings, task, methods)
    if not scores:
        return Interim(pd.DataFrame(), pd.DataFrame(), {}, pd.DataFrame())
    return Interim(pd.concat(scores, ignore_index=True), pd.concat(training, ignore_index=True), notes,
                   pd.DataFrame(made).fillna("—"))


def _made_rows(settings, task: str, methods) -> list[dict]:
    """One row per method: how its part files were made, from their own records. A task's seeds and methods
    come from different GPU pieces and commits, so every distinct value is listed; imported ones name the
    evidence run's method."""
    import json

    from .ablate import _parts

    folders = [_parts(settings, task, seed) for seed in settings.config(task).seeds]
    made = []
    for method in methods:
        entries = [json.loads(path.read_text()) for folder in folders for kind in ("provenance", "imported")
                   if (path := folder / f"{method}.{kind}.json").exists()]
        rows = [{"commit": e.get("commit"), "device": e.get("device", "(imported)"),
                 "precision": e.get("precision"), "date": e.get("date"),
                 "command": e.get("command") or f"imported: the evidence run's `{e.get('evidence_method')}`"}
                for e in entries]
        if rows:
            made.append({"task": task, "method": method,
                         **{key: "; ".join(dict.fromkeys(str(r[key]) for r in rows if r[key] is not None))
                            or None for key in rows[0]}})
    return made


def method_provenance(prov: dict, tasks, parts_dir) -> pd.DataFrame:
    """Per (task, method) of finished ``tasks``: the commits, devices, dates and commands its seeds were made
    with, from the part files in ``parts_dir``. ``prov`` (``provenance.json``) names only the piece that
    gathered a task; its preset, seeds and methods say which part files that piece gathered."""
    from .ablate import AblationSettings

    made = []
    for task in tasks:
        entry = prov["tasks"][task]
        settings = AblationSettings(preset=entry["preset"], parts_dir=str(parts_dir), seeds=tuple(entry["seeds"]))
        made += _made_rows(settings, task, list(entry["methods"]))
    return pd.DataFrame(made).fillna("—")


#: the summary test sets of every comparison (family names in :func:`summary_scores`)
SUMMARIES = ("clean", "target (mean)", "shifts (mean)")
#: the rule that turns a comparison into an outcome, in words
CONCLUSION_RULE = (
    "Each variant is compared with a reference (SIKD as published for the variants that change one thing of its "
    "recipe, the variant's own baseline for SIKD and the backbones), paired by seed, on three summary test sets: "
    "the clean source test set, the realistic target averaged over its severities, and every other tested shift "
    "family averaged over families and severities. On each, the difference is a gain when its 95 % CI lies above "
    "0, a loss when it lies below 0, a tie otherwise. The variant is *better* when at least one summary is a gain "
    "and none a loss, *worse* when at least one is a loss and none a gain, *mixed* when there are both, and *tie* "
    "(not detectably different) when all three are ties; a verdict carried by some summaries only names them. "
    "With a single seed there is no CI, so every difference is a tie.")
_MIXED = "mixed: better on some summary test sets, worse on others"


def registry_table() -> pd.DataFrame:
    """The variants: what each changes, which question it answers, what it is compared with."""
    rows = [{"variant": v.name, "question": ab.QUESTIONS[v.question], "what changes": v.what,
             "compared with": v.reference or v.baseline, "its baseline": v.baseline}
            for v in ab.VARIANTS.values()]
    return pd.DataFrame(rows)


#: SIKD's ingredients as notebook 07 names them: (label, setting, SIKD's value shown as)
_INGREDIENTS = (("teacher skips", "teacher_skips", {False: "none", True: "kept"}),
                ("teacher sees", "teacher_input", {None: "mean image", "label_onehot": "one-hot label", "raw": "raw image"}),
                ("distilled layer", "distill_layer", {"last_decoder": "last decoder", "bottleneck": "bottleneck"}),
                ("distillation", "distill_method", {"feature_mse": "feature MSE", "logit_kd": f"logit KD (T {DEFAULT_TEMPERATURE:g})",
                                                    "attention_transfer": "attention"}),
                ("λ", "distill_weight", None),
                ("backbone", "backbone", {"unet": "U-Net", "swin_unetr": "SwinUNETR", "basic_unet": "BasicUNet"}))


def ingredients() -> pd.DataFrame:
    """Per variant, the value of each of SIKD's ingredients, read from the registry's overrides."""
    from .configuration import COMPARISON_DEFAULTS
    from .distill import DEFAULT_WEIGHT

    defaults = {**COMPARISON_DEFAULTS, "distill_weight": DEFAULT_WEIGHT}
    rows = {}
    for v in ab.VARIANTS.values():
        settings = {**defaults, **v.overrides}
        if v.roles[0] == "raw_teacher":
            settings["teacher_input"] = "raw"
        rows[v.name] = {label: (names or {}).get(settings[key], f"{settings[key]:g}" if names is None else settings[key])
                        for label, key, names in _INGREDIENTS}
    return pd.DataFrame.from_dict(rows, orient="index")


def ingredient_figure(ax=None):
    """The variants as a grid of SIKD's ingredients: each cell the variant's value, shaded where it
    differs from SIKD — one glance shows that every variant changes one thing."""
    import matplotlib.pyplot as plt

    table = ingredients()
    changed = (table != table.loc["sikd"]).to_numpy()
    if ax is None:
        _, ax = plt.subplots(figsize=(7.0, 0.3 * len(table) + 1.2))  # the book's column (viz.FIGURE_WIDTH)
    ax.imshow(changed, cmap=plt.get_cmap("Oranges"), vmin=0, vmax=2.2, aspect="auto")
    for (i, j), value in np.ndenumerate(table.to_numpy()):
        ax.text(j, i, value, ha="center", va="center", fontsize=9, fontweight="bold" if changed[i, j] else "normal")
    ax.set_xticks(range(table.shape[1]), table.columns, fontsize=9)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(table)), table.index, fontsize=9)
    ax.set_xticks(np.arange(-0.5, table.shape[1]), minor=True)
    ax.set_yticks(np.arange(-0.5, len(table)), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="both", length=0)
    ax.set_title("What each variant changes (shaded) of SIKD's recipe", fontsize=9, pad=24)
    return ax.figure


#: the questions the evidence run answers on its own (its control is the ``teacher_raw`` variant)
EVIDENCE_QUESTIONS = ("reference", "teacher_input")


def from_evidence(scores: pd.DataFrame) -> pd.DataFrame:
    """The evidence run's scores (``book/results``) as ablation scores.

    Its control student is distilled exactly like SIKD's from a skip-free teacher trained on raw images:
    that *is* the ``teacher_raw`` variant, so SIKD − control answers "does the teacher need the class-wise
    mean image?" on every task the evidence run committed, before any ablation runs.
    """
    kept = scores[scores["method"].isin(["baseline", "sikd", "control"])]
    return kept.assign(method=kept["method"].replace({"control": "teacher_raw"}))


def summary_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (task, seed, method): Dice on the :data:`SUMMARIES` (as ``family``, severity 0)."""
    keys = ["task", "seed", "method"]
    clean = scores[scores["family"] == "clean"].groupby(keys, sort=False)["dice"].mean()
    shifted = scores[scores["severity"] > 0]
    target = shifted[shifted["family"] == "target"].groupby(keys, sort=False)["dice"].mean()
    others = shifted[~shifted["family"].isin(["clean", "target"])].groupby(keys, sort=False)["dice"].mean()
    parts = [s.reset_index().assign(family=name, severity=0)
             for name, s in zip(SUMMARIES, (clean, target, others)) if len(s)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*keys, "dice", "family", "severity"])


def comparisons(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, variant, against, summary): the paired difference in Dice points and its outcome.

    ``against`` is ``"baseline"`` or ``"reference"``; ``comparator`` names the method compared with.
    """
    summary = summary_scores(scores)
    present = set(summary["method"])
    rows = []
    for name, variant in ab.VARIANTS.items():
        for against, comparator in (("baseline", variant.baseline), ("reference", variant.reference)):
            if comparator is None or name not in present or comparator not in present:
                continue
            deltas = stats.paired_deltas(summary, name, comparator)
            for r in deltas.itertuples():
                rows.append({"task": r.task, "variant": name, "question": variant.question, "against": against,
                             "comparator": comparator, "summary": r.family, "delta": 100 * r.delta,
                             "ci": 100 * r.delta_ci, "outcome": r.outcome, "wins": r.wins, "n_seeds": r.n_seeds})
    return pd.DataFrame(rows, columns=["task", "variant", "question", "against", "comparator", "summary", "delta",
                                       "ci", "outcome", "wins", "n_seeds"])


def overall_outcome(outcomes) -> str:
    """better, worse, mixed or tie from the summaries' gain/loss/tie (see :data:`CONCLUSION_RULE`)."""
    outcomes = set(outcomes)
    if "gain" in outcomes and "loss" in outcomes:
        return "mixed"
    if "gain" in outcomes:
        return "better"
    if "loss" in outcomes:
        return "worse"
    return "tie"


def _number(delta: float, ci: float) -> str:
    return f"{delta:+.1f} ± {ci:.1f}" if np.isfinite(ci) else f"{delta:+.1f}"


def comparison_table(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`comparisons` as one row per (task, variant): Δ ± CI per summary against baseline and SIKD."""
    rows = {}
    for r in table.itertuples():
        row = rows.setdefault((r.task, r.variant), {"task": r.task, "variant": r.variant})
        label = "vs baseline" if r.against == "baseline" else "vs SIKD"
        row[f"{label}: {r.summary}"] = _number(r.delta, r.ci)
    for (task, variant), group in table.groupby(["task", "variant"], sort=False):
        for against, label in (("baseline", "vs baseline"), ("reference", "vs SIKD")):
            outcomes = group.loc[group["against"] == against, "outcome"]
            if len(outcomes):
                rows[(task, variant)][f"{label}: outcome"] = overall_outcome(outcomes)
    columns = ["task", "variant"] + [f"{label}: {s}" for label in ("vs baseline", "vs SIKD")
                                     for s in (*SUMMARIES, "outcome")]
    frame = pd.DataFrame(list(rows.values()))
    if len(frame):  # task by task, variants in the registry's order
        order = {name: i for i, name in enumerate(ab.VARIANTS)}
        tasks = {task: i for i, task in enumerate(dict.fromkeys(table["task"]))}
        frame = frame.sort_values(["task", "variant"], key=lambda c: c.map(tasks if c.name == "task" else order),
                                  kind="stable", ignore_index=True)
    return frame.reindex(columns=[c for c in columns if c in frame.columns]).fillna("—")


def fingerprints(scores: pd.DataFrame) -> pd.DataFrame:
    """Per variant, task, family and severity: variant − its baseline (:func:`sikd_utils.stats.paired_deltas`)."""
    present = set(scores["method"])
    frames = [stats.paired_deltas(scores, name, v.baseline) for name, v in ab.VARIANTS.items()
              if name in present and v.baseline in present]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


#: the share of cells (by absolute Δ) the fingerprints' shared colour scale spans; the rest take its end colours
COLOUR_QUANTILE = 0.95


def colour_limit(deltas: pd.DataFrame, quantile: float = COLOUR_QUANTILE) -> float:
    """The symmetric colour limit (Dice points) shared by the fingerprint maps: the ``quantile`` of the
    absolute Δ over all cells, at least 1 point. Not the maximum: one failed network (fundus's SwinUNETR
    students, −40 to −60 points) would wash every other map out to white, while cells beyond the limit keep
    their number."""
    values = 100 * np.abs(pd.to_numeric(deltas["delta"], errors="coerce").to_numpy(dtype=float))
    values = values[np.isfinite(values)]
    return max(1.0, float(np.quantile(values, quantile))) if values.size else 1.0


def fingerprint_figure(deltas: pd.DataFrame, task: str, limit: float | None = None, cols: int = 2):
    """One fingerprint per variant of ``task`` (rows of :func:`fingerprints`), ``cols`` a row in the book's
    column width (:func:`sikd_utils.viz.fingerprint_grid`)."""
    from .viz import fingerprint_grid

    part = deltas[deltas["task"] == task]
    names = [v for v in ab.VARIANTS if v in set(part["method"])]
    return fingerprint_grid({f"{name} − {ab.VARIANTS[name].baseline}": part[part["method"] == name] for name in names},
                            limit=limit, cols=cols)


#: the place of each method on the λ axis (SIKD is the paper's λ = 2); the baseline (no distillation term,
#: λ = 0) is drawn beside the curve rather than on it, as the step from 0 to 0.5 also adds the teacher
LAMBDA_OF = {"lambda_0.5": 0.5, "lambda_1": 1.0, "sikd": 2.0, "lambda_4": 4.0}
#: how :func:`lambda_slopes` reads the λ curve, in words
LAMBDA_RULE = ("Per seed, Dice (points) is fitted by least squares against log₂ λ over the distilled students "
               "(λ = 0.5, 1, 2, 4; they share SIKD's teacher), so the slope is the change of Dice per doubling "
               "of λ; the slopes' mean ± 95 % CI over seeds is a *gain* or *loss* when the CI excludes 0, as in "
               "the rule above.")


def lambda_curve(scores: pd.DataFrame) -> pd.DataFrame:
    """Dice (points) against λ per (task, summary test set, seed), from the λ variants and SIKD; the baseline
    rows carry ``lam`` NaN. Columns: task, family (a :data:`SUMMARIES` name), seed, method, lam, dice."""
    summary = summary_scores(scores)
    kept = summary[summary["method"].isin([*LAMBDA_OF, "baseline"])]
    return kept.assign(lam=kept["method"].map(LAMBDA_OF).astype(float), dice=100 * kept["dice"].astype(float))[
        ["task", "family", "seed", "method", "lam", "dice"]].reset_index(drop=True)


def lambda_slopes(curve: pd.DataFrame) -> pd.DataFrame:
    """Per (task, summary): the per-seed slope of Dice on log₂ λ (:data:`LAMBDA_RULE`), mean ± 95 % CI over
    seeds and its outcome; only where a seed has at least three λ values."""
    from .metrics import mean_ci

    rows = []
    distilled = curve[curve["lam"].notna()]
    for (task, family), group in distilled.groupby(["task", "family"], sort=False):
        slopes = []
        for _, seed_rows in group.groupby("seed"):
            if seed_rows["lam"].nunique() >= 3:
                slopes.append(float(np.polyfit(np.log2(seed_rows["lam"]), seed_rows["dice"], 1)[0]))
        if not slopes:
            continue
        slope, half = mean_ci(slopes)
        outcome = stats._outcome(slope - half, slope + half) if np.isfinite(half) else "tie"
        rows.append({"task": task, "summary": family, "slope": slope, "ci": half, "outcome": outcome,
                     "n_seeds": len(slopes), "lambdas": int(group["lam"].nunique())})
    return pd.DataFrame(rows, columns=["task", "summary", "slope", "ci", "outcome", "n_seeds", "lambdas"])


def lambda_sentences(slopes: pd.DataFrame) -> list[str]:
    """One sentence per task from :func:`lambda_slopes`: how Dice moves per doubling of λ on each summary."""
    from .data.tasks import TASKS

    words = {"gain": "rises", "loss": "falls", "tie": "does not move detectably"}
    lines = []
    for task, group in slopes.groupby("task", sort=False):
        parts = [f"on {r.summary} it {words[r.outcome]} ({_number(r.slope, r.ci)} points)" for r in group.itertuples()]
        title = TASKS[task].title if task in TASKS else task
        lines.append(f"{title}, per doubling of λ over {group['lambdas'].max()} values and "
                     f"{group['n_seeds'].max()} seeds: " + "; ".join(parts) + ".")
    return lines


def lambda_figure(curve: pd.DataFrame):
    """Dice against λ, one panel per (task, summary test set): each seed a thin line, the mean ± 95 % CI over
    seeds in colour, the baseline's mean (λ = 0: no distillation) as a dashed line with its CI as a band."""
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(curve["task"]))
    families = [f for f in SUMMARIES if f in set(curve["family"])]
    means = stats.method_summary(curve.assign(severity=0)).set_index(["task", "family", "method"])
    width = min(3.6 * len(families), 7.0)  # the book's column (viz.FIGURE_WIDTH)
    fig, axes = plt.subplots(len(tasks), len(families), figsize=(width, 2.7 * len(tasks)), squeeze=False)
    for row, task in zip(axes, tasks):
        for ax, family in zip(row, families):
            part = curve[(curve["task"] == task) & (curve["family"] == family)]
            distilled = part[part["lam"].notna()].sort_values("lam")
            for _, seed_rows in distilled.groupby("seed"):
                ax.plot(seed_rows["lam"], seed_rows["dice"], color="0.75", linewidth=0.8)
            methods = sorted(set(distilled["method"]), key=LAMBDA_OF.get)
            lams = [LAMBDA_OF[m] for m in methods]
            rows = means.loc[[(task, family, m) for m in methods]]
            ax.errorbar(lams, rows["dice"], yerr=rows["dice_ci"].fillna(0.0), color="C0", marker="o", capsize=3,
                        label="SIKD students")
            shown = list(distilled["dice"])
            if (task, family, "baseline") in means.index:
                mean, half = means.loc[(task, family, "baseline"), ["dice", "dice_ci"]]
                ax.axhline(mean, color="C3", linestyle="--", linewidth=1, label="baseline (λ = 0)")
                if np.isfinite(half):
                    ax.axhspan(mean - half, mean + half, color="C3", alpha=0.12, linewidth=0)
                    shown += [mean - half, mean + half]
            if shown:  # the seeds and the baseline's band; a CI reaching past them (one odd seed) is cut off
                low, high = min(shown), max(shown)
                pad = 0.08 * (high - low) or 0.5
                ax.set_ylim(low - pad, high + pad)
            ax.set_xscale("log", base=2)
            ax.set_xticks(lams, [f"{lam:g}" for lam in lams])
            ax.minorticks_off()
            ax.set_title(f"{task} · {family}", fontsize=9)
            ax.set_xlabel("λ (log scale; SIKD: 2)", fontsize=9)
            ax.set_ylabel("Dice (points)", fontsize=9)
            ax.tick_params(labelsize=9)
    axes[0][0].legend(fontsize=9)
    fig.tight_layout()
    return fig


def _gate_failures(scores: pd.DataFrame, task: str, variant: str) -> tuple[int, int]:
    """(seeds whose teacher failed the gate, seeds) of one variant on one task."""
    flags = scores[(scores["task"] == task) & (scores["method"] == variant)].drop_duplicates("seed")["teacher_gate"]
    return int((flags == "FAIL").sum()), len(flags)


def _gate_note(scores: pd.DataFrame, task: str, variant: str) -> str:
    failed, n = _gate_failures(scores, task, variant)
    if failed and failed == n:  # then the comparison says nothing about SIKD itself
        return (f" (its teacher failed the gate on {failed}/{n} seeds: these students copied a teacher "
                f"that had not learned, so this does not test the method)")
    return f" (its teacher failed the gate on {failed}/{n} seeds)" if failed else ""


def _carried_by(rows: pd.DataFrame, outcome: str) -> str:
    """'on clean only; ' when a better/worse ``outcome`` rests on some of ``rows``' summaries, the others ties: a
    gain on the realistic target alone reads differently from one everywhere."""
    decided = rows.loc[rows["outcome"] != "tie", "summary"].tolist()
    if outcome not in ("better", "worse") or len(decided) == len(rows):
        return ""
    return f"on {' and '.join(decided)} only; "


def conclusions(table: pd.DataFrame, scores: pd.DataFrame | None = None, tasks=None, questions=None,
                notes: dict | None = None) -> list[str]:
    """One generated sentence per question and task, from :func:`comparisons` by :data:`CONCLUSION_RULE`.

    Each variant is judged against its reference (SIKD), or its baseline when it has none; a variant
    without results for a task is said to be pending. ``scores`` adds the teacher-gate notes;
    ``questions`` keeps some of :data:`~sikd_utils.ablations.QUESTIONS` only; ``notes`` maps a task to a
    remark appended to its sentences (e.g. :func:`sikd_utils.evidence.earlier_preset_notes`).
    """
    from .data.tasks import TASKS

    tasks = list(dict.fromkeys(table["task"])) if tasks is None else list(tasks)
    lines = []
    for question, text in ab.QUESTIONS.items():
        if questions is not None and question not in questions:
            continue
        for task in tasks:
            parts = []
            for name, variant in ab.VARIANTS.items():
                if variant.question != question:
                    continue
                against = "reference" if variant.reference else "baseline"
                rows = table[(table["task"] == task) & (table["variant"] == name) & (table["against"] == against)]
                if not len(rows):
                    parts.append(f"`{name}` pending")
                    continue
                outcome = overall_outcome(rows["outcome"])
                numbers = ", ".join(f"{r.summary} {_number(r.delta, r.ci)}" for r in rows.itertuples())
                gate = _gate_note(scores, task, name) if scores is not None else ""
                parts.append(f"{variant.answers.get(outcome, _MIXED)} ({_carried_by(rows, outcome)}"
                             f"`{name}` − `{rows['comparator'].iloc[0]}`: {numbers} Dice points){gate}")
            title = TASKS[task].title if task in TASKS else task
            note = f" {notes[task]}" if notes and task in notes else ""
            lines.append(f"**{text}** {title}: " + "; ".join(parts) + f"{note}.")
    return lines


def teacher_table(training: pd.DataFrame) -> pd.DataFrame:
    """Per (task, variant): its teacher's and its baseline's validation Dice (mean over seeds), gate passes."""
    rows = []
    for (task, method), group in training.groupby(["task", "method"], sort=False):
        teacher = group[group["role"].isin(["teacher", "raw_teacher"])]
        baseline = ab.compared_with(method)[0] if method in ab.VARIANTS else None
        if not len(teacher) or baseline is None:
            continue
        base = training[(training["task"] == task) & (training["method"] == baseline)]["best_val_dice"]
        gates = teacher["gate"].astype(str)
        rows.append({"task": task, "variant": method, "teacher validated on": teacher["validated_on"].iloc[0],
                     "teacher val Dice": teacher["best_val_dice"].mean(), "baseline val Dice": base.mean(),
                     "gate passes": f"{int((gates == 'pass').sum())}/{len(gates)}"})
    return pd.DataFrame(rows)


def training_from_evidence(training: pd.DataFrame) -> pd.DataFrame:
    """The evidence run's training records as the ablation's: its teacher is SIKD's, its raw teacher is
    ``teacher_raw``'s (see :func:`from_evidence`)."""
    roles = {"teacher": "sikd", "raw_teacher": "teacher_raw", "baseline": "baseline"}
    kept = training[training["role"].isin(list(roles))]
    gates = stats.gate_by_seed(kept).set_index(["task", "seed"])  # the gate as the evidence run judged it
    flag = {"teacher": "teacher_pass", "raw_teacher": "raw_teacher_pass"}
    gate = ["" if role == "baseline" else ("pass" if gates.loc[(task, seed), flag[role]] else "FAIL")
            for task, seed, role in zip(kept["task"], kept["seed"], kept["role"])]
    return kept.assign(method=kept["role"].map(roles), gate=gate)


def teacher_and_student(table: pd.DataFrame, training: pd.DataFrame) -> pd.DataFrame:
    """Per (task, variant) with a teacher: the teacher's margin over the baseline (validation Dice points,
    each on what it sees) beside the student's Δ over the baseline on the clean test set (points ± CI):
    does the student follow its teacher? ``table``: :func:`comparisons`; ``training``: the same run's."""
    teachers = teacher_table(training)
    columns = ["task", "variant", "teacher validated on", "teacher margin", "gate passes", "delta", "ci", "outcome"]
    if not len(teachers) or not len(table):
        return pd.DataFrame(columns=columns)
    clean = table[(table["against"] == "baseline") & (table["summary"] == "clean")]
    merged = teachers.merge(clean[["task", "variant", "delta", "ci", "outcome"]], on=["task", "variant"])
    merged["teacher margin"] = 100 * (merged["teacher val Dice"] - merged["baseline val Dice"])
    return merged[columns]


FOLLOW_NOTE = ("Points share baselines and, within a task, often one teacher, so a correlation over them "
               "describes these runs; it is not a test of a hypothesis.")


def _passes_every_seed(gates: pd.Series) -> pd.Series:
    """``gate passes`` of :func:`teacher_table` ("k/n") as: did the teacher pass on all n seeds?"""
    split = gates.str.split("/", expand=True).astype(int)
    return split[0] == split[1]


def follow_sentence(pairs: pd.DataFrame) -> str:
    """One sentence on :func:`teacher_and_student`'s pairs: how many, how many students gain in-domain,
    and how teacher margin and student Δ go together (described, not tested: ``FOLLOW_NOTE``). Pearson's r
    comes with Spearman's ρ and with r over the pairs whose teacher passed the gate on every seed, since one
    collapsed teacher (a margin of -80 points) can make r near 1 by itself."""
    if len(pairs) < 3:
        return f"Too few (task, variant) pairs ({len(pairs)}) to describe."
    r = float(np.corrcoef(pairs["teacher margin"], pairs["delta"])[0, 1])
    rho = float(pairs["teacher margin"].rank().corr(pairs["delta"].rank()))
    learned = pairs[_passes_every_seed(pairs["gate passes"])]
    if len(learned) >= 3:
        r_learned = float(np.corrcoef(learned["teacher margin"], learned["delta"])[0, 1])
        among = f"r = {r_learned:.2f} over the {len(learned)} whose teacher passed the gate on every seed"
    else:
        among = f"only {len(learned)} teachers passed the gate on every seed, too few for an r of their own"
    ahead = pairs[pairs["teacher margin"] > 0]
    return (f"Over {len(pairs)} (task, variant) pairs the student's in-domain Δ and its teacher's margin have "
            f"Pearson r = {r:.2f} (Spearman ρ = {rho:.2f}; {among}); "
            f"{int((pairs['outcome'] == 'gain').sum())} students gain on the clean test set, "
            f"{int((ahead['outcome'] == 'gain').sum())} of the {len(ahead)} whose teacher is ahead of its baseline. "
            + FOLLOW_NOTE)


def provenance_table(prov: dict, tasks) -> pd.DataFrame:
    """Per task: the piece that gathered its ablations (preset, commit, date, command, where it ran: gathered_on)
    and what its networks were trained on (device, torch, precision: every value their part files record);
    :func:`method_provenance` says how each method's seeds were made."""
    keys = ("preset", "commit", "device", "torch", "precision", "image_size", "base_channels", "date", "command",
            "gathered_on")
    return pd.DataFrame([{"task": t, **{k: prov["tasks"][t].get(k) for k in keys},
                          "seeds": len(prov["tasks"][t].get("seeds", [])),
                          "families": ", ".join(prov["tasks"][t].get("families", []))} for t in tasks])


#: the committed learning-rate probe of the skip-free SwinUNETR teacher (``scripts/swin_teacher_lr_probe.sh``)
LR_PROBE = "swin_teacher_lr_probe.txt"


def read_lr_probe(path) -> pd.DataFrame:
    """The probe's validation Dice per ``(lr, seed, epoch)`` from its text file (``#`` lines are its provenance).

    A missing file gives an empty frame (a results folder of one's own need not hold the probe); a line not in
    the probe's format is a ValueError naming the file and line, since a half-read probe would plot wrongly.
    """
    from pathlib import Path

    columns = ["lr", "seed", "epoch", "val_dice"]
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=columns)
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        words = line.split()
        try:
            if not (words[0].startswith("probe-") and words[1].startswith("seed")):
                raise ValueError
            lr, seed, epochs = float(words[0][len("probe-"):]), int(words[1][len("seed"):]), int(words[2])
            dice = [float(w) for w in words[3:3 + epochs]]
            if len(dice) != epochs or words[3 + epochs] != "s/ep":
                raise ValueError
        except (ValueError, IndexError):
            raise ValueError(f"{path}, line {number}: expected 'probe-<lr> seed<k> <epochs> <Dice per epoch ...> "
                             f"s/ep ...', got {line[:80]!r}") from None
        rows += [(lr, seed, epoch, d) for epoch, d in enumerate(dice, 1)]
    return pd.DataFrame(rows, columns=columns)


def lr_probe_figure(probe: pd.DataFrame):
    """Validation Dice against epoch, one panel per learning rate, one line per seed: whether the teacher ever
    leaves the all-background prediction (Dice 0) is visible at a glance."""
    rates = sorted(set(probe["lr"]), reverse=True)
    return _dice_curves([(f"Adam lr {lr:g}", probe[probe["lr"] == lr]) for lr in rates], (3.2, 2.6), marker=".")


def _dice_curves(panels, size, marker=None):
    """One panel per ``(title, rows)``, one line of validation Dice against epoch per seed of ``rows``."""
    import matplotlib.pyplot as plt

    # within the book's column (viz.FIGURE_WIDTH, 7 in): narrower panels, down to 2.3 in, then more rows
    width = min(size[0], 7.0 / len(panels))
    cols = len(panels) if width >= 2.3 else 3
    width = min(size[0], 7.0 / cols)
    n_rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(width * cols, size[1] * n_rows), sharey=True, squeeze=False)
    for ax in list(axes.flat)[len(panels):]:
        ax.remove()
    for ax, (title, rows) in zip(axes.flat, panels):
        for seed, seed_rows in rows.groupby("seed"):
            ax.plot(seed_rows["epoch"], seed_rows["val_dice"], marker=marker, label=f"seed {seed}")
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("epoch")
        ax.set_ylim(-0.03, 1.0)
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("validation Dice")
    axes.flat[len(panels) - 1].legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    return fig


def _teachers_said(t: pd.DataFrame) -> str:
    return (f"best validation Dice {t['best_val_dice'].min():.2f}–{t['best_val_dice'].max():.2f}, mean "
            f"{t['best_val_dice'].mean():.2f}, gate passed on {int((t['gate'].astype(str) == 'pass').sum())}/{len(t)} seeds")


def _paired_students(summary: pd.DataFrame, task: str, after: str, before: str) -> str:
    deltas = stats.paired_deltas(summary[summary["task"] == task], after, before)
    return ", ".join(f"{r.family} {_number(100 * r.delta, 100 * r.delta_ci)}" for r in deltas.itertuples()) or \
        "no common seeds"


def _variant_pairs(training: pd.DataFrame, summary: pd.DataFrame, before: str, after: str):
    """``(task, {name: teacher rows}, students' paired Δ text)`` per task with both variants' teachers: two variants
    that differ in their teacher alone, so ``after − before`` paired by seed is that difference's effect.
    ``summary``: :func:`summary_scores` of the scores."""
    for task in dict.fromkeys(training["task"]):
        rows = training[(training["task"] == task) & (training["role"] == "teacher")]
        teachers = {name: rows[rows["method"] == name] for name in (before, after)}
        if all(len(t) for t in teachers.values()):
            yield task, teachers, _paired_students(summary, task, after, before)


def teacher_rate_sentences(training: pd.DataFrame, scores: pd.DataFrame, failed: str = "swin_unetr",
                           fixed: str = "swin_unetr_lr3e-4") -> list[str]:
    """Per task with both variants: what the teacher's own learning rate changed, from the runs' records.

    The two variants differ only in their skip-free teacher's Adam rate, so ``fixed − failed``, paired by
    seed, is the rate's effect on the students; each teacher's best validation Dice and gate passes say
    whether it learned. A task missing either variant is left out (the notebook says pending elsewhere).
    """
    lines = []
    for task, teachers, students in _variant_pairs(training, summary_scores(scores), failed, fixed):
        said = [f"at lr {ab.VARIANTS[name].overrides.get('teacher_lr') or ab.ExperimentConfig.lr:g} (`{name}`) "
                f"{_teachers_said(t)}" for name, t in teachers.items()]
        lines.append(f"{task}: the teachers {'; '.join(said)}. Their students, `{fixed}` − `{failed}` paired by "
                     f"seed: {students} Dice points.")
    return lines


def projection_sentences(training: pd.DataFrame, scores: pd.DataFrame, plain: str = "swin_unetr_lr3e-4",
                         projected: str = "swin_unetr_projected") -> list[str]:
    """Per task with both variants: what bounding the SwinUNETR teacher's features changed. The two differ only
    in the teacher's residual projections (:mod:`sikd_utils.feature_scale`), so ``projected − plain``, paired
    by seed, is that change's effect on the students; ``projected − baseline`` says how much of the loss is left."""
    summary = summary_scores(scores)
    baseline = ab.compared_with(projected)[0]
    return [f"{task}: the teachers with residual projections (`{projected}`) {_teachers_said(teachers[projected])}; "
            f"without (`{plain}`) {_teachers_said(teachers[plain])}. Their students, `{projected}` − `{plain}` "
            f"paired by seed: {students} Dice points; against the SwinUNETR baseline, `{projected}` − `{baseline}`: "
            f"{_paired_students(summary, task, projected, baseline)} Dice points."
            for task, teachers, students in _variant_pairs(training, summary, plain, projected)]


#: a best validation Dice above this means a network left the all-background prediction (Dice 0)
LEFT_BACKGROUND = 0.05


def read_histories(parts_dir, methods=None) -> pd.DataFrame:
    """Every ``<method>.history.csv`` part file under ``parts_dir`` (``ablate.HISTORY_COLUMNS`` with its task,
    seed and method): each network's epochs. Part files of runs made before the histories were kept have none."""
    from pathlib import Path

    from .ablate import HISTORY_COLUMNS

    frames = []
    for path in sorted(Path(parts_dir).glob("*/*/seed*/*.history.csv")):
        method = path.name[:-len(".history.csv")]
        if methods is None or method in methods:
            frames.append(pd.read_csv(path).assign(task=path.parts[-4], seed=int(path.parent.name[len("seed"):]),
                                                   method=method))
    return (pd.concat(frames, ignore_index=True) if frames
            else pd.DataFrame(columns=["task", "seed", "method", *HISTORY_COLUMNS]))


def escape_epochs(histories: pd.DataFrame, role: str = "teacher") -> pd.DataFrame:
    """Per (task, method, seed): the first epoch whose validation Dice exceeds :data:`LEFT_BACKGROUND`
    (NaN: never), the best Dice and its epoch, for the networks of ``role``."""
    rows = []
    for (task, method, seed), h in histories[histories["role"] == role].groupby(["task", "method", "seed"]):
        h = h.sort_values("epoch")
        left = h.loc[h["val_dice"] > LEFT_BACKGROUND, "epoch"]
        best = h.loc[h["val_dice"].idxmax()]
        rows.append({"task": task, "method": method, "seed": seed, "first epoch off background":
                     int(left.iloc[0]) if len(left) else np.nan, "best val Dice": best["val_dice"],
                     "best epoch": int(best["epoch"]), "epochs": len(h)})
    return pd.DataFrame(rows)


def history_figure(histories: pd.DataFrame, role: str = "teacher"):
    """Validation Dice against epoch of ``role``'s networks, one panel per (task, method), one line per seed."""
    kept = histories[histories["role"] == role]
    return _dice_curves([(f"{task}: {method} ({role})", rows) for (task, method), rows in kept.groupby(["task", "method"])],
                        (4.2, 2.8))


def escape_sentences(escapes: pd.DataFrame) -> list[str]:
    """One sentence per (task, method) of :func:`escape_epochs`: when each seed left background, how far it got."""
    lines = []
    for (task, method), rows in escapes.groupby(["task", "method"], sort=False):
        when = ", ".join(f"seed {seed} {'never' if np.isnan(epoch) else f'epoch {int(epoch)}'}"
                         for seed, epoch in zip(rows["seed"], rows["first epoch off background"]))
        lines.append(f"{task}, `{method}` teachers: left background (validation Dice > {LEFT_BACKGROUND:g}) at "
                     f"{when}; best validation Dice {rows['best val Dice'].min():.2f}–{rows['best val Dice'].max():.2f} "
                     f"after {int(rows['epochs'].max())} epochs.")
    return lines


def probe_agreement(probe: pd.DataFrame, escapes: pd.DataFrame, lr: float, method: str = "swin_unetr_lr3e-4",
                    task: str = "fundus") -> list[str]:
    """Per seed in both: the epoch at which the probe's teacher at ``lr`` and the run's ``method`` teacher left
    background. The two train the same network from the same seed, so a large gap says that at this rate
    leaving background is itself chancy (GPU training is not bit-exact), not settled by the seed."""
    lines = []
    at = probe[np.isclose(probe["lr"], lr)]
    run = escapes[(escapes["task"] == task) & (escapes["method"] == method)].set_index("seed")
    for seed, rows in at.groupby("seed"):
        if seed not in run.index:
            continue
        left = rows.loc[rows["val_dice"] > LEFT_BACKGROUND, "epoch"]
        probe_at = f"epoch {int(left.iloc[0])}" if len(left) else f"never in {len(rows)} epochs"
        epoch = run.loc[seed, "first epoch off background"]
        run_at = "never" if np.isnan(epoch) else f"epoch {int(epoch)}"
        lines.append(f"seed {seed} at lr {lr:g}: left background at {probe_at} in the probe and at {run_at} in "
                     f"the ablation's run.")
    return lines


def headline(table: pd.DataFrame, scores: pd.DataFrame | None = None, tasks=None, notes: dict | None = None) -> str:
    """The ablations in two sentences, by :data:`CONCLUSION_RULE`: per task, SIKD against its baseline and how
    the variants that change one of its ingredients fare against SIKD (which do better, which worse).
    ``scores`` adds which of those variants' teachers failed the gate on every seed (they test nothing)."""
    from .data.tasks import TASKS

    tasks = list(dict.fromkeys(table["task"])) if tasks is None else list(tasks)
    said = []
    for task in tasks:
        rows = table[table["task"] == task]
        sikd = rows[(rows["variant"] == "sikd") & (rows["against"] == "baseline")]
        judged = rows[rows["against"] == "reference"]
        if not len(sikd) and not len(judged):
            continue
        verdicts = {v: overall_outcome(g["outcome"]) for v, g in judged.groupby("variant", sort=False)}
        by = {o: [f"`{v}`" for v, got in verdicts.items() if got == o] for o in ("better", "worse", "mixed", "tie")}
        title = TASKS[task].title if task in TASKS else task
        sentence = (f"{title}: SIKD against its baseline is {overall_outcome(sikd['outcome']) if len(sikd) else 'pending'}"
                    f"; of {len(verdicts)} variants that change one ingredient, judged against SIKD, "
                    f"{len(by['better'])} do better ({', '.join(by['better']) or 'none'}), "
                    f"{len(by['worse'])} worse ({', '.join(by['worse']) or 'none'}), {len(by['mixed'])} mixed and "
                    f"{len(by['tie'])} are not detectably different")
        if scores is not None:
            gates = {v: _gate_failures(scores, task, v) for v in verdicts}
            failed = [f"`{v}`" for v, (fails, n) in gates.items() if n and fails == n]
            if failed:
                sentence += f" ({', '.join(failed)} with a teacher that failed the gate on every seed)"
        note = f" {notes[task]}" if notes and task in notes else ""
        said.append(sentence + note + ".")
    return " ".join(said) if said else "**Pending.** No ablation results yet."
