"""A PyTorch training loop that records itself: ``Trainer(model, ...).fit(train, val)``.

The loop is a plain one, kept as fast as writing it by hand: batches move to the device
without blocking, the loss is summed on the device and read once per epoch, gradients
are dropped rather than zeroed, and nothing is logged per batch. Around it the trainer
adds what a hand-written loop forgets: per-epoch metrics in the run, atomic
checkpoints that resume bit-for-bit, early stopping that restores the best weights,
bf16 autocast on GPUs that support it, and registration of the result.
"""

from __future__ import annotations

import contextlib
import copy
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml.errors import InvalidArgumentError
from forgeml.training import deps
from forgeml.training.early_stopping import BestTracker, EarlyStopping

try:
    import torch
    from torch.nn import functional
except ImportError as exc:  # pragma: no cover - exercised in a process without torch
    raise deps.missing("torch", "the PyTorch trainer") from exc

from forgeml.training import checkpoints, torch_data

if TYPE_CHECKING:
    import os

    from torch.utils.data import DataLoader

    from forgeml.store.records import ModelVersion
    from forgeml.tracking.active_run import ActiveRun
    from forgeml.training.progress import EpochProgress

LossFn = Callable[[Any, Any], torch.Tensor]
MetricFn = Callable[[torch.Tensor, torch.Tensor], float]
_EXAMPLE_ROWS = 5
_OPTIMIZERS = ("adamw", "adam", "sgd")


@dataclass(frozen=True)
class TrainedModel:
    """The outcome of :meth:`Trainer.fit`.

    ``model`` is the module passed in, trained and in evaluation mode (with the best
    epoch's weights when early stopping ran). ``history`` has one record per epoch
    (``epoch``, ``train_loss``, ``val_loss``, ``val_<metric>``, ``lr``, ``epoch_seconds``,
    and ``samples_per_second`` of the training pass), including epochs before a resume.
    Epochs count from 1, and are the steps of the metrics logged per epoch.
    """

    model: torch.nn.Module
    run_id: str
    history: list[dict[str, float]]
    monitor: str
    best_epoch: int | None
    best_value: float | None
    stopped_early: bool
    device: str
    precision: str
    model_version: ModelVersion | None = None
    checkpoint: Path | None = None
    seconds: float = 0.0


def _mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error that lines a (rows, 1) output up with (rows,) targets instead of
    broadcasting them into a (rows, rows) matrix."""
    if outputs.shape != targets.shape and outputs.numel() == targets.numel():
        outputs = outputs.reshape(targets.shape)
    return functional.mse_loss(outputs, targets.to(outputs.dtype))


def _cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return functional.cross_entropy(outputs, targets)


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of rows whose highest-scoring class is the target class."""
    return float((outputs.argmax(dim=-1) == targets).float().mean().item())


def _name_of(value: Any) -> str:
    return str(getattr(value, "__name__", None) or type(value).__name__)


