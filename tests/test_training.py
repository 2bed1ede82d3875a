"""The training loop: it learns, resumes exactly, exports faithfully and runs under torchrun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from polypview.bench import IMAGENET_MEAN, IMAGENET_STD
from polypview.modelfile import find_model, load_network
from polypview.nets import create_model
from training.checkpoint import slim
from training.data import DEFAULT_ROOT, load_cached, resolve_dataset
from training.export import (
    export_checkpoint,
    logged_run,
    metric_data,
    moved_data,
    read_log,
)
from training.losses import dice_bce_loss, distillation_loss, false_alarm_loss
from training.metrics import batch_counts, dice_from_counts
from training.mining import HardNegatives
from training.schedule import epoch_size, epochs_that_fit, typical_epoch
from training.train import build_network, main, parse_args
from training.transforms import normalise

SIZE = 32


def write_polyp_dataset(root: Path, count: int = 10, test: int = 2) -> Path:
    """Pink textured 'mucosa' with one brighter disc, the 'polyp', per image; splits train/test."""
    rng = np.random.default_rng(0)
    for folder in ("images", "masks", "splits"):
        (root / folder).mkdir(parents=True)
    ids = [f"img{index:02d}" for index in range(count)]
    for image_id in ids:
        height, width = rng.integers(40, 72, 2)
        image = rng.normal((90, 100, 170), 12, (height, width, 3)).clip(0, 255).astype(np.uint8)
        mask = np.zeros((height, width), np.uint8)
        centre = (int(rng.integers(12, width - 12)), int(rng.integers(12, height - 12)))
        cv2.circle(mask, centre, int(rng.integers(6, 11)), 255, -1)
        image[mask > 0] = (150, 170, 240)
        cv2.imwrite(str(root / "images" / f"{image_id}.jpg"), image)
        cv2.imwrite(str(root / "masks" / f"{image_id}.png"), mask)
    (root / "splits" / "train.txt").write_text("\n".join(ids[test:]) + "\n")
    (root / "splits" / "test.txt").write_text("\n".join(ids[:test]) + "\n")
    return root


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_polyp_dataset(tmp_path / "data")


def batch_of(dataset: Path, cache: Path, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    split = load_cached(dataset, resolve_dataset(dataset, "train")[:count], (SIZE, SIZE), cache)
    images, masks = split.to_dataset().tensors
    return normalise(images.float() / 255, IMAGENET_MEAN, IMAGENET_STD), masks.float()


def test_one_step_lowers_the_loss(dataset: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    images, masks = batch_of(dataset, tmp_path / "cache", 4)
    network = create_model("unet")
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    before = dice_bce_loss(network(images), masks)
    before.backward()
    optimizer.step()
    assert dice_bce_loss(network(images), masks).item() < before.item()


def test_a_tiny_model_overfits_four_images(dataset: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    images, masks = batch_of(dataset, tmp_path / "cache", 4)
    network = create_model("unet")
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-3)
    for _ in range(120):
        optimizer.zero_grad()
        dice_bce_loss(network(images), masks).backward()
        optimizer.step()
    network.eval()
    with torch.no_grad():
        dice = dice_from_counts(batch_counts(network(images) > 0, masks > 0.5))
    assert dice.min().item() > 0.9, dice


def train_args(dataset: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model", "unet", "--data", str(dataset), "--train-split", "train",
        "--test-split", "test", "--size", str(SIZE), "--batch-size", "2", "--val-fraction",
        "0.25", "--amp", "off", "--warmup-epochs", "1", "--out", str(out),
        "--cache-dir", str(out.parent / "cache"), *extra,
    ]  # fmt: skip


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.pt", weights_only=True)["network"]


def test_resume_continues_exactly(dataset: Path, tmp_path: Path) -> None:
    main(train_args(dataset, tmp_path / "straight", "--epochs", "3"))
    records = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").open()]
    assert [record["epoch"] for record in records] == [0, 1, 2]
    first_epoch_steps = records[0]["step"]

    interrupted = tmp_path / "interrupted"
    main(train_args(dataset, interrupted, "--epochs", "3", "--max-steps", str(first_epoch_steps)))
    main(train_args(dataset, interrupted, "--epochs", "3", "--resume"))
    straight, resumed = final_weights(tmp_path / "straight"), final_weights(interrupted)
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[key], resumed[key]) for key in straight)
    assert (interrupted / "curves.png").stat().st_size > 0


def test_export_then_load_gives_identical_outputs(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    main(train_args(dataset, run, "--epochs", "1"))
    card = export_checkpoint(run / "best.pt", "tiny", tmp_path / "models")
    assert set(card.metrics["test"]) >= {"dice", "iou", "precision", "recall", "f2", "miou"}
    assert card.command.startswith("python -m training.train --model unet")

    trained = create_model("unet").eval()
    trained.load_state_dict(torch.load(run / "best.pt", weights_only=True)["network"])
    if "fp16" in card.notes:  # what is shipped is the fp16 rounding of the trained weights
        trained.load_state_dict({k: v.half().float() for k, v in trained.state_dict().items()})
    loaded = load_network(find_model(str(card.weights_path)))
    batch = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(trained(batch), loaded(batch))


def test_a_slim_checkpoint_exports_like_the_full_one(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    main(train_args(dataset, run, "--epochs", "1"))
    slim_path = slim(run / "best.pt", tmp_path / "home" / "slim.pt")
    state = torch.load(slim_path, weights_only=True)
    assert not {"optimizer", "scheduler", "scaler"} & state.keys()
    assert {tensor.dtype for tensor in state["network"].values()} <= {torch.float16, torch.int64}
    assert slim_path.stat().st_size < (run / "best.pt").stat().st_size / 2

    card = export_checkpoint(slim_path, "slim", tmp_path / "models")
    full = export_checkpoint(run / "best.pt", "full", tmp_path / "models")
    assert card.metrics == full.metrics  # fp16 on the way home changes nothing measurable here
    assert "carried in fp16" in card.notes

    shutil.copy(slim_path, run / "last.pt")  # nothing to go on with: one line, not a KeyError
    with pytest.raises(SystemExit, match="not a full checkpoint of a unet run"):
        main(train_args(dataset, run, "--epochs", "2", "--resume"))


def test_a_run_on_travelling_copies_is_scored_on_the_originals() -> None:
    config = {"data": "/tmp/run/gpu-data/kvasir-seg", "extra": ["gpu-data/polypgen:train:val"]}
    moved = moved_data(config, Path("../shared/data"))
    assert moved["data"] == str(Path("../shared/data/kvasir-seg"))
    assert moved["extra"] == [f"{Path('../shared/data/polypgen')}:train:val"]
    assert config["data"] == "/tmp/run/gpu-data/kvasir-seg"  # the checkpoint's own is untouched


def test_the_card_counts_the_whole_run_not_the_best_epoch(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"epoch": e, "seconds": 30.0}) + "\n" for e in range(4)))
    assert logged_run(read_log(log)) == {"epochs_run": 4, "minutes_run": 2.0}
    assert logged_run(read_log(tmp_path / "missing.jsonl")) == {}


def test_a_missing_or_foreign_checkpoint_is_one_line(tmp_path: Path, capsys) -> None:
    from training.export import main as export_main

    with pytest.raises(SystemExit):
        export_main([str(tmp_path / "missing.pt"), "--name", "x"])
    assert "no checkpoint at" in capsys.readouterr().err
    (tmp_path / "run.pt").write_bytes(b"")
    with pytest.raises(SystemExit):
        export_main([str(tmp_path / "run.pt")])
    assert "--name is needed" in capsys.readouterr().err
    for junk in (b"", b"not a checkpoint"):  # an empty or foreign file: one line, no traceback
        (tmp_path / "run.pt").write_bytes(junk)
        with pytest.raises(SystemExit, match="is not a training checkpoint"):
            export_main([str(tmp_path / "run.pt"), "--slim", str(tmp_path / "slim.pt")])
    assert not (tmp_path / "slim.pt").exists()


def test_training_imports_without_pyav_qt_or_openvino() -> None:
    """The GPU machine has none of them: training and export must not reach for them."""
    blocked = ["av", "PyQt6", "openvino"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "import training.train, training.export"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_architecture_options_belong_to_their_network(dataset: Path, tmp_path: Path) -> None:
    resunetpp = ("--model", "resunetpp", "--attention-gate")
    args = parse_args(train_args(dataset, tmp_path, *resunetpp, "sigmoid"))
    assert args.architecture_options == {"attention_gate": "sigmoid"}
    # the default gate leaves the options, and so the installed cards, as they were
    assert parse_args(train_args(dataset, tmp_path, *resunetpp, "reference")) \
        .architecture_options == {}  # fmt: skip
    with pytest.raises(SystemExit):  # train_args' network is a UNet
        parse_args(train_args(dataset, tmp_path, "--attention-gate", "sigmoid"))
    with pytest.raises(SystemExit):
        parse_args(train_args(dataset, tmp_path, "--decoder-channels", "8", "8", "8", "8"))


def test_on_screen_text_is_a_recipe_option_the_card_names(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        parse_args(train_args(dataset, tmp_path, "--overlays", "1.5"))
    main(train_args(dataset, tmp_path / "text", "--epochs", "1", "--overlays", "0.5"))
    card = export_checkpoint(tmp_path / "text" / "best.pt", "text", tmp_path / "models")
    assert "synthetic on-screen text on 50% of frames" in card.recipe


def test_a_slimmer_decoder_travels_from_training_to_the_card(dataset: Path, tmp_path: Path) -> None:
    slim = ["--model", "lite-unet", "--decoder-channels", "16", "8", "8", "4"]
    main(train_args(dataset, tmp_path / "slim", "--epochs", "1", *slim))
    card = export_checkpoint(tmp_path / "slim" / "best.pt", "slim", tmp_path / "models")
    assert find_model(str(card.card_path)).architecture_options == {
        "decoder_channels": [16, 8, 8, 4]
    }
    trained = create_model("lite-unet", decoder_channels=(16, 8, 8, 4)).eval()
    trained.load_state_dict(torch.load(tmp_path / "slim" / "best.pt", weights_only=True)["network"])
    if "fp16" in card.notes:
        trained.load_state_dict({k: v.half().float() for k, v in trained.state_dict().items()})
    batch = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(trained(batch), load_network(card)(batch))

    with pytest.raises(
        SystemExit, match=r"was built with .*decoder_channels.*this run with the def"
    ):
        build_network(
            parse_args(
                train_args(dataset, tmp_path / "again", "--model", "lite-unet", "--init",
                           str(card.weights_path))
            )
        )  # fmt: skip


@pytest.mark.skipif(
    shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
    reason="torchrun not found",
)
def test_two_gloo_processes_under_torchrun_finish(dataset: Path, tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun if torchrun.exists() else shutil.which("torchrun")),
        "--standalone", "--nproc_per_node", "2", "-m", "training.train",
        *train_args(dataset, tmp_path / "ddp", "--epochs", "2", "--device", "cpu"),
    ]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "ddp" / "log.jsonl").open()]
    assert [record["epoch"] for record in records] == [0, 1]  # only rank 0 logs


def write_polyp_free_dataset(root: Path, count: int = 6) -> Path:
    """'Mucosa' without a disc and all-zero masks, split into train and val halves."""
    rng = np.random.default_rng(1)
    for folder in ("images", "masks", "splits"):
        (root / folder).mkdir(parents=True)
    ids = [f"clean{index:02d}" for index in range(count)]
    for image_id in ids:
        image = rng.normal((90, 100, 170), 12, (48, 64, 3)).clip(0, 255).astype(np.uint8)
        cv2.imwrite(str(root / "images" / f"{image_id}.jpg"), image)
        cv2.imwrite(str(root / "masks" / f"{image_id}.png"), np.zeros((48, 64), np.uint8))
    (root / "splits" / "train.txt").write_text("\n".join(ids[: count // 2]) + "\n")
    (root / "splits" / "val.txt").write_text("\n".join(ids[count // 2 :]) + "\n")
    return root


def test_extra_datasets_and_background_crops_join_training_and_validation(
    dataset: Path, tmp_path: Path
) -> None:
    negatives = write_polyp_free_dataset(tmp_path / "clean")
    run = tmp_path / "mixed"
    summary = main(
        train_args(
            dataset, run, "--epochs", "1", "--extra", f"{negatives}:train:val",
            "--background-crops", "4", "--hard-negatives", "3",
        )
    )  # fmt: skip
    state = torch.load(run / "last.pt", weights_only=True)
    # 8 train ids, a quarter held out: 6 + 3 clean frames + up to 4 crops.
    assert 9 < state["train_images"] <= 13
    assert state["validation_images"] == 2 + 3
    assert state["config"]["extra"] == [f"{negatives}:train:val"]
    record = json.loads((run / "log.jsonl").read_text().splitlines()[0])
    assert 0 <= record["val_flagged"] <= 1  # three polyp-free validation frames were judged
    assert 0 <= record["val_missed"] <= 1
    expected = record["val_dice"] - record["val_flagged"] - record["val_missed"]
    assert summary["best_val_score"] == pytest.approx(expected, abs=1e-5)


def test_init_continues_from_installed_weights(dataset: Path, tmp_path: Path) -> None:
    main(train_args(dataset, tmp_path / "first", "--epochs", "1"))
    card = export_checkpoint(tmp_path / "first" / "best.pt", "first", tmp_path / "models")
    args = parse_args(train_args(dataset, tmp_path / "second", "--init", str(card.weights_path)))
    started = build_network(args).state_dict()
    exported = load_network(card).state_dict()
    assert all(torch.equal(started[k], exported[k]) for k in exported)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pretrained"], "ImageNet weights for lite-unet only"),
        (["--init", "missing.safetensors"], "--init"),
        (["--hard-negatives", "5"], "--hard-negatives needs polyp-free training frames"),
    ],
)
def test_bad_starting_weights_are_one_line(
    dataset: Path, tmp_path: Path, extra: list[str], message: str, capsys
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(train_args(dataset, tmp_path / "run", "--epochs", "1", *extra))
    assert message in str(stop.value)


def test_the_false_alarm_term_punishes_a_blob_on_a_clean_frame_only() -> None:
    clean, polyp = torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64)
    polyp[..., 20:40, 20:40] = 1
    blob = torch.full((1, 1, 64, 64), -8.0)
    blob[..., 20:40, 20:40] = 8.0
    quiet = torch.full((1, 1, 64, 64), -8.0)
    assert false_alarm_loss(blob, clean) > 7  # a confident blob on a clean frame: full cost
    assert false_alarm_loss(quiet, clean) < 1e-3
    assert false_alarm_loss(blob, polyp) == 0  # frames with a polyp are the pixel loss's job
    logits = blob.clone().requires_grad_()
    false_alarm_loss(logits, clean).backward()
    pushed = logits.grad[0, 0] != 0  # the most confident 0.5% of the frame, all in the blob
    assert pushed.sum() == int(0.005 * 64 * 64) and pushed[20:40, 20:40].sum() == pushed.sum()


def test_distillation_pulls_towards_the_teacher_and_rests_where_it_agrees() -> None:
    teacher = torch.linspace(-6, 6, 64).view(1, 1, 8, 8)
    agreeing = teacher.clone().requires_grad_()
    distillation_loss(agreeing, teacher).backward()
    assert agreeing.grad.abs().max() < 1e-6
    flat = torch.zeros(1, 1, 8, 8, requires_grad=True)
    distillation_loss(flat, teacher).backward()
    # gradient descent moves each pixel towards the teacher's side of 0.5
    assert torch.equal(torch.sign(-flat.grad), torch.sign(teacher))


def test_a_student_trains_beside_an_installed_teacher(dataset: Path, tmp_path: Path) -> None:
    main(train_args(dataset, tmp_path / "teacher", "--epochs", "1"))
    teacher = export_checkpoint(tmp_path / "teacher" / "best.pt", "teacher", tmp_path / "models")
    run = tmp_path / "student"
    main(train_args(dataset, run, "--epochs", "1", "--teacher", str(teacher.weights_path)))
    student = export_checkpoint(run / "best.pt", "student", tmp_path / "models")
    assert f"distilled from {teacher.weights_path}" in student.recipe
    with pytest.raises(SystemExit, match="--teacher"):
        main(train_args(dataset, tmp_path / "orphan", "--teacher", "missing.safetensors"))


class SizeProbe(nn.Module):
    """Logits that record the side they were asked at: 1 everywhere when it was 64."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen = tuple(images.shape[-2:])
        return torch.full_like(images[:, :1], 1.0 if self.seen == (64, 64) else -1.0)


