import pytest

from nnunet_ext.trainers.settings import (
    SettingsError,
    TrainingSettings,
    parse_trainer_name,
    resolve_settings,
)


def test_defaults_match_nnunet():
    s = resolve_settings({})
    assert (s.num_epochs, s.num_iterations_per_epoch, s.num_val_iterations_per_epoch) == (
        1000,
        250,
        50,
    )
    assert s.patience is None
    assert s.target_dice is None
    assert not s.early_stopping
    assert s.min_delta == 0.0
    assert s.min_epochs == 0
    assert set(s.sources.values()) == {"default"}


def test_environment_values_are_parsed_and_sourced():
    s = resolve_settings(
        {
            "nnUNet_n_epochs": "80",
            "nnUNet_iters_per_epoch": " 2 ",
            "nnUNet_val_iters_per_epoch": "1",
            "nnUNet_patience": "30",
            "nnUNet_min_delta": "0.001",
            "nnUNet_min_epochs": "0",
            "nnUNet_target_dice": "1",
        }
    )
    assert s == TrainingSettings(80, 2, 1, 30, 0.001, 0, 1.0)
    assert s.sources["num_epochs"] == "env:nnUNet_n_epochs"
    assert s.early_stopping


def test_empty_value_counts_as_unset():
    assert resolve_settings({"nnUNet_patience": "", "nnUNet_n_epochs": "  "}) == TrainingSettings()


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        pytest.param("nnUNet_n_epochs", "80 epochs", "positive integer", id="words"),
        pytest.param("nnUNet_n_epochs", "0", "positive integer", id="zero"),
        pytest.param("nnUNet_n_epochs", "-5", "positive integer", id="negative"),
        pytest.param("nnUNet_n_epochs", "1e3", "positive integer", id="float-notation"),
        pytest.param("nnUNet_iters_per_epoch", "2.5", "positive integer", id="fraction"),
        pytest.param("nnUNet_val_iters_per_epoch", "x", "positive integer", id="val-iters"),
        pytest.param("nnUNet_patience", "0", "positive integer", id="patience-zero"),
        pytest.param("nnUNet_min_epochs", "-1", "non-negative integer", id="min-epochs"),
        pytest.param("nnUNet_min_delta", "-0.1", r"number in \[0.0, inf\)", id="delta-negative"),
        pytest.param("nnUNet_min_delta", "nan", "number in", id="delta-nan"),
        pytest.param("nnUNet_target_dice", "0", r"number in \(0.0, 1.0\]", id="target-zero"),
        pytest.param("nnUNet_target_dice", "1.2", "number in", id="target-above-one"),
    ],
)
def test_bad_environment_values_name_variable_value_and_form(var, value, expected):
    with pytest.raises(SettingsError, match=expected) as info:
        resolve_settings({var: value})
    message = str(info.value)
    assert message.startswith(f"{var} must be")
    assert repr(value) in message
    assert f"Example: {var}=" in message


@pytest.mark.parametrize(
    ("name", "base", "settings"),
    [
        ("CustomEpochs", "CustomEpochs", {}),
        ("nnUNetTrainerCustomEpochs", "nnUNetTrainerCustomEpochs", {}),
        ("CustomEpochs_e250", "CustomEpochs", {"num_epochs": 250}),
        ("CustomEpochs_p30_e250", "CustomEpochs", {"patience": 30, "num_epochs": 250}),
        (
            "nnUNetTrainerCustomEpochs_e2_i2_v1_p1_m1_d0p5_t0p95",
            "nnUNetTrainerCustomEpochs",
            {
                "num_epochs": 2,
                "num_iterations_per_epoch": 2,
                "num_val_iterations_per_epoch": 1,
                "patience": 1,
                "min_epochs": 1,
                "min_delta": 0.5,
                "target_dice": 0.95,
            },
        ),
        ("nnUNetTrainer_250epochs", "nnUNetTrainer_250epochs", {}),  # not ours: untouched
    ],
)
def test_trainer_name_grammar(name, base, settings):
    assert parse_trainer_name(name) == (base, settings)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("CustomEpochs_x5", "unknown key 'x'"),
        ("CustomEpochs_e5_e6", "given twice"),
        ("CustomEpochs_e0", "positive integer"),
        ("CustomEpochs_ep5", "must be an integer"),
        ("CustomEpochs_d0p1p2", "not a decimal"),
        ("CustomEpochs_t1p5", "number in"),
        ("CustomEpochs__e5", "malformed"),
        ("CustomEpochs_E5", "malformed"),
    ],
)
def test_malformed_trainer_names_are_explained(name, match):
    with pytest.raises(SettingsError, match=match):
        parse_trainer_name(name)


