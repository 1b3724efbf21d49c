"""Streaming features, the shipped phoneme encoder and the phone/viseme tables.

Model tests load the shipped ``models/encoder/encoder.onnx`` once per class; learned output is only
checked for properties (probabilities, silence on silence), deterministic code exactly.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from lipstream.realtime import encoder as enc_mod
from lipstream.realtime.encoder import ModelContractError, StreamingPhonemeEncoder, read_contract
from lipstream.realtime.features import (
    HOP_SAMPLES,
    N_MELS,
    FeatureStream,
    LogMelExtractor,
    features_whole,
    mel_filterbank,
)
from lipstream.realtime.sphinx_mfcc import sphinx_features_whole as sphinx_mfcc_whole
from lipstream.realtime.phonemes import (
    PHONE_TO_VISEME,
    PHONES,
    VISEMES,
    normalise_phone,
    phoneme_posteriors,
    phoneme_segments,
    segments_from_posteriors,
)

SR = 16_000


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts with a moving formant-ish resonance and pauses (not speech, but not stationary)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    carrier = np.sin(2 * np.pi * (300 + 200 * np.sin(2 * np.pi * 3 * t)) * t)
    envelope = (np.sin(2 * np.pi * 2.5 * t) > -0.3).astype(np.float64)
    return (0.2 * envelope * (carrier + 0.3 * rng.standard_normal(n))).astype(np.float32)


def _chunked(stream_push, audio: np.ndarray, sizes: list[int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    out, i, k = [], 0, 0
    while i < audio.size:
        step = sizes[k % len(sizes)]
        out.append(stream_push(audio[i : i + step]))
        i, k = i + step, k + 1
    return np.concatenate(out)


class TestFeatures:
    def test_frame_count_and_shape(self) -> None:
        feats = features_whole(_speechlike(1.0) [: 16_000 - 5])
        assert feats.shape == ((16_000 - 5) // HOP_SAMPLES, N_MELS)
        assert feats.dtype == np.float32

    @pytest.mark.parametrize("sizes", [[160], [320], [1, 7, 333, 1000], [4000]])
    def test_chunked_equals_whole(self, sizes: list[int]) -> None:
        audio = _speechlike(2.0)
        whole = features_whole(audio)
        stream = FeatureStream()
        np.testing.assert_allclose(_chunked(stream.push, audio, sizes), whole, atol=1e-4)

    def test_log_mel_is_causal(self) -> None:
        audio = _speechlike(1.0)
        first = LogMelExtractor().push(audio[:8000])
        changed = audio.copy()
        changed[8000:] = 0.0
        np.testing.assert_allclose(LogMelExtractor().push(changed)[: len(first)], first, atol=1e-5)

    def test_normalisation_removes_gain(self) -> None:
        # A noise floor keeps every bin far above LOG_FLOOR, where a gain is a pure log-domain shift.
        floor = 0.02 * np.random.default_rng(9).standard_normal(3 * SR).astype(np.float32)
        audio = _speechlike(3.0, seed=1) + floor
        np.testing.assert_allclose(features_whole(audio * 0.25), features_whole(audio), atol=2e-2)

    def test_filterbank_covers_every_band(self) -> None:
        fb = mel_filterbank()
        assert fb.shape == (257, N_MELS)
        assert np.all(fb.max(axis=0) > 0)

    def test_rejects_stereo(self) -> None:
        with pytest.raises(ValueError, match="mono"):
            FeatureStream().push(np.zeros((2, 160), np.float32))


class TestPhoneTables:
    def test_phone_set(self) -> None:
        assert len(PHONES) == 40 and PHONES[0] == "SIL" and len(set(PHONES)) == 40

    def test_every_phone_has_an_oculus_viseme(self) -> None:
        assert set(PHONE_TO_VISEME) == set(PHONES)
        assert set(PHONE_TO_VISEME.values()) == set(VISEMES) and len(VISEMES) == 15
        assert {PHONE_TO_VISEME[p] for p in ("P", "B", "M")} == {"PP"}

    @pytest.mark.parametrize(
        ("raw", "want"), [("AH0", "AH"), ("ey1", "EY"), ("BCL", "B"), ("+NSN+", "SIL"), ("sil", "SIL")]
    )
    def test_normalise_phone(self, raw: str, want: str) -> None:
        assert normalise_phone(raw) == want

    def test_segments_from_posteriors(self) -> None:
        post = np.zeros((5, len(PHONES)), np.float32)
        post[[0, 1], PHONES.index("SIL")] = 1
        post[[2, 3, 4], PHONES.index("M")] = 1
        assert segments_from_posteriors(post) == [
            {"phone": "SIL", "start": 0.0, "end": 0.02},
            {"phone": "M", "start": 0.02, "end": 0.05},
        ]


class TestShippedEncoder:
    @classmethod
    def setup_class(cls) -> None:
        cls.encoder = StreamingPhonemeEncoder()

    def test_contract(self) -> None:
        c = self.encoder.contract
        assert c.phones == PHONES
        assert 0 <= c.lookahead_ms <= 50 and c.lookahead_ms == c.lookahead_frames * 10
        assert c.frame_rate_hz == 100

    @pytest.mark.parametrize("sizes", [[160], [320], [17, 480, 3]])
    def test_chunked_equals_whole(self, sizes: list[int]) -> None:
        audio = _speechlike(1.5, seed=2)
        self.encoder.reset()
        whole = np.concatenate([self.encoder.push(audio), self.encoder.flush()])
        self.encoder.reset()
        chunked = np.concatenate([_chunked(self.encoder.push, audio, sizes), self.encoder.flush()])
        assert whole.shape == (audio.size // HOP_SAMPLES, len(PHONES))
        np.testing.assert_allclose(chunked, whole, atol=1e-4)

    def test_quiet_audio_skips_the_network_and_rehearing_restores_it(self) -> None:
        """``push_quiet`` gives as many rows as ``push``, all SIL; ``rehear`` then recovers them.

        Shorter than ``WARMUP_FRAMES`` from the stream's start, the warm-up re-hears everything the
        network ever heard, so what it restores and all that follows equal a run that never
        stopped.
        """
        audio = np.concatenate([np.zeros(SR // 2, np.float32), _speechlike(0.3, seed=6)])
        packet, quiet_until = 320, SR // 2
        self.encoder.reset()
        steady = _chunked(self.encoder.push, audio, [packet])
        self.encoder.reset()
        skipped = _chunked(self.encoder.push_quiet, audio[:quiet_until], [packet])
        assert self.encoder.frames_emitted == len(skipped) == quiet_until // HOP_SAMPLES - 5
        assert np.all(skipped.argmax(axis=1) == PHONES.index("SIL")) and np.all(skipped.max(1) == 1)
        restored = self.encoder.rehear()
        assert len(restored) == len(skipped) and len(self.encoder.rehear()) == 0
        after = _chunked(self.encoder.push, audio[quiet_until:], [packet])
        np.testing.assert_allclose(np.concatenate([restored, after]), steady, atol=1e-4)

    def test_rehearing_is_limited_to_the_warm_up(self) -> None:
        """After a long quiet stretch only the last ``WARMUP_FRAMES`` less the look-ahead return."""
        self.encoder.reset()
        _chunked(self.encoder.push_quiet, np.zeros(3 * SR, np.float32), [320])
        lookahead = self.encoder.contract.lookahead_frames
        assert len(self.encoder.rehear()) == enc_mod.WARMUP_FRAMES - lookahead

    def test_lookahead_delay(self) -> None:
        self.encoder.reset()
        got = self.encoder.push(np.zeros(HOP_SAMPLES * 10, np.float32))
        assert got.shape[0] == 10 - self.encoder.contract.lookahead_frames

    def test_posteriors_are_probabilities(self) -> None:
        post = phoneme_posteriors(_speechlike(1.0, seed=3))
        assert np.all(post >= 0)
        np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-4)

    def test_silence_is_mostly_sil(self) -> None:
        rng = np.random.default_rng(4)
        quiet = (1e-4 * rng.standard_normal(SR)).astype(np.float32)
        best = phoneme_posteriors(quiet).argmax(axis=1)
        assert np.mean(best == PHONES.index("SIL")) > 0.8

    def test_phoneme_segments_schema(self) -> None:
        audio = _speechlike(1.2, seed=5)
        out = phoneme_segments(audio)
        assert set(out) == {"lookahead_ms", "segments"}
        segs = out["segments"]
        assert segs[0]["start"] == 0.0 and segs[-1]["end"] == pytest.approx(1.2, abs=0.011)
        for a, b in zip(segs, segs[1:]):
            assert a["end"] == b["start"] and a["phone"] != b["phone"]
        assert all(s["phone"] in PHONES and set(s) == {"phone", "start", "end"} for s in segs)
        json.dumps(out)

    def test_phoneme_segments_with_posteriors(self) -> None:
        out = phoneme_segments(_speechlike(0.5), include_posteriors=True)
        assert out["phones"] == list(PHONES)
        assert np.asarray(out["posteriors"]).shape == (50, len(PHONES))

    def test_rejects_int_audio(self) -> None:
        with pytest.raises(ValueError, match="float"):
            phoneme_segments(np.zeros(1600, np.int16))


def test_contract_mismatch_is_rejected() -> None:
    session, _ = enc_mod.load_session(str(enc_mod.default_model_path()))
    meta = json.loads(session.get_modelmeta().custom_metadata_map["lipstream_contract"])
    meta["features"]["n_mels"] = 80
    fake = SimpleNamespace(
        get_modelmeta=lambda: SimpleNamespace(custom_metadata_map={"lipstream_contract": json.dumps(meta)})
    )
    with pytest.raises(ModelContractError, match="features"):
        read_contract(fake)  # type: ignore[arg-type]


class TestTrainingData:
    """Deterministic pieces of the corpus and training code (need the train extra: torch, PyAV)."""

    def test_speed_perturbation_scales_duration_and_pitch(self) -> None:
        augment = pytest.importorskip("lipstream.models.encoder.augment")
        t = np.arange(SR) / SR
        tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
        fast = augment.speed(tone, 1.1)
        assert abs(len(fast) - SR / 1.1) < 200
        spec = np.abs(np.fft.rfft(fast[2000:-2000]))
        peak_hz = np.argmax(spec) * SR / (2 * (len(spec) - 1))
        assert abs(peak_hz - 1100) < 15
        assert augment.speed(tone, 1.0) is not tone and np.array_equal(augment.speed(tone, 1.0), tone)

    def test_frame_labels_follow_speed(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        shards = pytest.importorskip("lipstream.models.encoder.shards")
        lab = tmp_path / "x.json"
        lab.write_text(json.dumps({"phones": [{"phone": "SIL", "start": 0, "end": 0.5},
                                              {"phone": "M", "start": 0.5, "end": 1.0}]}))  # fmt: skip
        m = PHONES.index("M")
        assert int(np.sum(shards.frame_labels(lab, 100) == m)) == 50
        # audio 1.25x faster: label time 0.5 s is now at 0.4 s
        fast = shards.frame_labels(lab, 80, time_scale=1.25)
        assert int(np.argmax(fast == m)) == 40 and int(np.sum(fast == m)) == 40

    def test_mel_warp_keeps_identity_and_stretches(self) -> None:
        torch = pytest.importorskip("torch")
        from lipstream.models.encoder import train

        x = torch.arange(N_MELS, dtype=torch.float32).repeat(3, 5, 1)

        class FixedRng:
            def __init__(self, alphas: list[float]) -> None:
                self.alphas = np.array(alphas)

            def random(self, n: int) -> np.ndarray:
                return np.where(self.alphas == 1.0, 1.0, 0.0)

            def uniform(self, lo: float, hi: float, size: int) -> np.ndarray:
                return self.alphas

        y = train.mel_warp(x, FixedRng([1.0, 0.9, 1.1]))  # type: ignore[arg-type]
        assert torch.allclose(y[0], x[0])
        assert torch.allclose(y[1, 0, :10], torch.arange(10.0) * 0.9)
        assert float(y[2, 0, -1]) == N_MELS - 1 and float(y[2, 0, 10]) == pytest.approx(11.0)

    def test_class_recall(self) -> None:
        from lipstream.models.encoder.metrics import class_recall

        m, b = PHONES.index("M"), PHONES.index("B")
        got = class_recall(np.array([m, m, b, 0]), np.array([m, b, b, m]), ("M", "B", "P"))
        assert got == {"M": 0.5, "B": 0.5, "P": None}

    def test_librispeech_training_clips_exclude_test_other(self) -> None:
        from lipstream.models.encoder import align
        from lipstream.models.encoder.paths import DATA_DIR

        if not (DATA_DIR / "librispeech" / "texts.tsv").exists():
            pytest.skip("no ../shared/data/librispeech")
        dev = align.libri_test_other_ids(DATA_DIR)
        pool = {p.stem for p in align.librispeech_train_pool(DATA_DIR)}
        assert len(dev) == 100 and len(pool) == 251 and not dev & pool
        assert {p.stem for p in align.librispeech_clips(DATA_DIR)} == pool  # every train clip is labelled
        assert {c for c, _, _ in align.libri_dev_items(DATA_DIR)} == dev

    def test_fine_tune_starts_from_the_checkpoint(self, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        torch = pytest.importorskip("torch")
        from lipstream.models.encoder import train
        from lipstream.models.encoder.model import EncoderConfig, StreamingEncoder

        rng = np.random.default_rng(0)
        np.savez(tmp_path / "train_libri.npz", feats=rng.normal(size=(400, N_MELS)).astype(np.float16),
                 labels=rng.integers(0, len(PHONES), 400).astype(np.int8), starts=np.array([0, 400]))  # fmt: skip
        monkeypatch.setattr(train, "CORPUS_DIR", tmp_path)
        cfg = EncoderConfig(conv_channels=8, gru_hidden=8)
        torch.manual_seed(1)
        start = StreamingEncoder(cfg)
        torch.save({"cfg": cfg.as_dict(), "state": start.state_dict()}, tmp_path / "init.pt")
        # lr 0: the weights written back are the checkpoint's, not a fresh initialisation (seeded differently)
        out = tmp_path / "run"
        train.train(EncoderConfig(), 1, 1.0, out, 0.0, batch=2, init=tmp_path / "init.pt",
                    weights=train.parse_weights("libri=1"))  # fmt: skip
        got = torch.load(out / "encoder.pt")
        assert got["cfg"] == cfg.as_dict()
        assert all(torch.equal(got["state"][k], v) for k, v in start.state_dict().items())
        with pytest.raises(ValueError):
            train.parse_weights("test_other=1")

    def test_self_training_mask_drops_rejected_frames(self, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        torch = pytest.importorskip("torch")
        from lipstream.models.encoder import train

        monkeypatch.setattr(train, "CORPUS_DIR", tmp_path)
        labels = np.array([3, 4, 5, 6], dtype=np.int8)
        np.savez(tmp_path / "train_libri.keep.npz", keep=np.array([True, False, True, False]))
        masked = train.apply_keep_mask(labels, "libri")
        assert masked.tolist() == [3, train.IGNORE, 5, train.IGNORE] and labels.tolist() == [3, 4, 5, 6]
        crit = torch.nn.CrossEntropyLoss(ignore_index=train.IGNORE)
        logits = torch.randn(1, 4, len(PHONES))
        full = train.delayed_loss(logits[:, [0, 2]], torch.tensor([[3, 5]]), 0, crit)
        got = train.delayed_loss(logits, torch.from_numpy(masked[None].astype(np.int64)), 0, crit)
        assert float(got) == pytest.approx(float(full))
        with pytest.raises(ValueError):
            train.apply_keep_mask(labels[:3], "libri")


def test_corpus_labels_the_extra_librispeech_clips_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Plain ``reproduce`` labels the 100 clips the shipped weights use; the candidate all 249."""
    from lipstream.models.encoder import align, corpus
    from lipstream.models.encoder.shards import LIBRI_FIRST_CLIPS

    limits: list[int | None] = []
    monkeypatch.setattr(
        align, "pseudo_label_librispeech", lambda *a, limit=None, **k: limits.append(limit)
    )
    corpus.main(["align-libri"])
    corpus.main(["align-libri", "--all-libri"])
    assert limits == [LIBRI_FIRST_CLIPS, None]