def test_a_teacher_sees_its_own_input_size_and_answers_at_the_students() -> None:
    from training.train import Teacher

    probe = SizeProbe()
    teacher = Teacher(probe, (64, 64), IMAGENET_MEAN, IMAGENET_STD)
    logits = teacher(torch.rand(2, 3, 32, 32), None)
    assert probe.seen == (64, 64)
    assert logits.shape == (2, 1, 32, 32) and torch.all(logits == 1)


def test_validation_frame_scores_match_the_apps() -> None:
    from polypview.decision import top_quantiles
    from training.calibrate import AREA_FRACTIONS
    from training.validation import frame_scores

    probabilities = torch.rand(3, 1, 64, 64)
    expected = [top_quantiles(p[0].numpy(), list(AREA_FRACTIONS)) for p in probabilities]
    np.testing.assert_allclose(frame_scores(probabilities).numpy(), expected, rtol=1e-6)


def test_validate_only_scores_installed_weights_without_training(
    dataset: Path, tmp_path: Path
) -> None:
    main(train_args(dataset, tmp_path / "first", "--epochs", "1"))
    card = export_checkpoint(tmp_path / "first" / "best.pt", "first", tmp_path / "models")
    logged = json.loads((tmp_path / "first" / "log.jsonl").read_text().splitlines()[0])
    run = tmp_path / "check"
    report = main(train_args(dataset, run, "--init", str(card.weights_path), "--validate-only"))
    assert not (run / "last.pt").exists()  # nothing trained, nothing written
    assert report["val_dice"] == pytest.approx(logged["val_dice"], abs=0.02)  # fp16 storage
    assert report["val_score"] == pytest.approx(
        report["val_dice"] - report["val_flagged"] - report["val_missed"], abs=1e-4
    )


