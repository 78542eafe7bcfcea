"""The book's one palette: every architecture its colour, aliases agree, unknown names refused."""

import pytest

from whydecoder.palette import ALIASES, ARCHITECTURE_COLOURS, ARCHITECTURE_NAMES, architecture_colour


def test_each_architecture_has_its_own_colour():
    assert len(set(ARCHITECTURE_COLOURS.values())) == len(ARCHITECTURE_COLOURS)


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_an_alias_takes_its_architectures_colour(alias):
    assert architecture_colour(alias) == ARCHITECTURE_COLOURS[ALIASES[alias]]


def test_a_cell_of_wang_et_al_takes_the_colour_of_its_architecture():
    assert architecture_colour("ED:MLM") == architecture_colour("encoder-decoder")
    assert architecture_colour("CD:FLM") == architecture_colour("decoder")


def test_an_unknown_architecture_is_refused_by_name():
    with pytest.raises(ValueError, match="'mamba'"):
        architecture_colour("mamba")


def test_every_architecture_has_a_name_for_figures_and_tables():
    assert set(ARCHITECTURE_NAMES) == set(ARCHITECTURE_COLOURS)
    assert ARCHITECTURE_NAMES["prefix-lm"] == "prefix-LM"


def test_book_style_sets_readable_type_sizes():
    import matplotlib.pyplot as plt

    from whydecoder.plots import BOOK_STYLE, book_style

    with plt.rc_context():
        book_style()
        assert all(plt.rcParams[k] == v for k, v in BOOK_STYLE.items())
        assert plt.rcParams["legend.fontsize"] >= 10
