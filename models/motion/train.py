"""Trains the motion model on GRID s1: phone posteriors (100 Hz) -> mouth parameters (25 fps).

Pre-train on one-hot forced-aligned phones, then fine-tune on the streaming encoder's posteriors:
    OMP_NUM_THREADS=1 nice -n 10 python -m lipstream.models.motion.train --source onehot \
        --out ~/.cache/lipstream/motion/onehot.pt
    OMP_NUM_THREADS=1 nice -n 10 python -m lipstream.models.motion.posteriors
    OMP_NUM_THREADS=1 nice -n 10 python -m lipstream.models.motion.train \
        --source orig,down200,up250,up450,onehot --dev-source orig \
        --init ~/.cache/lipstream/motion/onehot.pt --out ~/.cache/lipstream/motion/encoder.pt

Inputs are augmented so the model does not trust s1's exact posteriors: temperature, logit noise and
temporal blur make one-hot labels look like an uncertain encoder on an unseen voice.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from lipstream.realtime.pose import MOUTH_PARAMS

from .dataset import (
    ALIGN_DIR,
    N_PHONES,
    POSTERIOR_DIR,
    SILENCE_DB,
    VIDEO_FPS,
    Clip,
    clip_ids,
    hop_levels_db,
    load_clip,
    onehot_from_alignment,
    sil_row,
    split_ids,
    windows,
)
from .metrics import lip_sync
from .model import MotionConfig, MotionNet
from .posteriors import HELD_OUT_CENTS

logger = logging.getLogger(__name__)

CKPT_DIR = POSTERIOR_DIR.parent / "motion"


@dataclass(frozen=True)
class TrainOptions:
    """Optimiser and augmentation settings."""

    epochs: int = 30
    batch: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    max_temperature: float = 3.0  # posteriors are flattened by up to this factor
    max_logit_noise: float = 1.5  # std of Gaussian noise added to log-posteriors
    blur_prob: float = 0.5  # chance a window is blurred over +-1 posterior frame
    noise_floor_db: tuple[float, float] = (-90.0, -40.0)  # background noise mixed into the levels
    seed: int = 0
    use_level: bool = True  # False: ablation with a constant level (the model sees phones only)
    open_weight: float = 1.0  # loss weight of ``open`` against 1 for each other parameter


@dataclass(frozen=True)
class Examples:
    """Windows, targets and the clip each frame belongs to (for per-clip metrics)."""

    x: torch.Tensor  # (N, W, N_PHONES)
    level: torch.Tensor  # (N, W) dBFS per hop
    y: torch.Tensor  # (N, N_MOUTH_PARAMS)
    valid: torch.Tensor  # (N,) bool
    clip: np.ndarray  # (N,) int


def sequence_for(clip: Clip, source: str) -> np.ndarray | None:
    """The clip's 100 Hz input sequence, or None if missing.

    ``source`` is ``onehot`` (aligned phones) or a ``posteriors.PITCH_CENTS`` variant name (encoder
    posteriors of the original or pitch-shifted audio).
    """
    n_frames = int(np.ceil(len(clip.audio) / 160))
    if source == "onehot":
        if not (ALIGN_DIR / f"{clip.clip_id}.json").exists():
            return None
        return onehot_from_alignment(clip.clip_id, n_frames)
    if not (POSTERIOR_DIR / source / "DONE").exists():
        raise FileNotFoundError(f"no {POSTERIOR_DIR / source}: run motion.posteriors first")
    path = POSTERIOR_DIR / source / f"{clip.clip_id}.npy"
    return np.load(path).astype(np.float32) if path.exists() else None


def levels_for(clip: Clip, source: str, recorded: np.ndarray) -> np.ndarray:
    """``(T, 1)`` hop levels (dBFS) of the audio ``source`` was made from.

    A channel variant (``posteriors.CHANNEL_SEEDS``) saved its own beside its posteriors (noise and
    reverb change the level); the other sources keep the recording's, ``recorded``.
    """
    path = POSTERIOR_DIR / source / f"{clip.clip_id}.levels.npy"
    return np.load(path).astype(np.float32)[:, None] if path.exists() else recorded


def build_examples(clips: list[Clip], sources: list[str], config: MotionConfig) -> Examples:
    """Stacks every video frame of every clip (for each source that has the clip) as one example."""
    xs, ls, ys, vs, cs = [], [], [], [], []
    w, la = config.window_frames, config.lookahead_samples
    for ci, clip in enumerate(clips):
        recorded = hop_levels_db(clip.audio)[:, None]
        for source in sources:
            seq = sequence_for(clip, source)
            if seq is None:
                continue
            levels = levels_for(clip, source, recorded)
            n = len(clip.targets)
            xs.append(windows(seq, n, w, la, sil_row()))
            ls.append(windows(levels, n, w, la, np.array([SILENCE_DB]))[..., 0])
            ys.append(clip.targets)
            vs.append(clip.valid)
            cs.append(np.full(n, ci))
    if not xs:
        raise FileNotFoundError(f"no inputs for sources {sources}")
    return Examples(
        torch.from_numpy(np.concatenate(xs)),
        torch.from_numpy(np.concatenate(ls)),
        torch.from_numpy(np.concatenate(ys)),
        torch.from_numpy(np.concatenate(vs)),
        np.concatenate(cs),
    )


def augment_level(level: torch.Tensor, opts: TrainOptions, gen: torch.Generator) -> torch.Tensor:
    """Adds a random background-noise floor and gain to hop levels (dBFS)."""
    b = level.shape[0]
    lo, hi = opts.noise_floor_db
    floor = lo + (hi - lo) * torch.rand(b, 1, generator=gen)
    gain = 12.0 * (2 * torch.rand(b, 1, generator=gen) - 1)
    mixed = 10 * torch.log10(10 ** (level / 10) + 10 ** (floor / 10))
    return mixed + gain + torch.randn(level.shape, generator=gen)


def augment(x: torch.Tensor, opts: TrainOptions, gen: torch.Generator) -> torch.Tensor:
    """Makes posteriors less certain and less s1-like: temperature, logit noise, temporal blur."""
    b = x.shape[0]
    logits = torch.log(x * 0.98 + 0.02 / N_PHONES)
    temp = 1.0 + (opts.max_temperature - 1.0) * torch.rand(b, 1, 1, generator=gen)
    noise = opts.max_logit_noise * torch.rand(b, 1, 1, generator=gen)
    logits = logits / temp + noise * torch.randn(logits.shape, generator=gen)
    p = torch.softmax(logits, dim=-1)
    blur = torch.rand(b, 1, 1, generator=gen) < opts.blur_prob
    smoothed = F.avg_pool1d(p.transpose(1, 2), 3, stride=1, padding=1, count_include_pad=False)
    return torch.where(blur, smoothed.transpose(1, 2), p)


def evaluate(model: MotionNet, ex: Examples, clips: list[Clip]) -> dict[str, float]:
    """Mean per-clip Pearson r of every predicted mouth parameter against the real one.

    Also the best-lag r and the median lag of ``open``.
    """
    model.eval()
    with torch.no_grad():
        pred = model(ex.x, ex.level).numpy()
    out: dict[str, list[float]] = {"open_best_r": [], "open_lag_ms": []}
    out.update({f"{name}_r": [] for name in MOUTH_PARAMS})
    for ci in np.unique(ex.clip):
        m = ex.clip == ci
        valid = ex.valid.numpy()[m]
        real = ex.y.numpy()[m]
        sync = lip_sync(pred[m, 0], real[:, 0], valid, VIDEO_FPS)
        out["open_best_r"].append(sync.best_r)
        out["open_lag_ms"].append(sync.lag_ms)
        for k, name in enumerate(MOUTH_PARAMS):
            if real[valid, k].std() > 1e-6:  # a clip without /f v/ has nothing to correlate
                out[f"{name}_r"].append(lip_sync(pred[m, k], real[:, k], valid, VIDEO_FPS).r)
    res = {k: round(float(np.mean(v)), 4) for k, v in out.items() if v}
    res["open_lag_ms"] = float(np.median(out["open_lag_ms"]))
    return res


def train(model: MotionNet, train_ex: Examples, opts: TrainOptions, dev: tuple) -> MotionNet:
    """Masked MSE on standardised targets with AdamW and a cosine schedule."""
    gen = torch.Generator().manual_seed(opts.seed)
    optim = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    n = len(train_ex.x)
    steps = opts.epochs * ((n + opts.batch - 1) // opts.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, opts.lr, total_steps=steps)
    for epoch in range(opts.epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, opts.batch):
            idx = order[i : i + opts.batch]
            x = augment(train_ex.x[idx], opts, gen)
            level = augment_level(train_ex.level[idx], opts, gen)
            if not opts.use_level:
                level = torch.zeros_like(level)
            y = (train_ex.y[idx] - model.out_mean) / model.out_std
            w = train_ex.valid[idx].float()[:, None]
            col_w = torch.ones(y.shape[1])
            col_w[0] = opts.open_weight
            err = (model.forward_standardised(x, level) - y) ** 2 * col_w
            loss = (err * w).sum() / w.sum().clamp(min=1)
            optim.zero_grad()
            loss.backward()
            optim.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if epoch % 5 == 4 or epoch == opts.epochs - 1:
            logger.info("epoch %d loss %.4f dev %s", epoch + 1, total / n, evaluate(model, *dev))
    return model


def main() -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        default="onehot",
        help="comma list of onehot and posterior variants (orig, up250...)",
    )
    parser.add_argument("--dev-source", default="", help="source for dev metrics (default: first)")
    parser.add_argument("--init", type=Path, help="checkpoint to fine-tune")
    parser.add_argument("--out", type=Path, default=CKPT_DIR / "motion.pt")
    parser.add_argument("--epochs", type=int, default=TrainOptions.epochs)
    parser.add_argument("--lr", type=float, default=TrainOptions.lr)
    parser.add_argument(
        "--lookahead-ms",
        type=float,
        help="window end past the video frame's end (default 10; with --init, the checkpoint's)",
    )
    parser.add_argument("--window", type=int, default=MotionConfig.window_frames)
    parser.add_argument("--hidden", type=int, default=MotionConfig.hidden)
    parser.add_argument("--squeeze", type=int, default=MotionConfig.squeeze)
    parser.add_argument("--head-hidden", type=int, default=MotionConfig.head_hidden)
    parser.add_argument("--no-level", action="store_true", help="ablation: phones only")
    parser.add_argument("--open-weight", type=float, default=TrainOptions.open_weight)
    parser.add_argument("--seed", type=int, default=TrainOptions.seed, help="init and batch order")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    sources = args.source.split(",")
    held_out = sorted(set(sources) & set(HELD_OUT_CENTS))
    if held_out:  # dev-only voices stand in for unheard ones; training on them voids that measure
        parser.error(f"{', '.join(held_out)} are evaluation-only variants (posteriors --dev-only)")
    lookahead_ms = 10.0 if args.lookahead_ms is None else args.lookahead_ms
    config = MotionConfig(
        window_frames=args.window,
        lookahead_samples=int(lookahead_ms * 16),
        hidden=args.hidden,
        squeeze=args.squeeze,
        head_hidden=args.head_hidden,
    )
    if args.init:
        state = torch.load(args.init)
        config = MotionConfig(**state["config"])
        if args.lookahead_ms is not None:  # fine-tune into a shorter (or longer) look-ahead
            config = replace(config, lookahead_samples=int(args.lookahead_ms * 16))
    # press/tuck are labelled from the alignment: a clip the aligner could not align is left out.
    aligned = [c for c in clip_ids() if (ALIGN_DIR / f"{c}.json").exists()]
    train_ids, dev_ids = split_ids(clip_ids())
    train_ids = [c for c in train_ids if c in aligned]
    dev_ids = [c for c in dev_ids if c in aligned]
    train_clips = [load_clip(c) for c in train_ids]
    dev_clips = [load_clip(c) for c in dev_ids]
    train_ex = build_examples(train_clips, sources, config)
    dev_ex = build_examples(dev_clips, [args.dev_source or sources[0]], config)
    logger.info("train %d frames, dev %d frames, config %s", len(train_ex.x), len(dev_ex.x), config)
    model = MotionNet(config)
    if args.init:
        model.load_state_dict(state["model"])
    else:
        ok = train_ex.valid
        model.out_mean.copy_(train_ex.y[ok].mean(0))
        model.out_std.copy_(train_ex.y[ok].std(0))
    opts = TrainOptions(
        epochs=args.epochs,
        lr=args.lr,
        use_level=not args.no_level,
        open_weight=args.open_weight,
        seed=args.seed,
    )
    if args.no_level:
        dev_ex.level.zero_()
    train(model, train_ex, opts, (dev_ex, dev_clips))
    metrics = evaluate(model, dev_ex, dev_clips)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "config": asdict(config),
            "model": model.state_dict(),
            "dev": metrics,
            "sources": sources,
            "dev_ids": dev_ids,
        },
        args.out,
    )
    logger.info("saved %s dev %s", args.out, metrics)


if __name__ == "__main__":
    main()
