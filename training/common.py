"""Shared training plumbing: seeding, the step loop with progress, checkpoints, model cards."""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from converters.torch_to_onnx import export
from fvi.schema import CARD_TYPES

CACHE = Path(os.environ.get("FVI_CACHE", "data/cache"))
RUNS = Path(os.environ.get("FVI_RUNS", "data/runs"))
MODELS = Path(os.environ.get("FVI_MODELS", "models"))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batches(n: int, batch: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    while True:
        order = rng.permutation(n)
        for i in range(0, n - batch + 1, batch):
            yield order[i : i + batch]


def train_loop(name: str, model: torch.nn.Module, steps: int, lr: float, step_fn: Callable[[int], torch.Tensor],
               evaluate: Callable[[], dict] | None = None, eval_every: int = 500) -> None:
    """AdamW + one-cycle; logs a progress line every 25 steps; checkpoints at every evaluation."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    RUNS.mkdir(parents=True, exist_ok=True)
    t0, running = time.time(), None
    for step in range(1, steps + 1):
        model.train()
        loss = step_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if step % 25 == 0 or step == steps:
            el = time.time() - t0
            print(f"[{name}] step {step}/{steps} loss {running:.4f} lr {sched.get_last_lr()[0]:.2e} "
                  f"{el / step:.2f}s/step eta {el / step * (steps - step) / 60:.1f} min", flush=True)
        if step % eval_every == 0 or step == steps:
            torch.save(model.state_dict(), RUNS / f"{name}.pt")
            if evaluate is not None:
                model.eval()
                with torch.no_grad():
                    print(f"[{name}] eval @ {step}: {json.dumps(evaluate())}", flush=True)


CARD_ARGS = ("steps", "batch", "lr", "seed", "data", "loss_per")


def initial_weights(model: torch.nn.Module, a) -> torch.nn.Module:
    """`train --init RUN.pt`: start from an earlier run's weights (fine-tuning); that run's arguments
    (RUN.args.json) are kept in this run's, so the model card shows every command in order."""
    if getattr(a, "init", None):
        missing, unexpected = model.load_state_dict(torch.load(a.init), strict=False)
        grown = getattr(model, "GROWN", ())  # blocks that start as identity may be missing from earlier weights
        if unexpected or any(not k.startswith(grown) for k in missing):
            raise ValueError(f"--init {a.init}: not weights of this net (missing {missing}, unexpected {unexpected})")
        earlier = Path(a.init).with_suffix(".args.json")
        a.init_args = json.loads(earlier.read_text()) if earlier.exists() else None
    return model


def training_commands(name: str, args: dict) -> list[str]:
    """The train commands that produced a run, oldest first (following --init)."""
    earlier = training_commands(name, args["init_args"]) if args.get("init_args") else []
    # the weights a fine-tune started from are the command before's, whatever file they were copied to then
    init = f"<weights of command {len(earlier)}>" if earlier else args.get("init")
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in [*((k, args.get(k)) for k in CARD_ARGS), ("init", init)]
                     if v is not None)
    # a run stopped at one of its checkpoints (to anneal sooner in a fine-tune) says where
    stopped = f" (stopped after step {args['stopped_after']}, its checkpoint)" if args.get("stopped_after") else ""
    return [*earlier, f"python -m training.{name} train {flags}{stopped}"]


def trained_data(args: dict, default: str) -> list[str]:
    """The cache batches (`--data`) a run and every run it was fine-tuned from read, oldest first: the model
    card's data is all of theirs, not the last command's alone. `default`: what a run without --data read."""
    earlier = trained_data(args["init_args"], default) if args.get("init_args") else []
    return list(dict.fromkeys([*earlier, *args.get("data", default).split(",")]))


def data_provenance(files: tuple[str, ...]) -> dict[str, dict]:
    """What training.make_data recorded (training.make_data.record_run) for the cache files a model reads,
    per split: the commands, and the card types and capture style they all used."""
    out = {}
    for split in ("train", "val"):
        f = CACHE / f"{split}.make_data.json"
        made = json.loads(f.read_text()) if f.exists() else {}
        named = [(n.format(split=split), made[n.format(split=split)]) for n in files if n.format(split=split) in made]
        runs = [r for _, r in named]
        commands = sorted({r["command"] for r in runs}) or [f"unrecorded (no {f})"]
        cards = [r for n, r in named if not n.startswith("reader_lines")]  # rendered lines print no card
        types = [t for t in CARD_TYPES if cards and all(t in r["card_types"] for r in cards)]
        out[split] = {"commands": commands, "card_types": types, "capture": sorted({r["capture"] for r in runs})}
    return out


