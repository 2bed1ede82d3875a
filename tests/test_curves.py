"""training.curves: a run's picture from its log, old logs included, several runs on one picture,
bad folders refused."""

import json

import pytest

from training.curves import main, plot_curves


def write_log(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def test_draws_the_decision_panel_and_old_logs_without_it(tmp_path):
    new = [
        {
            "epoch": e,
            "loss": 0.5,
            "val_dice": 0.7,
            "val_flagged": 0.04,
            "val_missed": 0.08,
            "lr": 1e-4,
        }
        for e in range(3)
    ]
    old = [{"epoch": e, "loss": 0.5, "val_dice": 0.7, "lr": 1e-4} for e in range(3)]
    for name, records in (("new", new), ("old", old)):
        log = tmp_path / f"{name}.jsonl"
        write_log(log, records)
        plot_curves(log, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_a_folder_without_a_log_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="no log at"):
        main([str(tmp_path)])


def test_a_log_that_is_not_a_training_log_is_one_line(tmp_path):
    write_log(tmp_path / "log.jsonl", [{"epoch": 0}])
    with pytest.raises(SystemExit, match="not a training log"):
        main([str(tmp_path)])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no epoch yet"),
        ("[1, 2]\n", "not a training log"),
        ('{"epoch": 0,\n', "not a training log"),
    ],
)
def test_empty_or_broken_logs_are_one_line(tmp_path, text, message):
    (tmp_path / "log.jsonl").write_text(text)
    with pytest.raises(SystemExit, match=message):
        main([str(tmp_path)])


def test_an_unwritable_output_is_one_line(tmp_path):
    write_log(tmp_path / "log.jsonl", [{"epoch": 0, "loss": 0.5, "val_dice": 0.7, "lr": 1e-4}])
    with pytest.raises(SystemExit, match="cannot write the picture"):
        main([str(tmp_path), "-o", str(tmp_path / "missing" / "curves.png")])


def test_several_runs_share_one_picture(tmp_path):
    for name, dice in (("sigmoid", 0.5), ("reference", 0.3)):
        (tmp_path / name).mkdir()
        write_log(
            tmp_path / name / "log.jsonl",
            [
                {"epoch": e, "loss": 0.5, "val_dice": dice, "val_missed": 0.2, "lr": 1e-4}
                for e in range(3)
            ],
        )
    picture = tmp_path / "gates.png"
    main([str(tmp_path / "sigmoid"), str(tmp_path / "reference"), "-o", str(picture)])
    assert picture.read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "sigmoid" / "curves.png").exists()


def test_several_runs_need_an_output_and_good_logs(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_log(
            tmp_path / name / "log.jsonl", [{"epoch": 0, "loss": 0.5, "val_dice": 0.7, "lr": 1e-4}]
        )
    with pytest.raises(SystemExit, match="say where with -o"):
        main([str(tmp_path / "a"), str(tmp_path / "b")])
    write_log(tmp_path / "b" / "log.jsonl", [{"epoch": 0, "loss": 0.5}])
    with pytest.raises(SystemExit, match=r"b/log.jsonl is not a training log \(no lr, val_dice\)"):
        main([str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "ab.png")])