def test_a_malformed_extra_dataset_is_one_line_saying_what_is_expected(capsys) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--extra", "nowhere"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "expected PATH:TRAIN_SPLIT[:VALIDATION_SPLIT], got 'nowhere'" in err


def test_card_metric_keys_name_their_test_data() -> None:
    assert metric_data("test120") == (DEFAULT_ROOT, "test120")
    assert metric_data("polypgen:test") == (DEFAULT_ROOT.parent / "polypgen", "test")


def test_progressive_resizing_grows_to_the_size_the_model_runs_at() -> None:
    sides = [epoch_size(epoch, 10, 160, 256, ramp=0.5) for epoch in range(10)]
    assert sides[0] == 160 and sides[-5:] == [256] * 5
    assert sides == sorted(sides) and all(side % 32 == 0 for side in sides)
    assert [epoch_size(epoch, 10, None, 256, 0.5) for epoch in range(10)] == [256] * 10


def test_a_time_budget_plans_by_the_typical_epoch_not_a_disturbed_one() -> None:
    # Epoch 0 alone: all there is. Then its one-off costs drop out, and one epoch slowed by
    # something else on the machine (300 s) is outvoted by the steady ones (2026-12-01's run).
    assert typical_epoch([(224.0, 20.0)]) == (224.0, 20.0)
    assert typical_epoch([(400.0, 20.0), (300.0, 20.0)]) == (300.0, 20.0)
    assert typical_epoch([(224.0, 20.0), (300.0, 22.0), (210.0, 20.0), (205.0, 19.0)]) == (
        210.0,
        20.0,
    )


