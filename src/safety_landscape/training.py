"""Supervised finetuning on (prompt, response) pairs, loss on the response only, shared by the
align stage (safety finetuning) and the finetune stage (the paper's finetuning attacks). Training
with `EpochCheckpoints` saves every epoch and resumes after the last finished one."""

from __future__ import annotations

import fcntl
import logging
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from .decoding import render_prompts
from .io import atomic_folder, atomic_path, read_json, sha256_file, sha256_json, write_json

log = logging.getLogger(__name__)
_LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")
STATE_FILE = "state.json"


@dataclass(frozen=True)
class SFTSettings:
    epochs: int = 1
    learning_rate: float = 1e-4
    batch_size: int = 8
    warmup_fraction: float = 0.1
    weight_decay: float = 0.0
    max_length: int = 256
    seed: int = 0
    system_prompt: str | None = None
    scheduler: str = "linear"  # "linear" (warmup + linear decay per step) or "step" (x step_gamma per epoch)
    step_gamma: float = 0.85
    max_grad_norm: float | None = 1.0  # None: no clipping

    @classmethod
    def from_config(cls, section: dict, **extra) -> "SFTSettings":
        """Settings from a config section (align or finetune): the fields it sets, the rest at their defaults."""
        return cls(**{name: section[name] for name in cls.__dataclass_fields__ if name in section}, **extra)


def encode_pair(tokenizer, prompt: str, response: str, system_prompt: str | None, max_length: int) -> tuple[list[int], list[int]]:
    """Input ids and labels of one chat exchange, the response ended by the EOS token (so the model
    learns to stop); prompt tokens are masked out of the loss (-100). Sequences longer than
    `max_length` are cut, which can cut off the EOS."""
    prompt_ids = render_prompts(tokenizer, [prompt], system_prompt, True)[0]
    eos = tokenizer.eos_token or ""
    response_ids = tokenizer(response.removesuffix(eos), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt_ids + response_ids)[:max_length]
    labels = ([-100] * len(prompt_ids) + response_ids)[:max_length]
    return ids, labels


