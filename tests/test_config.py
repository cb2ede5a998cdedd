"""Param checks: booleans are accepted only where a parameter allows them."""

import pytest

from ablate.config.params import Param
from ablate.errors import ConfigError


def test_a_bool_listed_among_the_choices_is_accepted():
    auto_or_bool = Param("auto", choices=("auto", True, False), kind=object)
    assert auto_or_bool.check("trainer.channels_last", True) is True
    assert auto_or_bool.check("trainer.channels_last", "auto") == "auto"


@pytest.mark.parametrize("param", [Param(1, low=0), Param(0.5), Param("auto", choices=("auto", 1))])
def test_a_bool_is_not_a_number_or_a_choice_equal_to_it(param):
    with pytest.raises(ConfigError, match="k: True is a bool"):
        param.check("k", True)
