"""What a measurement function receives besides its params: where it runs and what it may use."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class MeasurementTimeout(Exception):
    """Raised inside a measurement that ran past its ``timeout``."""


@dataclass
class MeasureContext:
    """Per-measurement context.

    - ``device``: ``"cuda:N"`` (this xdist worker's GPU) or ``"cpu"``;
    - ``profile``: the active profile's name, ``profile_vars`` its values;
    - ``models``: the spec's ``models:`` section, resolved (name -> config dict with ``backend``);
    - ``spec_path``: the YAML file (relative data paths resolve against its folder);
    - ``artifact_dir``: where a measurement may write plots and logs (the report dir or a tmp dir);
    - ``deadline``: ``time.monotonic()`` value after which the measurement should stop;
    - ``gate_lines``: the thresholds of the gates that compare one of its metrics with a constant.
    """

    spec_id: str
    measurement: str
    device: str
    profile: str
    profile_vars: dict[str, Any]
    models: dict[str, dict[str, Any]]
    spec_path: Path
    artifact_dir: Path
    deadline: float = float("inf")
    log_lines: list[str] = field(default_factory=list)
    artifacts: list[Path] = field(default_factory=list)
    #: thresholds of the gates reading this measurement (plots.GateLine), for its plots to draw
    gate_lines: list[Any] = field(default_factory=list)
    #: the part this run measures (``contexts=8192``) when the measurement is split (parts.py)
    part: str | None = None

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def resolve_path(self, p: str | Path) -> Path:
        p = Path(p)
        return p if p.is_absolute() else (self.spec_path.parent / p)

    def artifact(self, name: str) -> Path:
        """A path for a file this measurement writes (a plot, a log)."""
        self.artifact_dir.mkdir(parents=True, exist_ok=True)
        part = f"[{self.part}]" if self.part else ""  # parts on other workers: files of their own
        path = self.artifact_dir / f"{self.spec_id}.{self.measurement}{part}.{name}"
        if path not in self.artifacts:
            self.artifacts.append(path)  # the reports place it under the gates reading this measurement
        return path

    def log(self, msg: str) -> None:
        """Say what the measurement is doing (a sweep point, a training step's loss and tokens/s):
        kept in results.json and logged to ``goni.<spec>.<measurement>`` (shown live, see progress)."""
        from .progress import measurement_logger

        self.log_lines.append(msg)
        measurement_logger(self.spec_id, self.measurement).info(msg)

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def check_deadline(self) -> None:
        """Call inside long loops: stops a measurement cleanly when its timeout has passed."""
        if time.monotonic() > self.deadline:
            raise MeasurementTimeout(f"measurement {self.measurement!r} ran past its timeout")
        from .progress import heartbeat

        heartbeat()

    def model_config(self, name: str) -> dict[str, Any]:
        """The spec's config of model ``name`` (as written), with a clear error when it is not declared."""
        if name not in self.models:
            known = ", ".join(sorted(self.models)) or "none"
            raise KeyError(f"model {name!r} is not in the spec's models section (declared: {known})")
        return dict(self.models[name])

    def build_model(self, name: str, *, on_device: bool = False, precision: str | None = None,
                    **overrides: Any) -> Any:
        """The one way from a spec model's name to a module: the spec's config (``match_params:
        other`` turned into a count), ``overrides`` on top (None values left out), the backend's
        factory. ``on_device`` moves the module to this context's device; ``precision`` (``bf16``
        or ``fp32``) readies it for inference: cast to bfloat16 for bf16, eval mode."""
        from .models.matching import resolve_model_config
        from .registry import resolve_backend

        cfg = resolve_model_config(self.models, name)  # turns match_params: other into a count
        cfg.update({k: v for k, v in overrides.items() if v is not None})
        model = resolve_backend(cfg.pop("backend"))(**cfg)
        if on_device:
            model = model.to(self.device)
        if precision is not None:
            if precision == "bf16":
                import torch

                model = model.to(torch.bfloat16)
            model = model.eval()
        return model