def test_reproduce_builds_the_fine_tuned_weights_without_sphinx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``reproduce --no-sphinx`` exports the fine-tune of the from-scratch run (ft249).

    ``--from-scratch`` exports the from-scratch run without labelling the 151 extra clips.
    """
    reproduce = pytest.importorskip("lipstream.models.encoder.reproduce")  # torch: ``train`` extra

    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(reproduce.corpus, "main", lambda argv: calls.append(("corpus", argv)))
    monkeypatch.setattr(
        reproduce.train,
        "train",
        lambda cfg, steps, minutes, out, lr, init=None, weights=None: calls.append(
            ("train", (steps, lr, out.name, init, weights))
        ),
    )
    monkeypatch.setattr(reproduce.export, "export", lambda ckpt, out: calls.append(("export", ckpt)))
    monkeypatch.setattr(reproduce.evaluate, "main", lambda argv: calls.append(("evaluate", argv)))
    run = reproduce.CACHE_DIR / "encoder_run" / "encoder.pt"
    ft = reproduce.CACHE_DIR / "encoder_finetune" / "encoder.pt"

    reproduce.main(["--no-sphinx"])
    assert calls == [
        ("corpus", ["--all-libri"]),
        ("train", (reproduce.SHIPPED_STEPS, reproduce.SHIPPED_LR, "encoder_run", None, None)),
        ("train", (reproduce.FINE_TUNE_STEPS, reproduce.FINE_TUNE_LR, "encoder_finetune", run,
                   reproduce.FINE_TUNE_WEIGHTS)),  # fmt: skip
        ("export", ft),
        ("evaluate", []),
    ]
    calls.clear()
    reproduce.main(["--from-scratch"])
    assert calls == [
        ("corpus", []),
        ("train", (reproduce.SHIPPED_STEPS, reproduce.SHIPPED_LR, "encoder_run", None, None)),
        ("export", run),
        ("evaluate", []),
    ]


class TestSphinxCepstra:
    """The Sphinx front end that feeds the encoder's pocketsphinx codebook layer (numpy only)."""

    @pytest.mark.parametrize("sizes", [[160], [320], [1, 7, 333, 1000]])
    def test_chunked_equals_whole(self, sizes: list[int]) -> None:
        from lipstream.realtime.sphinx_mfcc import SphinxFeatureStream, sphinx_features_whole

        audio = _speechlike(2.0, seed=6)
        whole = sphinx_features_whole(audio)
        assert whole.shape == (audio.size // HOP_SAMPLES, 39) and whole.dtype == np.float32
        np.testing.assert_allclose(_chunked(SphinxFeatureStream().push, audio, sizes), whole, atol=1e-3)

    def test_in_step_with_the_log_mels_and_causal(self) -> None:
        from lipstream.realtime.sphinx_mfcc import sphinx_features_whole

        audio = _speechlike(1.0, seed=7)
        assert len(sphinx_features_whole(audio[:12_345])) == len(features_whole(audio[:12_345]))
        changed = audio.copy()
        changed[8000:] = 0.0
        first = sphinx_features_whole(audio[:8000])
        np.testing.assert_allclose(sphinx_features_whole(changed)[: len(first)], first, atol=1e-4)

    def test_dynamic_features_are_sphinx_1s_c_d_dd_delayed_by_three_frames(self) -> None:
        """Row r holds the static cepstra of frame r - 3 and the deltas around it.

        d = c[+2] - c[-2], dd = (c[+3] - c[-1]) - (c[+1] - c[-3]), all from frames <= r (the
        encoder's look-ahead covers the 3).
        """
        from lipstream.realtime.sphinx_mfcc import DELAY_FRAMES, SphinxCepstra, sphinx_features_whole

        audio = _speechlike(1.0, seed=8)
        out = sphinx_features_whole(audio).astype(np.float64)
        static, d, dd = out[:, :13], out[:, 13:26], out[:, 26:]
        cep = SphinxCepstra().push(audio)
        mean = np.cumsum(cep, axis=0) / np.arange(1, len(cep) + 1)[:, None]  # < 500 frames: cumulative
        np.testing.assert_allclose(static[DELAY_FRAMES:], (cep - mean)[: len(cep) - DELAY_FRAMES], atol=1e-3)
        r = np.arange(3, len(out) - 3)
        np.testing.assert_allclose(d[r], static[r + 2] - static[r - 2], atol=1e-3)
        np.testing.assert_allclose(dd[r], (static[r + 3] - static[r - 1]) - (static[r + 1] - static[r - 3]), atol=1e-3)

    def test_filterbank_spans_sphinx_band_with_unit_area(self) -> None:
        from lipstream.realtime.sphinx_mfcc import LOWER_HZ, N_FFT, UPPER_HZ, sphinx_filterbank

        fb = sphinx_filterbank()
        freqs = np.fft.rfftfreq(N_FFT, 1 / SR)
        used = freqs[fb.sum(axis=1) > 0]
        assert used.min() >= LOWER_HZ - SR / N_FFT and used.max() <= UPPER_HZ + SR / N_FFT
        area = (fb * (SR / N_FFT)).sum(axis=0)  # triangles of height 2 / width: area ~1 each
        np.testing.assert_allclose(area, 1.0, atol=0.25)


class TestPocketsphinxCodebooks:
    """The acoustic-model reader and the fixed torch layer built from it (need the train extra)."""

    def test_reader_shapes_and_weights(self) -> None:
        pytest.importorskip("pocketsphinx")
        from lipstream.models.encoder import sphinx_am

        folder = sphinx_am.model_dir()
        assert sphinx_am.read_ci_phones(folder) == sphinx_am.CI_PHONES
        means, var = sphinx_am.read_gaussians(folder)
        assert means.shape == var.shape == (42, 3, 128, 13) and var.min() >= sphinx_am.VAR_FLOOR
        w = np.exp(sphinx_am.read_ci_mixture_weights(folder, 126))
        # quantised weights of each senone and stream sum to ~1 (truncation keeps them a little under)
        assert w.shape == (126, 3, 128) and np.all(np.abs(w.sum(-1) - 0.95) < 0.05)

    def test_codebook_layer_equals_the_numpy_scorer(self) -> None:
        torch = pytest.importorskip("torch")
        pytest.importorskip("pocketsphinx")
        from lipstream.models.encoder import gmm_layer, sphinx_am
        from lipstream.realtime.sphinx_mfcc import sphinx_features_whole

        scorer = sphinx_am.senone_scorer(ci_weights=False)
        layer = gmm_layer.CodebookLayer()
        layer.load_scorer(scorer)
        x = sphinx_features_whole(_speechlike(1.0, seed=9))
        g = scorer.gaussian_scores(x).max(-1)  # (T, 3, 42)
        lse = g.max(-1, keepdims=True) + np.log(np.exp(g - g.max(-1, keepdims=True)).sum(-1, keepdims=True))
        want = np.clip(g - lse, -gmm_layer.FLOOR, None).reshape(len(x), -1) / gmm_layer.SCALE
        got = layer(torch.from_numpy(x)[None])[0].numpy()
        np.testing.assert_allclose(got, want, atol=1e-4)

    def test_widened_model_starts_as_the_checkpoint(self) -> None:
        torch = pytest.importorskip("torch")
        pytest.importorskip("pocketsphinx")
        from lipstream.models.encoder.model import EncoderConfig, StreamingEncoder, add_sphinx_input

        torch.manual_seed(2)
        base = StreamingEncoder(EncoderConfig(conv_channels=8, gru_hidden=8)).eval()
        wide = StreamingEncoder(EncoderConfig(conv_channels=8, gru_hidden=8, sphinx_dims=39)).eval()
        add_sphinx_input(wide, base.state_dict())
        mel = torch.randn(1, 40, N_MELS)
        sph = torch.randn(1, 40, 39)
        with torch.no_grad():
            want = base(mel, *base.initial_state(1))[0]
            got = wide(torch.cat([mel, sph], dim=-1), *wide.initial_state(1))[0]
        assert torch.equal(got, want)

    def test_exported_sphinx_model_streams_like_the_shipped_one(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        """Contract, chunked == whole and the 50 ms look-ahead hold for a model with the codebook layer."""
        torch = pytest.importorskip("torch")
        pytest.importorskip("onnx")
        pytest.importorskip("pocketsphinx")
        from lipstream.models.encoder import export
        from lipstream.models.encoder.model import EncoderConfig, StreamingEncoder
        from lipstream.models.encoder.sphinx_am import senone_scorer

        torch.manual_seed(3)
        cfg = EncoderConfig(conv_channels=8, gru_hidden=8, sphinx_dims=39)
        model = StreamingEncoder(cfg)
        model.sphinx.load_scorer(senone_scorer(ci_weights=False))  # type: ignore[union-attr]
        with torch.no_grad():
            model.conv1.weight.mul_(10.0)  # make the codebook inputs matter to the output
        torch.save({"cfg": cfg.as_dict(), "state": model.state_dict()}, tmp_path / "m.pt")
        export.export(tmp_path / "m.pt", tmp_path / "m.onnx")
        enc = StreamingPhonemeEncoder(tmp_path / "m.onnx")
        assert enc.contract.sphinx is not None and enc.contract.lookahead_ms == 50
        audio = _speechlike(1.5, seed=10)
        whole = np.concatenate([enc.push(audio), enc.flush()])
        enc.reset()
        chunked = np.concatenate([_chunked(enc.push, audio, [17, 480, 3]), enc.flush()])
        assert whole.shape == (audio.size // HOP_SAMPLES, len(PHONES))
        np.testing.assert_allclose(chunked, whole, atol=1e-4)
        enc.reset()
        assert enc.push(np.zeros(HOP_SAMPLES * 10, np.float32)).shape[0] == 10 - 5
        # the ONNX graph computes what the torch model does on the same inputs
        feats = np.concatenate([features_whole(audio), sphinx_mfcc_whole(audio)], axis=1)
        with torch.no_grad():
            logits = model.eval()(torch.from_numpy(feats)[None], *model.initial_state(1))[0][0]
        np.testing.assert_allclose(whole[: len(feats) - 5], torch.softmax(logits, -1).numpy()[5:], atol=1e-4)


def test_reproduce_builds_the_shipped_codebook_fine_tune(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain ``reproduce`` fine-tunes once more with the codebook layer and exports that.

    Sphinx shards first, then the fine-tune from the fine-tuned weights.
    """
    reproduce = pytest.importorskip("lipstream.models.encoder.reproduce")  # torch: ``train`` extra

    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(reproduce.corpus, "main", lambda argv: calls.append(("corpus", argv)))
    monkeypatch.setattr(reproduce.sphinx_shards, "main", lambda argv: calls.append(("sphinx_shards", argv)))

    def fake_train(cfg, steps, minutes, out, lr, init=None, weights=None, sphinx=False):  # type: ignore[no-untyped-def]
        calls.append(("train", (steps, lr, out.name, init, weights, sphinx)))

    monkeypatch.setattr(reproduce.train, "train", fake_train)
    monkeypatch.setattr(reproduce.export, "export", lambda ckpt, out: calls.append(("export", ckpt)))
    monkeypatch.setattr(reproduce.evaluate, "main", lambda argv: calls.append(("evaluate", argv)))
    ft = reproduce.CACHE_DIR / "encoder_finetune" / "encoder.pt"
    sph = reproduce.CACHE_DIR / "encoder_sphinx" / "encoder.pt"

    reproduce.main([])
    assert calls[0] == ("corpus", ["--all-libri"])
    assert calls[3:] == [
        ("sphinx_shards", []),
        ("train", (reproduce.SPHINX_STEPS, reproduce.SPHINX_LR, "encoder_sphinx", ft,
                   reproduce.FINE_TUNE_WEIGHTS, True)),  # fmt: skip
        ("export", sph),
        ("evaluate", []),
    ]
