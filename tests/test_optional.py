"""The one optional-dependency helper."""

import pytest

from lossmap._optional import require


def test_require_returns_the_module():
    assert require("json.decoder", extra="x", what="y").__name__ == "json.decoder"


def test_require_names_the_feature_the_library_and_the_extra():
    with pytest.raises(
        ImportError,
        match=r"^the thing needs no_such_lib: pip install 'lossmap\[plot\]'$",
    ):
        require("no_such_lib.sub", extra="plot", what="the thing")
