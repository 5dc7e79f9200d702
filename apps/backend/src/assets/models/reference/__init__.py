"""The market's reference data: where an asset is listed, in which currency, and how it is
classified."""

# In the order the single models module defined them (see the package above).
from .country import Country  # noqa: I001
from .currency import Currency
from .sector import Sector
from .industry import Industry
from .exchange import Exchange

__all__ = ["Country", "Currency", "Exchange", "Industry", "Sector"]
