"""conf/ is the single source of truth: params.yaml must be its composition."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from logreg.params import compose, main

ROOT = Path(__file__).resolve().parents[1]


def test_params_yaml_is_the_composition_of_conf():
    committed = OmegaConf.to_container(OmegaConf.load(ROOT / "params.yaml"), resolve=True)
    assert committed == compose(ROOT / "conf"), (
        "params.yaml is stale: run `python -m logreg.params`"
    )


def test_every_config_group_option_composes():
    for group in ("data", "rebalance", "model", "train", "mlflow", "experiment"):
        for option in sorted((ROOT / "conf" / group).glob("*.yaml")):
            if group == "data" and option.stem == "csv":
                continue  # needs the user's data.path and data.target (???)
            params = compose(ROOT / "conf", [f"{group}={option.stem}"])
            assert set(params) >= {"data", "rebalance", "model", "train", "mlflow", "prepare"}


def test_check_flags_a_stale_params_file(tmp_path, capsys):
    stale = tmp_path / "params.yaml"
    stale.write_text((ROOT / "params.yaml").read_text().replace("batch_size: 256", "batch_size: 7"))
    assert main(["--config-dir", str(ROOT / "conf"), "--out", str(stale), "--check"]) == 1
    assert "differs" in capsys.readouterr().out
    assert main(["--config-dir", str(ROOT / "conf"), "--out", str(stale)]) == 0
    assert main(["--config-dir", str(ROOT / "conf"), "--out", str(stale), "--check"]) == 0


def test_bad_override_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--config-dir", str(ROOT / "conf"), "--out", str(tmp_path / "p.yaml"), "data=nope"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "data" in err and "nope" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "p.yaml").exists()


def test_conf_states_the_estimator_defaults():
    # One default per key: conf/model/logistic.yaml and conf/train/sgd.yaml state the
    # values of LogisticRegression's signature, which the schema's defaults also read.
    import inspect

    from logreg import LogisticRegression, schema
    from logreg.model.parameters import PARAMETERS

    signature = inspect.signature(LogisticRegression).parameters
    assert list(PARAMETERS) == list(signature)  # every parameter has its rule, in order
    default_run = compose(ROOT / "conf")
    for section, keys in (("model", schema.MODEL_KEYS), ("train", schema.TRAIN_KEYS)):
        for key in keys:
            assert default_run[section][key] == signature[key].default, f"{section}.{key}"
            rule_default = schema.SECTIONS[section][key].default
            assert rule_default is schema.REQUIRED or rule_default == signature[key].default
