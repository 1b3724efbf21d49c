"""Train the streaming encoder on the shards (torch, one thread, fixed seed).

    python -m lipstream.models.encoder.train --minutes 45 --out ~/.cache/lipstream/encoder_run

Random 3 s crops are drawn from each training set with fixed set weights; a random mel-axis warp
(vocal-tract-length perturbation) and SpecAugment-style frequency masks; cross-entropy (label smoothing 0.1) of output t against the label of frame t - L.
The run is bounded by step count (``--steps``), so it is reproducible; ``--minutes`` only sets
a safety stop.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from lipstream.realtime.phonemes import PHONE_TO_INDEX
from lipstream.realtime.sphinx_mfcc import N_FEATURES as N_SPHINX_FEATURES
from torch import nn

from .metrics import frame_metrics
from .model import EncoderConfig, StreamingEncoder, add_sphinx_input, count_parameters
from .paths import CORPUS_DIR
from .sphinx_am import senone_scorer

logger = logging.getLogger(__name__)

SEED = 20261124
CROP_FRAMES = 300
BATCH = 32
SET_WEIGHTS = {"grid": 0.12, "vctk": 0.15, "fsdd": 0.05, "synth": 0.28, "libri": 0.40}
"""LibriSpeech (all 249 train clips, pseudo-labelled, several hundred American/real speakers) weighs most:
the hidden set and the test-other dev set are real American speech."""
TRAIN_SETS = ("grid", "vctk", "fsdd", "synth", "libri", "libri_more")
"""Every training shard ``shards.py`` builds (``libri_more``: the LibriSpeech clips past the first 100)."""
LIBRI_SETS = ("libri", "libri_more")
"""The pseudo-labelled sets (``--self-train`` masks their frames)."""
BILABIAL_WEIGHT = 2.0
"""Loss weight of P, B and M frames (others 1): a mouth left open on /m/ is the most visible lip-sync
error, and the old model recalled only ~0.4 of bilabial frames on American speech."""
WARP_PROB = 0.7
WARP_RANGE = (0.88, 1.12)
IGNORE = -1
"""Label of frames left out of the loss (pseudo-labels a self-training teacher rejected)."""
DEV_SETS = ("dev_libritest", "dev_vctk", "dev_fsdd", "dev_grid", "dev_vctk_aug", "dev_fsdd_aug")


def load_shard(name: str, sphinx: bool = False) -> dict[str, np.ndarray]:
    """One npz shard fully in memory.

    ``sphinx``: with its Sphinx frames (``sphinx_shards.py``) appended to the log-mel columns, as the
    model with the codebook layer reads them.
    """
    with np.load(CORPUS_DIR / f"{name}.npz") as z:
        shard = {k: z[k] for k in z.files}
    if sphinx:
        with np.load(CORPUS_DIR / f"{name}.sphinx.npz") as z:
            if len(z["feats"]) != len(shard["feats"]) or list(z["ids"]) != list(shard["ids"]):
                raise ValueError(f"{name}.sphinx.npz does not match {name}.npz: rebuild it (sphinx_shards.py)")
            shard["feats"] = np.concatenate([shard["feats"], z["feats"]], axis=1)
    return shard


class CropSampler:
    """Random (B, CROP, F) crops from the training sets, set chosen by weight."""

    def __init__(
        self,
        rng: np.random.Generator,
        batch: int = BATCH,
        weights: dict[str, float] | None = None,
        self_train: bool = False,
        sphinx: bool = False,
    ) -> None:
        self.rng = rng
        self.batch_size = batch
        weights = weights or SET_WEIGHTS
        self.sets = {
            k: load_shard(f"train_{k}", sphinx) for k in weights if (CORPUS_DIR / f"train_{k}.npz").exists()
        }
        for k in LIBRI_SETS if self_train else ():
            if k in self.sets:
                self.sets[k]["labels"] = apply_keep_mask(self.sets[k]["labels"], k)
        w = np.array([weights[k] for k in self.sets])
        self.names, self.weights = list(self.sets), w / w.sum()
        for k, v in self.sets.items():
            logger.info("train_%s: %.1f min", k, len(v["labels"]) / 6000)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, CROP, F) float32 and labels (B, CROP) int64."""
        feats, labels = [], []
        for name in self.rng.choice(self.names, size=self.batch_size, p=self.weights):
            s = self.sets[name]
            start = int(self.rng.integers(0, len(s["labels"]) - CROP_FRAMES))
            feats.append(s["feats"][start : start + CROP_FRAMES])
            labels.append(s["labels"][start : start + CROP_FRAMES])
        return torch.from_numpy(np.stack(feats).astype(np.float32)), torch.from_numpy(np.stack(labels).astype(np.int64))