def test_name_settings_win_over_environment():
    s = resolve_settings(
        {"nnUNet_n_epochs": "80", "nnUNet_patience": "5"},
        name_settings={"num_epochs": 250},
        name_tokens="CustomEpochs_e250",
    )
    assert (s.num_epochs, s.patience) == (250, 5)
    assert s.sources["num_epochs"] == "name:CustomEpochs_e250"
    assert s.sources["patience"] == "env:nnUNet_patience"
    assert "num_epochs=250 (name:CustomEpochs_e250)" in s.describe()
    assert "target_dice=off (default)" in s.describe()


def test_cooldown_label_and_forgetting_defaults():
    s = resolve_settings({})
    assert s.cooldown_epochs == 0  # off: an early stop ends as before unless asked
    assert s.label_checkpoints is False
    assert (s.forgetting_fraction, s.forgetting_epochs) == (0.5, 20)
    assert s.stop_on_forgetting is False


def test_cooldown_label_and_forgetting_from_the_environment():
    s = resolve_settings(
        {
            "nnUNet_cooldown_epochs": "20",
            "nnUNet_label_checkpoints": "1",
            "nnUNet_forgetting_fraction": "0.3",
            "nnUNet_forgetting_epochs": "15",
            "nnUNet_stop_on_forgetting": "1",
        }
    )
    assert (s.cooldown_epochs, s.label_checkpoints) == (20, True)
    assert (s.forgetting_fraction, s.forgetting_epochs, s.stop_on_forgetting) == (0.3, 15, True)
    assert s.early_stopping  # forgetting is a stop rule
    assert s.sources["cooldown_epochs"] == "env:nnUNet_cooldown_epochs"
    assert s.to_dict()["label_checkpoints"] is True


def test_cooldown_and_label_tokens_in_the_name():
    base, settings = parse_trainer_name("CustomEpochs_p30_c20_l1")
    assert base == "CustomEpochs"
    assert settings == {"patience": 30, "cooldown_epochs": 20, "label_checkpoints": True}
    s = resolve_settings(
        {"nnUNet_cooldown_epochs": "5"},
        name_settings=settings,
        name_tokens="CustomEpochs_p30_c20_l1",
    )
    assert s.cooldown_epochs == 20
    assert s.sources["cooldown_epochs"] == "name:CustomEpochs_p30_c20_l1"
    assert parse_trainer_name("CustomEpochs_c0_l0")[1] == {
        "cooldown_epochs": 0,
        "label_checkpoints": False,
    }


@pytest.mark.parametrize(
    ("environ", "match"),
    [
        ({"nnUNet_cooldown_epochs": "-1"}, "nnUNet_cooldown_epochs must be a non-negative integer"),
        ({"nnUNet_label_checkpoints": "yes"}, "nnUNet_label_checkpoints must be 0 or 1; got 'yes'"),
        ({"nnUNet_stop_on_forgetting": "2"}, "nnUNet_stop_on_forgetting must be 0 or 1"),
        (
            {"nnUNet_forgetting_fraction": "0"},
            r"nnUNet_forgetting_fraction must be a number in \(0",
        ),
        ({"nnUNet_forgetting_fraction": "1.5"}, "nnUNet_forgetting_fraction must be a number"),
        ({"nnUNet_forgetting_epochs": "0"}, "nnUNet_forgetting_epochs must be a positive integer"),
    ],
)
def test_bad_new_values_name_the_variable(environ, match):
    with pytest.raises(SettingsError, match=match):
        resolve_settings(environ)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("CustomEpochs_l2", "must be 0 or 1"),
        ("CustomEpochs_c1p5", "must be an integer"),
        ("CustomEpochs_c3_c4", "key 'c' given twice"),
    ],
)
def test_bad_new_tokens_name_the_token(name, match):
    with pytest.raises(SettingsError, match=match):
        parse_trainer_name(name)


def test_seed_is_off_by_default_and_read_from_the_environment():
    assert resolve_settings({}).seed is None
    assert "seed=off (default)" in resolve_settings({}).describe()
    s = resolve_settings({"nnUNet_seed": "42"})
    assert (s.seed, s.sources["seed"]) == (42, "env:nnUNet_seed")
    assert resolve_settings({"nnUNet_seed": "0"}).seed == 0
    assert resolve_settings({"nnUNet_seed": str(2**32 - 1)}).seed == 2**32 - 1


@pytest.mark.parametrize("raw", ["-1", "1.5", "forty-two", str(2**32)])
def test_a_bad_seed_names_the_variable_and_the_range(raw):
    with pytest.raises(SettingsError, match="nnUNet_seed must be") as caught:
        resolve_settings({"nnUNet_seed": raw})
    assert repr(raw) in str(caught.value)