def test_a_time_budget_plans_more_epochs_when_the_first_ones_are_small() -> None:
    def same(epoch: int, planned: int) -> int:
        return 256

    def growing(epoch: int, planned: int) -> int:
        return epoch_size(epoch, planned, 128, 256, ramp=0.5)

    # 90 s of training and 10 of validation per epoch, one run, 1000 s left: ten more.
    assert epochs_that_fit(1000, 90, 10, same, done=1, most=200) == 11
    assert epochs_that_fit(1000, 90, 10, same, done=1, most=5) == 5
    assert epochs_that_fit(50, 90, 10, same, done=1, most=200) == 1
    # Epoch 0 trained at 128 in a quarter of the time: sides 160 160 192 224 then 256 x 7 fit.
    assert epochs_that_fit(1000, 22.5, 10, growing, done=1, most=200) == 12


def test_progressive_resizing_trains_small_then_at_full_size(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = train_args(dataset, run, "--epochs", "3", "--start-size", "32")
    main([*args, "--size", "64"])  # the later --size wins
    records = [json.loads(line) for line in (run / "log.jsonl").open()]
    assert [record["size"] for record in records] == [32, 64, 64]
    with pytest.raises(SystemExit):
        parse_args([*args, "--size", "64", "--start-size", "96"])


def test_hard_negatives_are_the_polyp_free_frames_the_network_fires_on_most() -> None:
    # Six frames of uniform brightness; frames 1 and 4 hold a polyp. A network whose logit is the
    # pixel brightness fires most on the brightest frames: the two brightest polyp-free ones are
    # 5 and 2, whatever the (brighter) polyp frames score.
    brightness = torch.tensor([10, 250, 200, 30, 240, 220], dtype=torch.uint8)
    images = brightness[:, None, None, None].expand(6, 3, 8, 8).contiguous()
    masks = torch.zeros(6, 1, 8, 8, dtype=torch.uint8)
    masks[[1, 4], :, 2:5, 2:5] = 1
    network = nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        network.weight.fill_(1 / 3)
        network.bias.zero_()
    network.train()
    hard = HardNegatives(TensorDataset(images, masks), count=2, batch_size=3)
    scores = hard.scores(network, torch.device("cpu"), None, ((0.0,) * 3, (1.0,) * 3))
    assert network.training  # scored in eval mode, handed back as it came
    assert hard.candidates.tolist() == [0, 2, 3, 5]
    assert scores.tolist() == pytest.approx([10 / 255, 200 / 255, 30 / 255, 220 / 255])
    epoch = hard.epoch(scores)
    assert len(epoch) == 8
    assert sorted(epoch.datasets[1].indices) == [2, 5]