def keep_checkpoint(name: str) -> Path:
    """The exported run's PyTorch weights and arguments, committed beside the ONNX file, so a fresh clone can
    fine-tune from them (`train --init models/checkpoints/<name>.pt`) instead of starting over."""
    dest = MODELS / "checkpoints"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(RUNS / f"{name}.pt", dest / f"{name}.pt")
    shutil.copy(RUNS / f"{name}.args.json", dest / f"{name}.args.json")
    return dest / f"{name}.pt"


HISTORY = Path(__file__).parent / "history"


def history(name: str) -> list[str]:
    """training/history/<name>.md: why each command was run and what it changed, written when it was trained
    (the figures of their time), so an export carries them and no code holds them."""
    path = HISTORY / f"{name}.md"
    if not path.exists():
        return []
    body = path.read_text(encoding="utf-8").split("\n", 1)[1].strip()  # its own title becomes the card's section
    return ["## How each command came to be", "", body, ""]


def write_model_card(name: str, title: str, metrics: dict, export_info: dict, train_args: dict, notes: str,
                     data_files: tuple[str, ...]) -> Path:
    """models/<name>.md: what data, which seed, which commands, which numbers (all on synthetic data).
    data_files: the cache files the model reads, "{split}" standing for train / val."""
    card = MODELS / f"{name}.md"
    data = data_provenance(data_files)
    checkpoint = keep_checkpoint(name)
    cmd = " ".join(["python -m", f"training.{name}", *sys.argv[1:]])
    lines = [
        f"# {title}", "",
        "All figures are measured on **synthetic** cards rendered by this project (`fvi.synth`); no real ID card",
        "was used for training or evaluation.", "",
        "## Training", "",
        *[f"- command{f' {i + 1}' if len(training_commands(name, train_args)) > 1 else ''}: `{c}`"
          for i, c in enumerate(training_commands(name, train_args))],
        *[f"- {split} data: `{c}`" for split, d in data.items() for c in d["commands"]],
        f"- card types: {', '.join(data['train']['card_types']) or '?'}; capture style: {', '.join(data['train']['capture']) or '?'}",
        f"- seed: {train_args.get('seed')}",
        f"- PyTorch weights: `{checkpoint.as_posix()}` (fine-tune with `--init {checkpoint.as_posix()}`)", "",
        "## Held-out metrics (validation split, never trained on)", "",
        *[f"- {k}: {v}" for k, v in metrics.items()], "",
        "## Export", "",
        f"- exported by: `{cmd}`",
        *[f"- {k}: {v}" for k, v in export_info.items()], "",
        notes, "",
        *history(name),
    ]
    card.write_text("\n".join(lines), encoding="utf-8")
    (MODELS / f"{name}.metrics.json").write_text(json.dumps({"metrics": metrics, "export": export_info, "train_args": train_args, "data": data}, indent=2))
    return card


def image_batch(images: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
    """uint8 NHWC RGB → the nets' NCHW pixel input: uint8 as served, or float 0-255 with light/colour
    jitter when training (the nets normalise inside, training.nets)."""
    if rng is None:
        return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    x = images.astype(np.float32)
    x = x * rng.uniform(0.7, 1.3, (len(x), 1, 1, 1)).astype(np.float32) + rng.uniform(-38, 38, (len(x), 1, 1, 3)).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def run_cli(name: str, doc: str, train, evaluate, export_cmd, steps: int, batch: int, lr: float, eval_every: int,
            train_options: Callable[[argparse.ArgumentParser], None] | None = None,
            more: dict[str, tuple[Callable, Callable[[argparse.ArgumentParser], None]]] | None = None) -> None:
    """`python -m training.<name> train|evaluate|export`, the same three verbs for every model
    (train_options adds a model's own training flags; more: a model's own verbs, name -> (function, its flags))."""
    verbs = {"train": train, "evaluate": evaluate, "export": export_cmd, **{v: fn for v, (fn, _) in (more or {}).items()}}
    ap = argparse.ArgumentParser(description=doc)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--steps", type=int, default=steps)
    t.add_argument("--batch", type=int, default=batch)
    t.add_argument("--lr", type=float, default=lr)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--eval-every", type=int, default=eval_every)
    t.add_argument("--init", help="start from these weights, e.g. data/runs/<name>.pt (fine-tuning)")
    if train_options:
        train_options(t)
    e = sub.add_parser("evaluate")
    e.add_argument("--onnx", default=str(MODELS / f"{name}.onnx"))
    sub.add_parser("export")
    for verb, (_, flags) in (more or {}).items():
        flags(sub.add_parser(verb))
    a = ap.parse_args()
    verbs[a.cmd](a)


__all__ = ["initial_weights", "image_batch", "run_cli", "CACHE", "RUNS", "MODELS", "seed_everything", "batches", "train_loop", "write_model_card", "export"]
