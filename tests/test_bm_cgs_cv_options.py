"""bm_cgs_cv.py's command line: epoch selection is opt-in and exclusive with --last-epoch; CGS settings."""

import pytest


@pytest.fixture(scope="module")
def bm_cgs_cv(load_benchmark):
    return load_benchmark("bm_cgs_cv")


def test_epoch_selection_and_last_epoch_exclude_each_other(bm_cgs_cv, capsys):
    with pytest.raises(SystemExit):
        bm_cgs_cv.main(["--epoch-selection", "--last-epoch"])
    assert "--epoch-selection and --last-epoch exclude each other" in capsys.readouterr().err


def test_run_scores_the_last_epoch_unless_asked(bm_cgs_cv, monkeypatch):
    seen = []

    def fake_cv(**kw):
        seen.append(kw["epoch_selection"])
        return []

    monkeypatch.setattr(bm_cgs_cv, "classification_cv", fake_cv)
    bm_cgs_cv.run(["mice"], 1, 2, 1, 0)
    bm_cgs_cv.run(["mice"], 1, 2, 1, 0, epoch_selection=True)
    assert seen == [False, True]


def test_cgs_settings_are_parsed_into_config_overrides(bm_cgs_cv, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(bm_cgs_cv, "classification_cv", lambda **kw: seen.append(kw["cgs_settings"]) or [])
    bm_cgs_cv.main(["--datasets", "mice", "--cgs-settings", "gamma_max=0.9,init_contraction=0.5",
                    "encoder=gin,enc_layers=4,hidden=36"])
    assert seen == [((("gamma_max", 0.9), ("init_contraction", 0.5)),
                     (("encoder", "gin"), ("enc_layers", 4), ("hidden", 36)))]
    with pytest.raises(SystemExit):
        bm_cgs_cv.main(["--cgs-settings", "gama_max=0.9"])
    err = capsys.readouterr().err
    assert "--cgs-settings 'gama_max=0.9'" in err