class Trainer:
    """Trains a ``torch.nn.Module`` and records the run; see :meth:`fit`.

    ``loss`` is "cross_entropy", "mse" or ``fn(outputs, targets) -> loss tensor``;
    ``optimizer`` is "adamw", "adam", "sgd" or ``fn(parameters) -> Optimizer``;
    ``scheduler`` is ``fn(optimizer) -> LR scheduler``, stepped once per epoch (with the
    monitored value for ReduceLROnPlateau). ``metrics`` maps names to
    ``fn(outputs, targets) -> float``, called once per epoch on all validation outputs;
    classification (cross-entropy) adds ``accuracy``. ``device`` "auto" picks CUDA, then
    MPS, then the CPU; ``precision`` "auto" is bf16 autocast where the GPU supports it.
    Checkpoints go to ``checkpoint_dir`` (default: under forgeml's cache, per run) every
    ``checkpoint_every`` epochs and at the last one (None turns them off).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        loss: str | LossFn = "cross_entropy",
        optimizer: str | Callable[[Any], torch.optim.Optimizer] = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
        epochs: int = 10,
        batch_size: int = 128,
        device: str | torch.device = "auto",
        precision: str = "auto",
        metrics: Mapping[str, MetricFn] | None = None,
        early_stopping: EarlyStopping | None = None,
        checkpoint_every: int | None = 1,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        num_workers: int = 0,
        grad_clip: float | None = None,
        seed: int | None = None,
        progress: bool = True,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise InvalidArgumentError(
                f"model must be a torch.nn.Module, got {type(model).__name__}"
            )
        if not (callable(loss) or loss in ("cross_entropy", "mse")):
            raise InvalidArgumentError(
                f"loss must be 'cross_entropy', 'mse' or a function, got {loss!r}"
            )
        if not (callable(optimizer) or optimizer in _OPTIMIZERS):
            raise InvalidArgumentError(
                f"optimizer must be one of {', '.join(_OPTIMIZERS)} or a function of the "
                f"parameters, got {optimizer!r}"
            )
        _positive("lr", lr, number=True)
        _non_negative("weight_decay", weight_decay)
        _positive("epochs", epochs)
        _positive("batch_size", batch_size)
        if checkpoint_every is not None:
            _positive("checkpoint_every", checkpoint_every)
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise InvalidArgumentError(f"num_workers must be 0 or more, got {num_workers!r}")
        if grad_clip is not None:
            _positive("grad_clip", grad_clip, number=True)
        if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
            raise InvalidArgumentError(
                f"early_stopping must be an EarlyStopping(...), got {type(early_stopping).__name__}"
            )
        for name, fn in (metrics or {}).items():
            if not isinstance(name, str) or not name or not callable(fn):
                raise InvalidArgumentError(
                    f"metrics maps names to fn(outputs, targets) -> float; got {name!r}: {fn!r}"
                )
            if name == "loss":
                raise InvalidArgumentError("a metric cannot be named 'loss': val_loss is taken")
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.scheduler = scheduler
        self.epochs = epochs
        self.batch_size = batch_size
        self.device = torch_data.resolve_device(device)
        self.precision = torch_data.resolve_precision(precision, self.device)
        self.metrics: dict[str, MetricFn] = dict(metrics or {})
        if loss == "cross_entropy":
            self.metrics.setdefault("accuracy", accuracy)
        self.early_stopping = early_stopping
        self.checkpoint_every = checkpoint_every
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.num_workers = num_workers
        self.grad_clip = grad_clip
        self.seed = seed
        self.progress = progress

    # -- public -------------------------------------------------------------------------
    def fit(
        self,
        train: Any,
        val: Any = None,
        *,
        register: str | None = None,
        example: Any = None,
        resume_from: str | os.PathLike[str] | None = None,
        experiment: str | None = None,
        run_name: str | None = None,
        model_options: Mapping[str, Any] | None = None,
    ) -> TrainedModel:
        """Train on ``train`` (a torch Dataset or an ``(X, y)`` pair), validating on ``val``.

        Logs to the open run, or to one it opens (``experiment``, ``run_name``) and ends,
        FAILED if training raises. ``resume_from`` (a checkpoint file, e.g. a downloaded
        ``checkpoints/last.pt``) continues at the epoch after it, with the same result as
        an uninterrupted run. With ``register``, the trained model is logged as a new
        version of that registered model with ``example`` (default: the first rows of
        ``val`` or ``train``) as its input example; ``model_options`` go to the flavor
        (``format``, ``init_kwargs`` ...).
        """
        train_set = torch_data.as_dataset(train, "train")
        val_set = torch_data.as_dataset(val, "val") if val is not None else None
        tracker = self._tracker(has_val=val_set is not None)
        state = checkpoints.load(resume_from) if resume_from is not None else None
        from forgeml.training.runs import run_scope

        started = time.perf_counter()
        with run_scope(experiment, run_name) as run:
            loop = _Loop(self, run, train_set, val_set, tracker, state)
            loop.run()
            version = None
            if register is not None:
                shown = example
                if shown is None:
                    source = val_set if val_set is not None else train_set
                    shown = torch_data.example_inputs(source, _EXAMPLE_ROWS)
                version = self._register(register, shown, run.id, model_options or {})
            run_id = run.id
        return TrainedModel(
            model=self.model,
            run_id=run_id,
            history=loop.history,
            monitor=tracker.monitor,
            best_epoch=tracker.best_epoch,
            best_value=tracker.best_value,
            stopped_early=loop.stopped_early,
            device=str(self.device),
            precision=self.precision,
            model_version=version,
            checkpoint=loop.last_checkpoint,
            seconds=time.perf_counter() - started,
        )

    # -- pieces -------------------------------------------------------------------------
    def _tracker(self, *, has_val: bool) -> BestTracker:
        rule = self.early_stopping
        if rule is None:
            return BestTracker("val_loss" if has_val else "train_loss", "min")
        if rule.monitor.startswith("val_") and not has_val:
            raise InvalidArgumentError(
                f"early stopping watches {rule.monitor!r}, which needs validation data: pass val"
            )
        known = {"train_loss", "val_loss"} | {f"val_{name}" for name in self.metrics}
        if rule.monitor not in known:
            raise InvalidArgumentError(
                f"early stopping watches {rule.monitor!r}, which is not logged "
                f"(logged: {', '.join(sorted(known))})"
            )
        return BestTracker(rule.monitor, rule.mode, rule.min_delta)

    def loss_fn(self) -> LossFn:
        if self.loss == "cross_entropy":
            return _cross_entropy
        if self.loss == "mse":
            return _mse
        assert callable(self.loss)
        return self.loss

    def make_optimizer(self) -> torch.optim.Optimizer:
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        if not parameters:
            raise InvalidArgumentError("the model has no trainable parameters")
        if callable(self.optimizer):
            return self.optimizer(parameters)
        if self.optimizer == "sgd":
            return torch.optim.SGD(
                parameters, lr=self.lr, momentum=0.9, weight_decay=self.weight_decay
            )
        # The fused CUDA kernel updates every parameter in one launch.
        fused = True if self.device.type == "cuda" else None
        kind = torch.optim.AdamW if self.optimizer == "adamw" else torch.optim.Adam
        return kind(parameters, lr=self.lr, weight_decay=self.weight_decay, fused=fused)

    def params(self) -> dict[str, Any]:
        """What is logged once per run about this training."""
        rule = self.early_stopping
        optimizer = self.optimizer
        return {
            "optimizer": optimizer if isinstance(optimizer, str) else _name_of(optimizer),
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "loss": self.loss if isinstance(self.loss, str) else _name_of(self.loss),
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "device": str(self.device),
            "precision": self.precision,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "model_class": type(self.model).__name__,
            "grad_clip": self.grad_clip,
            "seed": self.seed,
            "early_stopping": (
                f"{rule.monitor} {rule.mode} patience={rule.patience} min_delta={rule.min_delta}"
                if rule is not None
                else None
            ),
        }

    def _register(
        self, name: str, example: Any, run_id: str, options: Mapping[str, Any]
    ) -> ModelVersion:
        from forgeml.registry.api import log_model

        model = self.model
        if self.device.type != "cpu":  # saved and signed on the CPU, where the example is
            model = copy.deepcopy(model).cpu()
        flavor_options = dict(options)
        if type(model).__module__.startswith("torch.") and "format" not in flavor_options:
            # torch's own containers (nn.Sequential ...) cannot be rebuilt from a class name
            # and no arguments, so they are saved as TorchScript instead of a state_dict.
            flavor_options["format"] = "torchscript"
        return log_model(model, name, example=example, run_id=run_id, **flavor_options)


class _Loop:
    """One call of :meth:`Trainer.fit`: the epoch loop and its state."""

    def __init__(
        self,
        trainer: Trainer,
        run: ActiveRun,
        train_set: Any,
        val_set: Any,
        tracker: BestTracker,
        state: dict[str, Any] | None,
    ) -> None:
        self.trainer = trainer
        self.active_run = run
        self.tracker = tracker
        self.device = trainer.device
        self.history: list[dict[str, float]] = []
        self.stopped_early = False
        self.last_checkpoint: Path | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.first_epoch = 1
        self.loss_fn = trainer.loss_fn()
        if trainer.seed is not None:
            _seed_everything(trainer.seed)
        self.generator = torch.Generator()
        if trainer.seed is not None:
            self.generator.manual_seed(trainer.seed)
        else:
            self.generator.seed()
        self.model = trainer.model.to(self.device)
        self.optimizer = trainer.make_optimizer()
        self.scheduler = trainer.scheduler(self.optimizer) if trainer.scheduler else None
        if state is not None:
            self._restore(state)
        loader_options: dict[str, Any] = {
            "batch_size": trainer.batch_size,
            "num_workers": trainer.num_workers,
            "device": self.device,
        }
        self.train_loader: DataLoader[Any] = torch_data.make_loader(
            train_set, shuffle=True, generator=self.generator, **loader_options
        )
        self.val_loader: DataLoader[Any] | None = None
        if val_set is not None:
            self.val_loader = torch_data.make_loader(
                val_set, shuffle=False, generator=None, **loader_options
            )
        directory = trainer.checkpoint_dir
        if directory is None:
            from forgeml import config

            directory = config.settings().cache_dir / "checkpoints" / run.id
        self.checkpoint_dir = directory

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.tracker.load_state_dict(state["tracker"])
        self.history = [dict(record) for record in state["history"]]
        self.first_epoch = int(state["epoch"]) + 1
        self.best_state = state.get("best_model")
        if (
            self.best_state is None
            and self.trainer.early_stopping is not None
            and self.tracker.best_epoch == self.first_epoch - 1
        ):
            self.best_state = {k: v.clone() for k, v in state["model"].items()}
        checkpoints.restore_rng(state["rng"], self.generator)

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> None:
        trainer = self.trainer
        params = trainer.params()
        if self.first_epoch > 1:
            params["resumed_from_epoch"] = self.first_epoch - 1
        self.active_run.log_params(params)
        rule = trainer.early_stopping
        if rule is not None and self.tracker.exhausted(rule.patience):
            self.stopped_early = True  # the checkpoint was taken as training stopped
        progress = _progress(trainer.epochs) if trainer.progress else None
        try:
            epoch = self.first_epoch
            while not self.stopped_early and epoch <= trainer.epochs:
                record = self._epoch(epoch, progress)
                self.history.append(record)
                logged = {k: v for k, v in record.items() if k != "epoch"}
                self.active_run.log_metrics(logged, step=epoch)
                self._after_epoch(epoch, record)
                epoch += 1
        finally:
            if progress is not None:
                progress.close()
        if rule is not None and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.trainer.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _epoch(self, epoch: int, progress: EpochProgress | None) -> dict[str, float]:
        started = time.perf_counter()
        lr = float(self.optimizer.param_groups[0]["lr"])
        train_loss, rows, batches = self._train(epoch, progress)
        train_seconds = time.perf_counter() - started
        record: dict[str, float] = {"epoch": float(epoch), "train_loss": train_loss}
        if self.val_loader is not None:
            record.update(self._validate())
        if self.tracker.monitor not in record:
            raise InvalidArgumentError(
                f"{self.tracker.monitor!r} is not among this epoch's values "
                f"({', '.join(k for k in record if k != 'epoch')})"
            )
        record["lr"] = lr
        record["epoch_seconds"] = time.perf_counter() - started
        record["samples_per_second"] = rows / train_seconds if train_seconds > 0 else 0.0
        if progress is not None:
            progress.end_epoch(epoch, batches, record)
        return record

    def _train(self, epoch: int, progress: EpochProgress | None) -> tuple[float, int, int]:
        model, optimizer, loss_fn = self.model, self.optimizer, self.loss_fn
        device, clip = self.device, self.trainer.grad_clip
        model.train()
        total = torch.zeros((), device=device, dtype=torch.float32)
        rows = batches = 0
        if progress is not None:
            progress.start_epoch(epoch, _length(self.train_loader))
        for batch in self.train_loader:
            inputs, target = torch_data.split_batch(torch_data.to_device(batch, device))
            optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                loss = loss_fn(model(*inputs), target)
            loss.backward()  # type: ignore[no-untyped-call]
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            n = torch_data.batch_rows(target)
            total.add_(loss.detach().float(), alpha=n)  # stays on the device: no sync
            rows += n
            batches += 1
            if progress is not None and progress.due():
                progress.show(batches, total.item() / rows)
        if rows == 0:
            raise InvalidArgumentError("the training data produced no batches")
        return total.item() / rows, rows, batches

    def _validate(self) -> dict[str, float]:
        assert self.val_loader is not None
        model, loss_fn, device = self.model, self.loss_fn, self.device
        metrics = self.trainer.metrics
        model.eval()
        total = torch.zeros((), device=device, dtype=torch.float32)
        rows = 0
        outputs: list[torch.Tensor] = []
        targets: list[torch.Tensor] = []
        with torch.inference_mode(), self._autocast():
            for batch in self.val_loader:
                inputs, target = torch_data.split_batch(torch_data.to_device(batch, device))
                output = model(*inputs)
                n = torch_data.batch_rows(target)
                total.add_(loss_fn(output, target).float(), alpha=n)
                rows += n
                if metrics:
                    outputs.append(output.float())
                    targets.append(target)
        if rows == 0:
            raise InvalidArgumentError("the validation data produced no batches")
        record = {"val_loss": total.item() / rows}
        if metrics:
            all_outputs, all_targets = torch.cat(outputs), torch.cat(targets)
            for name, fn in metrics.items():
                record[f"val_{name}"] = float(fn(all_outputs, all_targets))
        return record

    def _after_epoch(self, epoch: int, record: dict[str, float]) -> None:
        trainer = self.trainer
        rule = trainer.early_stopping
        improved = self.tracker.update(epoch, record[self.tracker.monitor])
        if improved and rule is not None:
            self.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()
            }
        if self.scheduler is not None:
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(record[self.tracker.monitor])
            else:
                self.scheduler.step()
        if rule is not None and self.tracker.exhausted(rule.patience):
            self.stopped_early = epoch < trainer.epochs
        every = trainer.checkpoint_every
        last = epoch == trainer.epochs or self.stopped_early
        if every is not None and (epoch % every == 0 or last):
            self._checkpoint(epoch, best=improved)

    def _checkpoint(self, epoch: int, *, best: bool) -> None:
        scheduler = self.scheduler.state_dict() if self.scheduler is not None else None
        # When this epoch is the best, "model" already holds the best weights.
        keep_best = self.best_state is not None and self.tracker.best_epoch != epoch
        state = {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": scheduler,
            "tracker": self.tracker.state_dict(),
            "best_model": self.best_state if keep_best else None,
            "history": self.history,
            "rng": checkpoints.rng_state(self.generator),
        }
        last = checkpoints.save(state, self.checkpoint_dir / "last.pt")
        self.active_run.log_artifact(last, "checkpoints")
        self.last_checkpoint = last
        if best:
            best_path = checkpoints.save(state, self.checkpoint_dir / "best.pt")
            self.active_run.log_artifact(best_path, "checkpoints")


def _length(loader: DataLoader[Any]) -> int | None:
    try:
        return len(loader)
    except TypeError:  # an iterable dataset does not know its length
        return None


def _progress(epochs: int) -> EpochProgress:
    from forgeml.training.progress import EpochProgress

    return EpochProgress(epochs)


def _seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _positive(name: str, value: Any, *, number: bool = False) -> None:
    allowed = isinstance(value, int | float) if number else isinstance(value, int)
    if isinstance(value, bool) or not allowed or not value > 0:
        kind = "a number" if number else "a whole number"
        raise InvalidArgumentError(f"{name} must be {kind} greater than 0, got {value!r}")


def _non_negative(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InvalidArgumentError(f"{name} must be a number >= 0, got {value!r}")
