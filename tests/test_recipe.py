import numpy as np
import pytest

from detect.errors import ConfigError
from detect.recipe import DEFAULT_RECIPE, ChannelRecipe, Window, parse_channels


def test_window_formula_endpoints():
    lung = Window("lung", 1400, -700)
    hu = np.array([-2000, -1400, -700, 0, 1000], dtype=np.float32)
    # lower = -1400, upper = 0: -1400 -> 0, -700 -> 127.5 -> 128 (round half even: 128), 0 -> 255
    assert lung.apply(hu).tolist() == [0, 0, 128, 255, 255]


def test_default_recipe_numbers_and_round_trip():
    d = DEFAULT_RECIPE.to_dict()
    assert [(w["name"], w["width_hu"], w["level_hu"]) for w in d["windows"]] == [
        ("lung", 1400.0, -700.0),
        ("mediastinum", 350.0, 40.0),
        ("wide", 1500.0, -400.0),
    ]
    assert ChannelRecipe.from_dict(d) == DEFAULT_RECIPE


def test_render_windows_and_25d():
    hu = {-1: np.full((4, 4), -1000.0), 0: np.full((4, 4), 40.0), 1: np.full((4, 4), 500.0)}
    image = DEFAULT_RECIPE.render(hu)
    assert image.shape == (4, 4, 3) and image.dtype == np.uint8

    def expected(width, level, value):
        return int(np.clip(np.rint((value - (level - width / 2)) / width * 255), 0, 255))

    assert image[0, 0].tolist() == [
        expected(1400, -700, 40),
        expected(350, 40, 40),
        expected(1500, -400, 40),
    ]
    assert image[0, 0].tolist() == [255, 128, 202]
    two5 = parse_channels("2.5d")
    assert two5.neighbours == (-1, 0, 1)
    assert two5.render(hu)[0, 0].tolist() == [
        Window("lung", 1400, -700).apply(np.array([v]))[0] for v in (-1000.0, 40.0, 500.0)
    ]


def test_a_25d_step_in_mm_round_trips_and_is_checked():
    recipe = parse_channels("2.5d:wide:5mm")
    assert recipe.step_mm == 5.0 and recipe.stacking.step_mm == 5.0
    assert recipe.to_dict()["slice_step_mm"] == 5.0
    assert ChannelRecipe.from_dict(recipe.to_dict()) == recipe
    plain = parse_channels("2.5d:wide")
    assert "slice_step_mm" not in plain.to_dict()  # recipes written before the step read alike
    assert ChannelRecipe.from_dict(plain.to_dict()).step_mm is None
    with pytest.raises(ConfigError, match="slice step"):
        ChannelRecipe("windows", parse_channels("lung,mediastinum,wide").windows, step_mm=5.0)


@pytest.mark.parametrize("spec", ["lung", "lung,foo,wide", "1,2", "2.5d:nope", "lung,0/40,wide",
                                  "2.5d:wide:5", "2.5d:wide:0mm", "2.5d:wide:infmm",
                                  "2.5d:wide:51mm", "2.5d:wide:-5mm"])
def test_bad_channels(spec):
    with pytest.raises(ConfigError):
        parse_channels(spec)


def test_custom_windows():
    recipe = parse_channels("lung,400/50,bone")
    assert recipe.windows[1] == Window("400/50", 400.0, 50.0)