def apply_keep_mask(labels: np.ndarray, clip_set: str) -> np.ndarray:
    """Labels with the frames a self-training teacher rejected set to IGNORE (``selftrain.py``)."""
    with np.load(CORPUS_DIR / f"train_{clip_set}.keep.npz") as z:
        keep = z["keep"]
    if len(keep) != len(labels):
        raise ValueError(f"train_{clip_set}.keep.npz does not match the shard: rebuild it (selftrain.py)")
    logger.info("self-training: %.3f of train_%s frames kept", keep.mean(), clip_set)
    return np.where(keep, labels, IGNORE).astype(labels.dtype)


def freq_mask(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Two random frequency masks of up to 6 bins per example (in place on a copy)."""
    x = x.clone()
    for b in range(x.shape[0]):
        for _ in range(2):
            w = int(rng.integers(0, 7))
            f0 = int(rng.integers(0, x.shape[2] - w + 1))
            x[b, :, f0 : f0 + w] = 0.0
    return x


def mel_warp(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Vocal-tract-length perturbation on the fly: stretch each example's mel axis by a random factor.

    Bin k of the output reads bin k * alpha of the input (linear interpolation, edge bins clamped), with
    alpha uniform in WARP_RANGE for a share WARP_PROB of the examples (the rest unchanged).
    """
    b, _, f = x.shape
    alpha = np.where(rng.random(b) < WARP_PROB, rng.uniform(*WARP_RANGE, size=b), 1.0)
    pos = torch.from_numpy(np.clip(np.arange(f)[None, :] * alpha[:, None], 0, f - 1).astype(np.float32))
    lo = pos.floor().long()
    hi = torch.clamp(lo + 1, max=f - 1)
    w = (pos - lo.float())[:, None, :]
    take = lambda idx: torch.gather(x, 2, idx[:, None, :].expand(b, x.shape[1], f))  # noqa: E731
    return take(lo) * (1 - w) + take(hi) * w


def delayed_loss(logits: torch.Tensor, labels: torch.Tensor, lookahead: int, crit: nn.Module) -> torch.Tensor:
    """CE of output t against label t - lookahead."""
    if lookahead:
        logits, labels = logits[:, lookahead:], labels[:, :-lookahead]
    return crit(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


@torch.no_grad()
def evaluate(model: StreamingEncoder, shard: dict[str, np.ndarray]) -> dict[str, float]:
    """Whole-utterance (from-start) predictions, delayed by L, scored per frame."""
    model.eval()
    device = next(model.parameters()).device
    L, preds, refs = model.cfg.lookahead_frames, [], []
    starts = shard["starts"]
    for i in range(len(starts) - 1):
        f = torch.from_numpy(shard["feats"][starts[i] : starts[i + 1]].astype(np.float32))[None]
        f = torch.cat([f, torch.zeros(1, L, f.shape[2])], dim=1)
        state = [t.to(device) for t in model.initial_state(1)]
        logits = model(f.to(device), *state)[0][0, L:]
        preds.append(logits.argmax(-1).cpu().numpy())
        refs.append(shard["labels"][starts[i] : starts[i + 1]])
    model.train()
    return frame_metrics(np.concatenate(preds), np.concatenate(refs))


def train(
    cfg: EncoderConfig,
    steps: int,
    minutes: float,
    out: Path,
    lr: float,
    batch: int = BATCH,
    device: str = "cpu",
    init: Path | None = None,
    weights: dict[str, float] | None = None,
    seed: int = SEED,
    self_train: bool = False,
    sphinx: bool = False,
) -> dict[str, object]:
    """Train, then save ``out/encoder.pt`` + ``out/metrics.json``; returns the metrics.

    ``device`` only moves the network's arithmetic (crops and augmentation stay on the CPU and the
    seeded numpy generator), so a CUDA run draws the same crops as a CPU run of the same ``batch``.
    ``init``: start from this checkpoint's weights (fine-tuning; its config replaces ``cfg``).
    ``weights``: set weights of the crops (default ``SET_WEIGHTS``). ``self_train``: drop the LibriSpeech
    frames ``selftrain.py``'s teacher rejected from the loss. ``sphinx``: the model reads Sphinx frames
    through the fixed codebook layer too (``gmm_layer.py``); a log-mel-only ``init`` gets zero weights
    for the new inputs, so step 0 is that checkpoint.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    sampler = CropSampler(rng, batch, weights, self_train, sphinx)
    dev = {k: load_shard(k, sphinx) for k in DEV_SETS if _has_shard(k, sphinx)}
    if init is not None:
        ckpt = torch.load(init, map_location="cpu")
        cfg = EncoderConfig(**ckpt["cfg"])
    widen = sphinx and not cfg.sphinx_dims
    if widen:
        cfg = EncoderConfig(**{**cfg.as_dict(), "sphinx_dims": N_SPHINX_FEATURES})
    if bool(cfg.sphinx_dims) != sphinx:
        raise ValueError(f"sphinx={sphinx} but the model has sphinx_dims={cfg.sphinx_dims}")
    model = StreamingEncoder(cfg)
    if init is not None and widen:
        add_sphinx_input(model, ckpt["state"])
        logger.info("initialised from %s, zero weights on the codebook scores", init)
    elif init is not None:
        model.load_state_dict(ckpt["state"])
        logger.info("initialised from %s", init)
    elif sphinx:
        model.sphinx.load_scorer(senone_scorer(ci_weights=False))  # type: ignore[union-attr]
    model = model.to(device)
    logger.info("params %d, lookahead %d frames", count_parameters(model), cfg.lookahead_frames)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.08)
    class_weight = torch.ones(cfg.n_phones)
    class_weight[[PHONE_TO_INDEX[p] for p in ("P", "B", "M")]] = BILABIAL_WEIGHT
    crit = nn.CrossEntropyLoss(weight=class_weight.to(device), label_smoothing=0.1, ignore_index=IGNORE)
    out.mkdir(parents=True, exist_ok=True)
    t0, done = time.monotonic(), 0
    for step in range(steps):
        x, y = sampler.batch()
        n = cfg.n_mels
        x = torch.cat([freq_mask(mel_warp(x[..., :n], rng), rng), x[..., n:]], dim=-1).to(device)
        state = [t.to(device) for t in model.initial_state(batch)]
        logits = model(x, *state)[0]
        loss = delayed_loss(logits, y.to(device), cfg.lookahead_frames, crit)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        done = step + 1
        if step % 100 == 0:
            logger.info("step %d loss %.3f %.0fs", step, loss.item(), time.monotonic() - t0)
        if step % 500 == 499:
            torch.save({"cfg": cfg.as_dict(), "state": _cpu_state(model)}, out / "encoder.pt")
            for name in ("dev_libritest", "dev_vctk"):
                if name in dev:
                    logger.info("step %d %s %s", step, name, evaluate(model, dev[name]))
        if time.monotonic() - t0 > minutes * 60:
            logger.warning("stopping at step %d: time limit", step)
            break
    torch.save({"cfg": cfg.as_dict(), "state": _cpu_state(model)}, out / "encoder.pt")
    metrics = {k: evaluate(model, v) for k, v in dev.items()}
    result = {"steps": done, "params": count_parameters(model), "train_s": time.monotonic() - t0,
              "cfg": cfg.as_dict(), "dev": metrics}  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    logger.info("done %s", json.dumps(result))
    return result


def _has_shard(name: str, sphinx: bool) -> bool:
    """The shard exists (and, for a model with the codebook layer, its Sphinx frames too)."""
    return (CORPUS_DIR / f"{name}.npz").exists() and (not sphinx or (CORPUS_DIR / f"{name}.sphinx.npz").exists())


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights on the CPU, so a checkpoint from a GPU run loads anywhere."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def main(argv: list[str] | None = None) -> None:
    """CLI entry."""
    p = argparse.ArgumentParser(description="train the streaming phoneme encoder")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--minutes", type=float, default=80.0)
    p.add_argument("--lookahead-frames", type=int, default=5)
    p.add_argument("--gru-hidden", type=int, default=256)
    p.add_argument("--conv-channels", type=int, default=192)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--out", type=Path, default=CORPUS_DIR.parent / "encoder_run")
    p.add_argument("--batch", type=int, default=BATCH, help="crops per step")
    p.add_argument("--device", default="cpu", help="torch device for the network, e.g. cuda")
    p.add_argument("--init", type=Path, default=None, help="fine-tune from this checkpoint")
    p.add_argument("--weights", default=None, help="set weights, e.g. libri=0.6,vctk=0.15,grid=0.1")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--self-train", action="store_true", help="use selftrain.py's keep-mask on LibriSpeech")
    p.add_argument("--sphinx", action="store_true", help="add pocketsphinx's codebook scores as inputs")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    cfg = EncoderConfig(lookahead_frames=a.lookahead_frames, gru_hidden=a.gru_hidden, conv_channels=a.conv_channels)
    weights = parse_weights(a.weights) if a.weights else None
    train(cfg, a.steps, a.minutes, a.out, a.lr, a.batch, a.device, a.init, weights, a.seed, a.self_train, a.sphinx)


def parse_weights(text: str) -> dict[str, float]:
    """``"libri=0.6,vctk=0.15"`` -> ``{"libri": 0.6, "vctk": 0.15}`` (names must be training sets)."""
    out = {}
    for item in text.split(","):
        name, value = item.split("=")
        if name not in TRAIN_SETS:
            raise ValueError(f"unknown training set {name!r}; expected one of {TRAIN_SETS}")
        out[name] = float(value)
    return out


if __name__ == "__main__":
    main()