def freeze_below_layer(model, first_trainable: int | None) -> int:
    """Freeze embeddings and layers below `first_trainable` (None: train all). Returns trainable parameter count."""
    for name, param in model.named_parameters():
        if first_trainable is None:
            param.requires_grad_(True)
            continue
        match = _LAYER_INDEX.search(name)
        param.requires_grad_(bool(match) and int(match.group(1)) >= first_trainable)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _collate(examples: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (x, y) in enumerate(examples):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
        mask[row, : len(x)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


@dataclass
class _Run:
    """What a training run changes as it goes, and a checkpoint saves and restores."""

    trained: dict[str, torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # draws every epoch's data order


def _schedule(optimizer, settings: SFTSettings, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule: x step_gamma after every epoch ("step"), or warmup then linear decay per step."""
    if settings.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=settings.step_gamma)
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, int(settings.warmup_fraction * steps), steps)


def _train_epoch(model, examples, run: _Run, settings: SFTSettings, pad_id: int, bar: tqdm, epoch: int) -> list[float]:
    """One pass over `examples` in the run's next random order. Returns every step's loss; logs the
    loss and learning rate of about ten steps per epoch, and the epoch's mean loss."""
    params = list(run.trained.values())
    device = params[0].device
    order = torch.randperm(len(examples), generator=run.generator).tolist()
    starts = range(0, len(order), settings.batch_size)
    log_every = max(1, len(starts) // 10)
    began = time.perf_counter()
    losses = []
    for step, start in enumerate(starts, start=1):
        batch = _collate([examples[i] for i in order[start : start + settings.batch_size]], pad_id)
        loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
        loss.backward()
        if settings.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
        lr = run.optimizer.param_groups[0]["lr"]
        run.optimizer.step()
        if settings.scheduler != "step":
            run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.3f}", lr=f"{lr:.2e}")
        bar.update()
        if step % log_every == 0 or step == len(starts):
            log.info(
                "epoch %d of %d, step %d of %d: loss %.4f, lr %.2e", epoch, settings.epochs, step, len(starts), losses[-1], lr
            )
    if settings.scheduler == "step":
        run.scheduler.step()
    log.info(
        "epoch %d of %d done in %.1f s: mean loss %.4f over %d steps",
        epoch,
        settings.epochs,
        time.perf_counter() - began,
        sum(losses) / len(losses),
        len(losses),
    )
    return losses


def supervised_finetune(
    model, tokenizer, pairs: Sequence[dict], settings: SFTSettings, checkpoints: EpochCheckpoints | None = None
) -> list[float]:
    """Train the parameters of `model` that require grad, in place, with AdamW and the schedule of
    `settings`. Returns every step's loss. With `checkpoints`, every epoch is saved, and training
    goes on after the last epoch they hold, exactly as if it had never stopped."""
    torch.manual_seed(settings.seed)
    examples = [encode_pair(tokenizer, p["prompt"], p["response"], settings.system_prompt, settings.max_length) for p in pairs]
    trained = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not trained:
        raise ValueError("no parameter requires grad: unfreeze the parameters to train first")
    log.info(
        "training %d of %d parameters on %d pairs",
        sum(p.numel() for p in trained.values()),
        sum(p.numel() for p in model.parameters()),
        len(pairs),
    )
    optimizer = torch.optim.AdamW(trained.values(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps = settings.epochs * math.ceil(len(examples) / settings.batch_size)
    run = _Run(trained, optimizer, _schedule(optimizer, settings, steps), torch.Generator().manual_seed(settings.seed))
    done, losses = 0, []
    if checkpoints is not None:
        fingerprint = checkpoints.fingerprint(examples, settings, trained)
        done, losses = checkpoints.restore(fingerprint, run, settings.epochs)
    model.train()
    # The bar shows on a terminal only (disable=None); a job's log gets the progress lines of _train_epoch.
    with tqdm(total=steps, initial=len(losses), desc="finetune", mininterval=5, disable=None) as bar:
        for epoch in range(done + 1, settings.epochs + 1):
            losses += _train_epoch(model, examples, run, settings, tokenizer.pad_token_id, bar, epoch)
            if checkpoints is not None:
                checkpoints.save(epoch, fingerprint, losses, run, final=epoch == settings.epochs)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return losses


def epoch_folder(folder: str | os.PathLike, epoch: int) -> Path:
    """The model saved after `epoch` in a checkpoint folder."""
    return Path(folder) / f"epoch{epoch}"


class EpochCheckpoints:
    """A training run's checkpoints in `folder`: the model after every epoch (`epoch<k>/`, written by
    `save_model(epoch, empty_folder)`) and the state to go on from the last one, `state-<k>.safetensors`
    (AdamW moments and steps, RNG states, data order, trained parameters the saved model lacks) and
    `state.json` (epoch, losses, schedule, optimizer settings, the digest of every file), written last.

    A state is restored only when it is of the same training (`identity`: what determines training
    besides the examples and settings, e.g. the model's digest) and every file matches its digest.
    Use as a context manager: it holds an exclusive lock on the folder, so that jobs of the same
    training take turns (the later one finds the earlier one's epochs)."""

    def __init__(self, folder: str | os.PathLike, identity: dict, save_model: Callable[[int, Path], None]):
        self.folder = Path(folder)
        self.identity = identity
        self.save_model = save_model
        self._digests: dict[str, str] = {}  # file of a finished epoch's model (relative to folder) -> sha256
        self._lock = None

    def __enter__(self) -> EpochCheckpoints:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.folder / "lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another job training into %s", self.folder)
            fcntl.flock(self._lock, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        self._lock.close()

    def fingerprint(self, examples: list, settings: SFTSettings, trained: dict[str, torch.nn.Parameter]) -> str:
        """Digest of what determines training: identity, encoded examples, settings, trained parameters' shapes and dtypes."""
        shapes = {name: [list(p.shape), str(p.dtype)] for name, p in trained.items()}
        return sha256_json({"identity": self.identity, "examples": examples, "settings": asdict(settings), "trained": shapes})

    def save(self, epoch: int, fingerprint: str, losses: list[float], run: _Run, final: bool) -> None:
        """Save the model after `epoch`, then the state to go on from it (the final epoch's without the optimizer)."""
        model_folder = epoch_folder(self.folder, epoch)
        with atomic_folder(model_folder) as tmp:
            self.save_model(epoch, tmp)
        in_model = _parameters_held_by(model_folder, run.trained)
        tensors = _rng_tensors(run.generator)
        tensors |= {f"param/{name}": p for name, p in run.trained.items() if name not in in_model}
        groups = None
        if not final:
            groups, moments = _optimizer_state(run.optimizer)
            tensors |= moments
        name = f"state-{epoch}.safetensors"
        with atomic_path(self.folder / name) as tmp:
            save_file({key: t.detach().cpu().contiguous() for key, t in tensors.items()}, tmp)
        self._digests |= {path.relative_to(self.folder).as_posix(): sha256_file(path) for path in sorted(model_folder.iterdir())}
        state = {
            "epoch": epoch,
            "fingerprint": fingerprint,
            "losses": losses,
            "tensors": name,
            "parameters_in_model": sorted(in_model),
            "optimizer": groups,
            "scheduler": run.scheduler.state_dict(),
            "files": self._digests | {name: sha256_file(self.folder / name)},
        }
        write_json(self.folder / STATE_FILE, state)
        for path in self.folder.glob("*state-*"):  # earlier states and temporary files of killed writes
            if path.name != name:
                path.unlink()

    def restore(self, fingerprint: str, run: _Run, epochs: int) -> tuple[int, list[float]]:
        """Restore the saved state into `run`. Returns the last finished epoch and the losses so far ((0, []): none)."""
        state = self._verified_state(fingerprint)
        if state is None:
            return 0, []
        epoch = state["epoch"]
        tensors = load_file(self.folder / state["tensors"])
        _restore_parameters(run.trained, epoch_folder(self.folder, epoch), state["parameters_in_model"], tensors)
        if state["optimizer"] is not None:
            _restore_optimizer(run.optimizer, state["optimizer"], tensors)
        run.scheduler.load_state_dict(state["scheduler"])
        _restore_rng(run.generator, tensors)
        log.info("resuming from epoch %d of %d (training state in %s)", epoch, epochs, self.folder)
        return epoch, state["losses"]

    def _verified_state(self, fingerprint: str) -> dict | None:
        """The saved state, if it is of this training and every file it names matches its digest; else None."""
        path = self.folder / STATE_FILE
        if not path.exists():
            return None
        try:
            state = read_json(path)
        except ValueError:
            log.warning("ignoring the training state in %s: %s is not valid JSON; training from the start", self.folder, path)
            return None
        if state.get("fingerprint") != fingerprint:
            log.warning("ignoring the training state in %s: other model, data or settings; training from the start", self.folder)
            return None
        changed = ", ".join(name for name, digest in state["files"].items() if not _file_matches(self.folder / name, digest))
        if changed:
            log.warning("ignoring the training state in %s: %s missing or changed; training from the start", self.folder, changed)
            return None
        self._digests = {name: digest for name, digest in state["files"].items() if name != state["tensors"]}
        return state


def _file_matches(path: Path, digest: str) -> bool:
    return path.is_file() and sha256_file(path) == digest


def _parameters_held_by(model_folder: Path, trained: dict[str, torch.nn.Parameter]) -> set[str]:
    """Names of the trained parameters that the saved model holds, equal, under the same name."""
    held = set()
    for path in sorted(model_folder.glob("*.safetensors")):
        with safe_open(path, "pt") as weights:
            for name in weights.keys():
                if name in trained and _equal(weights.get_tensor(name), trained[name].detach().cpu()):
                    held.add(name)
    return held


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


def _restore_parameters(
    trained: dict[str, torch.nn.Parameter], model_folder: Path, in_model: list[str], tensors: dict[str, torch.Tensor]
) -> None:
    """Copy the trained parameters back: those in `in_model` from the saved model, the others from the state."""
    wanted = set(in_model)
    with torch.no_grad():
        for path in sorted(model_folder.glob("*.safetensors")):
            with safe_open(path, "pt") as weights:
                for name in wanted & set(weights.keys()):
                    trained[name].copy_(weights.get_tensor(name))
        for name, param in trained.items():
            if name not in wanted:
                param.copy_(tensors[f"param/{name}"])


def _optimizer_state(optimizer) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """The optimizer's settings (JSON) and its per-parameter tensors keyed `optimizer/<index>/<name>`."""
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"optimizer state {name!r} is a {type(value).__name__}, not a tensor: safetensors cannot hold it")
            tensors[f"optimizer/{index}/{name}"] = value
    return state["param_groups"], tensors


def _restore_optimizer(optimizer, groups: list[dict], tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _rng_tensors(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The data order's generator and the global RNG states (CPU, and CUDA once used)."""
    tensors = {"rng/data_order": generator.get_state(), "rng/cpu": torch.get_rng_state()}
    if torch.cuda.is_initialized():
        tensors |= {f"rng/cuda/{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    return tensors


def _restore_rng(generator: torch.Generator, tensors: dict[str, torch.Tensor]) -> None:
    generator.set_state(tensors["rng/data_order"])
    torch.set_rng_state(tensors["rng/cpu"])
    cuda = [tensors[f"rng/cuda/{i}"] for i in range(sum(key.startswith("rng/cuda/") for key in tensors))]
    if cuda:
        torch.cuda.set_rng_state_all(cuda)


def save_model_folder(model, tokenizer, out_dir: str | os.PathLike) -> None:
    """Write a safetensors HF folder atomically (temp folder + rename)."""
    with atomic_folder(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
