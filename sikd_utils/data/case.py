"""The one case format everything downstream consumes, whatever the data's origin."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Case"]


@dataclass
class Case:
    """One image or volume with its label map.

    ``image`` is float32, channel-first: (C, H, W) for 2D or (C, H, W, D) for 3D (MONAI order).
    ``label`` is integer, (H, W) or (H, W, D), values in [0, num_classes).
    ``spacing`` is millimetres per spatial axis (len 2 or 3), used for HD95 in mm.
    Construction validates shapes and values so that a bad file fails where it is read, by name.
    """

    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, ...]
    case_id: str
    domain: str = "source"
    dataset: str = "synthetic"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("case_id", "domain", "dataset"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"Case {name} must be a str, got {getattr(self, name)!r}")
        if not isinstance(self.meta, dict):
            raise TypeError(f"Case meta must be a dict, got {type(self.meta).__name__}")
        where = f"case {self.case_id!r} ({self.dataset}/{self.domain})"
        image = np.asarray(self.image)
        label = np.asarray(self.label)
        for name, arr in (("image", image), ("label", label)):
            if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
                raise TypeError(f"{where}: {name} must hold real numbers, got dtype {arr.dtype}")
        if image.ndim not in (3, 4):
            raise ValueError(f"{where}: image must be (C, H, W) or (C, H, W, D), got shape {image.shape}")
        if image.size == 0:
            raise ValueError(f"{where}: image is empty (shape {image.shape})")
        if label.shape != image.shape[1:]:
            raise ValueError(
                f"{where}: label shape {label.shape} does not match image spatial shape {image.shape[1:]}"
            )
        if label.dtype == bool:
            label = label.astype(np.uint8)
        if not np.issubdtype(label.dtype, np.integer):
            if not np.all(np.isfinite(label)) or not np.all(np.equal(np.mod(label, 1), 0)):
                raise ValueError(f"{where}: label holds non-integer values")
            label = label.astype(np.int64)
        if label.size and label.min() < 0:
            raise ValueError(f"{where}: label holds negative values (min {label.min()})")
        if not np.all(np.isfinite(image)):
            raise ValueError(f"{where}: image holds NaN or infinite values")
        try:
            if isinstance(self.spacing, (str, bytes)):
                raise TypeError
            spacing = tuple(float(s) for s in self.spacing)
        except (TypeError, ValueError):
            raise TypeError(f"{where}: spacing must be a sequence of {label.ndim} numbers (mm per axis), "
                            f"got {self.spacing!r}") from None
        if len(spacing) != label.ndim or any(not np.isfinite(s) or s <= 0 for s in spacing):
            raise ValueError(f"{where}: spacing must be {label.ndim} positive numbers, got {self.spacing}")
        self.image = image.astype(np.float32, copy=False)
        self.label = label
        self.spacing = spacing

    @property
    def spatial_dims(self) -> int:
        return self.label.ndim

    @property
    def in_channels(self) -> int:
        return self.image.shape[0]

    def check_classes(self, num_classes: int) -> "Case":
        """Raise a clear error if a label value falls outside [0, num_classes)."""
        from ..checks import check_int

        num_classes = check_int("num_classes", num_classes, 1)
        if self.label.size and self.label.max() >= num_classes:
            bad = sorted(int(v) for v in np.unique(self.label) if v >= num_classes)
            raise ValueError(
                f"case {self.case_id!r} ({self.dataset}): label values {bad} outside [0, {num_classes})"
            )
        return self

    def __repr__(self) -> str:
        return (
            f"Case({self.case_id!r}, dataset={self.dataset!r}, domain={self.domain!r}, "
            f"image={self.image.shape}, spacing={self.spacing})"
        )
