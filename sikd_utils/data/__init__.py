"""Data: the Case format, the five-task registry, the synthetic suite and the real-dataset loaders."""

from .case import Case
from .tasks import TASKS, TaskSpec, get_task

__all__ = ["Case", "TASKS", "TaskSpec", "get_task"]
