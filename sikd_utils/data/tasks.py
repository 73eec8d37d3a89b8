"""The five segmentation tasks of the paper: classes, colours, channels and their data sources."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TaskSpec", "TASKS", "get_task"]


@dataclass(frozen=True)
class TaskSpec:
    key: str
    title: str
    modality: str
    class_names: tuple[str, ...]  # index = label value; 0 is background
    colors: tuple[str, ...]  # one display colour per class (background first)
    in_channels: int
    spatial_dims: int  # 3 = volumes (per-case 3D metrics), 2 = single images
    real_source: str  # key understood by sikd_utils.data.real.load
    real_targets: tuple[str, ...]
    synthetic_domains: tuple[str, ...] = ("source", "target", "shape_shift")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def foreground(self) -> tuple[str, ...]:
        return self.class_names[1:]


TASKS: dict[str, TaskSpec] = {
    t.key: t
    for t in (
        TaskSpec(
            "cardiac", "Cardiac cine MRI", "MRI",
            ("background", "RV", "MYO", "LV"),
            ("#000000", "#e41a1c", "#4daf4a", "#377eb8"),
            in_channels=1, spatial_dims=3, real_source="acdc", real_targets=("mnms",),
        ),
        TaskSpec(
            "abdomen", "Multi-organ abdominal CT", "CT",
            # the order of TransUNet's Synapse tables (organs matched by name when loading real data)
            ("background", "aorta", "gallbladder", "left kidney", "right kidney", "liver", "pancreas",
             "spleen", "stomach"),
            ("#000000", "#e41a1c", "#4daf4a", "#ff7f00", "#ffff33", "#a65628", "#f781bf", "#984ea3", "#377eb8"),
            in_channels=1, spatial_dims=3, real_source="synapse", real_targets=(),
        ),
        TaskSpec(
            "fundus", "Optic disc and cup (fundus)", "colour fundus photography",
            ("background", "disc", "cup"),
            ("#000000", "#4daf4a", "#ffff33"),
            in_channels=3, spatial_dims=2, real_source="refuge", real_targets=(),
        ),
        TaskSpec(
            "polyp", "Polyp (colonoscopy)", "colonoscopy video frames",
            ("background", "polyp"),
            ("#000000", "#4daf4a"),
            in_channels=3, spatial_dims=2, real_source="kvasir", real_targets=("cvc_clinicdb",),
        ),
        TaskSpec(
            "breast_us", "Breast tumour (ultrasound)", "ultrasound",
            ("background", "tumour"),
            ("#000000", "#e41a1c"),
            in_channels=1, spatial_dims=2, real_source="busi", real_targets=("udiat",),
        ),
    )
}


def get_task(task: str | TaskSpec) -> TaskSpec:
    """Look a task up by key, with an error that lists the valid keys (a KeyError that is also a ValueError)."""
    from ..checks import UnknownNameError

    if isinstance(task, TaskSpec):
        return task
    if not isinstance(task, str):
        raise TypeError(f"task must be a task key (str) or a TaskSpec, got {task!r}")
    try:
        return TASKS[task]
    except KeyError:
        raise UnknownNameError(f"unknown task {task!r}; choose one of {sorted(TASKS)}") from None
